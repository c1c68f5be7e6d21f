"""`cropdx export`: ONNX (fp32) and INT8 files via optimum, each verified before it is trusted.

The optimum CLI cannot export a local TimmWrapper folder (it takes the path for a Hub id), so the model is
loaded with transformers and handed to `onnx_export_from_model` with a vision ONNX config (dynamic batch
axis). For INT8 several quantization set-ups are measured and the fastest one that keeps the predictions
is kept: on CPUs with and without VNNI the winner differs, and dynamic INT8 is often slower than fp32.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from .model_config import CONFIG, PREPROCESSOR, update_metadata
from .onnx_predict import ONNX_FP32, ONNX_INT8, OnnxPredictor

CALIBRATION_IMAGES = 128
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


def latency_ms(run, sample: np.ndarray, runs: int = 50, warmup: int = 10) -> dict[str, float]:
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        run(sample)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


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
    (out / "export_metrics.json").write_text(json.dumps(report, indent=2))
    return report


def _choose(best, out: Path, fp32: dict[str, Any]) -> dict[str, Any]:
    """Keep the fastest agreeing INT8 file; recommend it only if it really pays off on this CPU."""
    if best is None:
        return {"recommended": False,
                "reason": f"no INT8 set-up was faster than fp32 and kept {MIN_AGREEMENT:.0%} top-1 agreement"}
    path, row = best
    path.rename(out / ONNX_INT8)
    speed, size = row["p50_ms"] / fp32["p50_ms"], row["size_mb"] / fp32["size_mb"]
    pays_off = speed <= 0.8 and size <= 0.3 and abs(row["accuracy_change_points"]) <= 0.5
    return {**row, "file": ONNX_INT8, "p50_vs_fp32": round(speed, 3), "size_vs_fp32": round(size, 3),
            "recommended": pays_off,
            "reason": (f"p50 {speed:.2f}x and size {size:.2f}x of fp32, accuracy change "
                       f"{row['accuracy_change_points']:+.2f} points" + ("" if pays_off else
                                                                         ": misses a target (p50 <= 0.8x, "
                                                                         "size <= 0.3x, |change| <= 0.5)"))}


def record_in_release(model_dir: str | Path, report: dict[str, Any]) -> None:
    """The verified export figures go into the release's config (and so its card)."""
    summary = {"fp32": report["fp32"], "int8": report["int8"], "verify_images": report["verify_images"]}
    update_metadata(model_dir, {"export": summary})
