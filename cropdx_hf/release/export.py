"""`cropdx export`: ONNX (fp32) and INT8 files via optimum, each verified before it is trusted.

The optimum CLI cannot export a local TimmWrapper folder (it takes the path for a Hub id), so the model is
loaded with transformers and handed to `onnx_export_from_model` with a vision ONNX config (dynamic batch
axis). For INT8 several quantization set-ups are measured and the fastest one that keeps the predictions
is kept: on CPUs with and without VNNI the winner differs, and dynamic INT8 is often slower than fp32.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from cropdx_hf.data.loading import LeafDataset
from cropdx_hf.inference.onnx_predictor import EXPORT_REPORT, GATE_EXPORT_REPORT, OnnxPredictor
from cropdx_hf.modeling.config import CONFIG, ONNX_FP32, ONNX_INT8, PREPROCESSOR, WEIGHTS
from cropdx_hf.modeling.metadata import ReleaseMetadata
from cropdx_hf.release.timing import latency_summary, timed

CALIBRATION_IMAGES = 128
GATE_CHECK_IMAGES = 64  # photos the exported gate is compared with the PyTorch gate on
MIN_AGREEMENT = 0.99  # an INT8 set-up that changes more top-1 answers than this is rejected


@dataclass(frozen=True)
class Int8Setup:
    name: str
    is_static: bool
    per_channel: bool
    qdq: bool


INT8_SETUPS = (
    Int8Setup("static-qoperator-per-channel", True, True, False),
    Int8Setup("static-qdq-per-channel", True, True, True),
    Int8Setup("dynamic-per-channel", False, True, False),
)


def export_fp32(model_dir: str | Path, out_dir: str | Path) -> Path:
    from optimum.exporters.onnx import onnx_export_from_model
    from optimum.exporters.onnx.model_configs import ViTOnnxConfig
    from transformers import AutoModelForImageClassification

    out = Path(out_dir)
    model = AutoModelForImageClassification.from_pretrained(str(model_dir)).eval()
    channels, height, _ = model.config.pretrained_cfg["input_size"]
    model.config.image_size, model.config.num_channels = height, channels  # what the dummy inputs read
    onnx_config = ViTOnnxConfig(model.config, task="image-classification")
    onnx_export_from_model(model, out, task="image-classification", custom_onnx_configs={"model": onnx_config},
                           do_validation=False)
    # TimmWrapperConfig.to_dict drops id2label; our config keeps labels, preprocessing and calibration
    for name in (CONFIG, PREPROCESSOR):
        shutil.copy(Path(model_dir) / name, out / name)
    return out / ONNX_FP32


def quantize(out_dir: Path, setup: Int8Setup, calibration: np.ndarray, file_name: str) -> Path:
    from onnxruntime.quantization import QuantFormat
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig

    quantizer = ORTQuantizer.from_pretrained(out_dir, file_name=ONNX_FP32)
    qconfig = AutoQuantizationConfig.avx512_vnni(is_static=setup.is_static, per_channel=setup.per_channel)
    if setup.is_static:
        qconfig.format = QuantFormat.QDQ if setup.qdq else QuantFormat.QOperator
    ranges = None
    if setup.is_static:
        calib = datasets.Dataset.from_dict({"pixel_values": list(calibration)})
        ranges = quantizer.fit(dataset=calib, calibration_config=AutoCalibrationConfig.minmax(calib),
                               operators_to_quantize=qconfig.operators_to_quantize)
    tmp = out_dir / f"_{setup.name}"
    quantizer.quantize(save_dir=tmp, quantization_config=qconfig, calibration_tensors_range=ranges)
    target = out_dir / file_name
    shutil.move(next(tmp.glob("*.onnx")), target)
    shutil.rmtree(tmp)
    return target


def latency_ms(run: Callable[[np.ndarray], object], sample: np.ndarray, runs: int = 50) -> dict[str, float]:
    """Batch-1 latency of one ONNX session on `sample`."""
    return latency_summary(timed(lambda: run(sample), runs))


def _logits(predictor: OnnxPredictor, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([predictor.session.run(None, {predictor.input_name: pixels[i:i + batch]})[0]
                           for i in range(0, len(pixels), batch)])


def export_model(
    model_dir: str | Path, out_dir: str | Path, calibration_images: Sequence, verify_images: Sequence,
    verify_labels: Sequence[int], torch_logits: np.ndarray, threads: int = 2,
) -> dict[str, Any]:
    """Export, quantize, verify. `torch_logits` are PyTorch's logits on `verify_images` (the reference)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ONNX_INT8).unlink(missing_ok=True)  # an INT8 file from earlier weights must not outlive this export
    export_fp32(model_dir, out)
    fp32 = OnnxPredictor(out, ONNX_FP32, threads)
    calibration = np.stack([fp32.preprocess(image) for image in calibration_images[:CALIBRATION_IMAGES]])
    pixels = np.stack([fp32.preprocess(image) for image in verify_images])
    labels = np.asarray(verify_labels)
    fp32_logits = _logits(fp32, pixels)
    sample = pixels[:1]
    report: dict[str, Any] = {
        "verify_images": len(labels),
        "fp32": {"max_abs_logit_diff_vs_torch": float(np.abs(fp32_logits - torch_logits).max()),
                 "accuracy": float((fp32_logits.argmax(-1) == labels).mean()),
                 "size_mb": round((out / ONNX_FP32).stat().st_size / 1e6, 2),
                 **latency_ms(lambda x: fp32.session.run(None, {fp32.input_name: x}), sample)},
        "int8_candidates": [],
    }
    torch_accuracy = float((torch_logits.argmax(-1) == labels).mean())
    best = None
    for setup in INT8_SETUPS:
        path = quantize(out, setup, calibration, f"_{setup.name}.onnx")
        candidate = OnnxPredictor(out, path.name, threads)
        row = {"setup": setup.name, "size_mb": round(path.stat().st_size / 1e6, 2),
               **latency_ms(lambda x, c=candidate: c.session.run(None, {c.input_name: x}), sample)}
        report["int8_candidates"].append(row)
        if row["p50_ms"] >= report["fp32"]["p50_ms"]:
            row["skipped"] = "slower than fp32 at batch 1: cannot be the choice, accuracy not measured"
            continue
        logits = _logits(candidate, pixels)
        row["top1_agreement"] = float((logits.argmax(-1) == torch_logits.argmax(-1)).mean())
        row["accuracy"] = float((logits.argmax(-1) == labels).mean())
        row["accuracy_change_points"] = round(100 * (row["accuracy"] - torch_accuracy), 3)
        if row["top1_agreement"] >= MIN_AGREEMENT and (best is None or row["p50_ms"] < best[1]["p50_ms"]):
            best = (path, row)
    for row in report["int8_candidates"]:
        if best is None or row is not best[1]:
            (out / f"_{row['setup']}.onnx").unlink()
    report["torch_accuracy"] = torch_accuracy
    report["int8"] = _choose(best, out, report["fp32"])
    report["calibration_photos"] = photo_set_digest(calibration_images[:CALIBRATION_IMAGES])
    report["weights_sha256"] = file_sha256(Path(model_dir) / WEIGHTS)
    (out / EXPORT_REPORT).write_text(json.dumps(report, indent=2))
    return report


def rebuild_export(model_dir: str | Path, out_dir: str | Path, recorded: dict[str, Any], calibration_images: Sequence,
                   check_images: Sequence, torch_logits: np.ndarray, threads: int = 2) -> dict[str, Any]:
    """The release's verified export made again (ONNX files are not committed): fp32, checked against PyTorch on
    `check_images`, and the recorded INT8 set-up with the same calibration photos. The INT8 file is served only
    if it is byte-identical to the one verified at release time (onnxruntime versions may quantize differently)."""
    if photo_set_digest(calibration_images[:CALIBRATION_IMAGES]) != recorded.get("calibration_photos"):
        raise ValueError(f"{model_dir}: its INT8 file was calibrated on other photos than these; pass the "
                         "release's calibration photos (scripts/release_reports.sh names them)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ONNX_INT8).unlink(missing_ok=True)
    export_fp32(model_dir, out)
    fp32 = OnnxPredictor(out, ONNX_FP32, threads)
    pixels = np.stack([fp32.preprocess(image) for image in check_images])
    report: dict[str, Any] = {
        "rebuilt": True, "check_images": len(check_images), "calibration_photos": recorded["calibration_photos"],
        "weights_sha256": file_sha256(Path(model_dir) / WEIGHTS),
        "fp32": {"max_abs_logit_diff_vs_torch": float(np.abs(_logits(fp32, pixels) - torch_logits).max())}}
    int8 = recorded["int8"]
    if not int8.get("recommended"):
        report["int8"] = {"served": False, "reason": f"not recommended at release time: {int8['reason']}"}
    else:
        setup = next(s for s in INT8_SETUPS if s.name == int8["setup"])
        calibration = np.stack([fp32.preprocess(image) for image in calibration_images[:CALIBRATION_IMAGES]])
        path = quantize(out, setup, calibration, ONNX_INT8)
        same = file_sha256(path) == int8.get("sha256")
        if not same:
            path.unlink()
        report["int8"] = {**int8, "served": same, "reason": "byte-identical to the INT8 file verified at release "
                          "time" if same else "differs from the INT8 file verified at release time (another "
                          "onnxruntime version?): fp32 is served"}
    (out / EXPORT_REPORT).write_text(json.dumps(report, indent=2))
    return report


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def photo_set_digest(images: Sequence) -> str:
    """sha256 over the photos' bytes, in order: which calibration photos an INT8 file was made from."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(hashlib.sha256(image if isinstance(image, bytes) else Path(image).read_bytes()).digest())
    return digest.hexdigest()


def calibration_sample(rows: datasets.Dataset, seed: int = 42) -> list:
    """The photos INT8 calibration reads: up to CALIBRATION_IMAGES of `rows`, in a seeded order."""
    rows = rows.shuffle(seed=seed)
    return [image.get("bytes") or image["path"] for image in rows.select(range(min(CALIBRATION_IMAGES,
                                                                                    len(rows))))["image"]]


def _choose(best, out: Path, fp32: dict[str, Any]) -> dict[str, Any]:
    """Keep the fastest agreeing INT8 file; recommend it only if it really pays off on this CPU."""
    if best is None:
        return {"recommended": False,
                "reason": f"no INT8 set-up was faster than fp32 and kept {MIN_AGREEMENT:.0%} top-1 agreement"}
    path, row = best
    path.rename(out / ONNX_INT8)
    speed, size = row["p50_ms"] / fp32["p50_ms"], row["size_mb"] / fp32["size_mb"]
    pays_off = speed <= 0.8 and size <= 0.3 and abs(row["accuracy_change_points"]) <= 0.5
    return {**row, "file": ONNX_INT8, "sha256": file_sha256(out / ONNX_INT8), "p50_vs_fp32": round(speed, 3),
            "size_vs_fp32": round(size, 3),
            "recommended": pays_off,
            "reason": (f"p50 {speed:.2f}x and size {size:.2f}x of fp32, accuracy change "
                       f"{row['accuracy_change_points']:+.2f} points" + ("" if pays_off else
                                                                         ": misses a target (p50 <= 0.8x, "
                                                                         "size <= 0.3x, |change| <= 0.5)"))}


def record_in_release(model_dir: str | Path, report: dict[str, Any]) -> None:
    """The verified export figures go into the release's config (and so its card), with what a rebuild needs."""
    ReleaseMetadata.update(model_dir, export={key: report[key] for key in ("fp32", "int8", "verify_images",
                                                                           "calibration_photos")})


def is_current(model_dir: str | Path, out_dir: str | Path, gate_dir: str | Path) -> bool:
    """Whether `out_dir` already holds an export of these weights, and `gate_dir` one of the gate they name."""
    report, gate_report = Path(out_dir) / EXPORT_REPORT, Path(gate_dir) / GATE_EXPORT_REPORT
    if not report.is_file() or json.loads(report.read_text()).get("weights_sha256") != file_sha256(
            Path(model_dir) / WEIGHTS):
        return False
    gate = ReleaseMetadata.read(model_dir).leaf_gate
    return not gate or (gate_report.is_file() and json.loads(gate_report.read_text()).get("gate_sha256")
                        == gate["sha256"])


def export_release(model_dir: str | Path, data: LeafDataset, out_dir: str | Path, gate_dir: str | Path,
                   split: str = "test", calibration_data: LeafDataset | None = None, rebuild: bool = False,
                   record: bool = False) -> dict[str, Any]:
    """`cropdx export`: the classifier (searched and verified on `split` of `data`, or rebuilt from the release's
    record) and, once per gate, the leaf gate its config names."""
    from cropdx_hf.evaluation.predictions import predict_split, select_split
    from cropdx_hf.gate.export import export_gate

    model_dir = Path(model_dir)
    reference = predict_split(model_dir, data, split)
    photos = [image.get("bytes") or image["path"] for image in reference.rows["image"]]
    calibration_rows = calibration_data.rows if calibration_data else select_split(data, model_dir / "split.csv",
                                                                                     "train")
    calibration = calibration_sample(calibration_rows if len(calibration_rows) else data.rows)
    meta = ReleaseMetadata.read(model_dir)
    if rebuild:
        if not meta.export:
            raise ValueError(f"{model_dir}: no recorded export to rebuild; run `cropdx export` on its data first")
        report = rebuild_export(model_dir, out_dir, meta.export, calibration, photos, reference.logits)
    else:
        report = export_model(model_dir, out_dir, calibration, photos, reference.labels, reference.logits)
        if record:
            record_in_release(model_dir, report)
    if meta.leaf_gate:
        gate_report = Path(gate_dir) / GATE_EXPORT_REPORT
        exported = json.loads(gate_report.read_text()).get("gate_sha256") if gate_report.is_file() else None
        if exported != meta.leaf_gate["sha256"]:
            export_gate(model_dir / meta.leaf_gate["file"], gate_dir, photos[:GATE_CHECK_IMAGES])
        report["gate"] = json.loads(gate_report.read_text())
    return report
