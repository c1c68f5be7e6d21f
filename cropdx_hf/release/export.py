"""`cropdx export`: ONNX (fp32) and INT8 files via optimum, each verified before it is trusted.

The optimum CLI cannot export a local TimmWrapper folder (it takes the path for a Hub id), so the model is
loaded with transformers and handed to `onnx_export_from_model` with a vision ONNX config (dynamic batch
axis). For INT8 the set-ups of `release.quantize` are measured and the fastest one that keeps the predictions
is kept. The leaf gate's generic network is exported beside them (`release.gate_export`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np

from cropdx_hf.data.loading import LeafDataset
from cropdx_hf.gate.leaf_gate import GATE_FILE
from cropdx_hf.inference.onnx_predictor import FEATURES_OUTPUT, GATE_ONNX, OnnxPredictor
from cropdx_hf.modeling.config import CONFIG, ONNX_FP32, ONNX_INT8, PREPROCESSOR, WEIGHTS, read_config
from cropdx_hf.modeling.exports import EXPORT_REPORT, GATE_EXPORT_REPORT, ExportRecord
from cropdx_hf.modeling.metadata import ReleaseMetadata
from cropdx_hf.photos import load_image, stored_photo
from cropdx_hf.release.quantize import INT8_SETUPS, quantize
from cropdx_hf.release.timing import latency_summary, timed

if TYPE_CHECKING:
    from cropdx_hf.inference.predictor import Predictor

CALIBRATION_PHOTOS = 64  # photos INT8 calibration reads, each also as FIELD_VIEWS field-style views
FIELD_VIEWS = 2
GATE_CHECK_IMAGES = 64  # photos the exported gate network is compared with PyTorch on
MIN_AGREEMENT = 0.99  # an INT8 set-up that changes more top-1 answers than this is rejected
# Field photos sit closer to decision boundaries: INT8 changes several times more top-1 answers on the field proxy
# than on lab photos, right and wrong ones alike. There, it must not cost accuracy: at most this many points.
MAX_FIELD_ACCURACY_LOSS = 0.5
# Latency is measured as the Space serves: one intra-op thread per call, which concurrent requests on two cores
# need; INT8 pays most there (measured in docs/benchmarks.md).
SERVING_THREADS = 1


def export_fp32(model_dir: str | Path, out_dir: str | Path) -> Path:
    from optimum.exporters.onnx import onnx_export_from_model
    from optimum.exporters.onnx.model_configs import ViTOnnxConfig
    from transformers import AutoModelForImageClassification

    # saving the model calls TimmWrapperImageProcessor.save_pretrained, which warns that it saves nothing: the
    # preprocessing is in config.json, copied below
    logging.getLogger("transformers.models.timm_wrapper.image_processing_timm_wrapper").setLevel(logging.ERROR)
    out = Path(out_dir)
    model = AutoModelForImageClassification.from_pretrained(str(model_dir)).eval()
    channels, height, _ = model.config.pretrained_cfg["input_size"]
    model.config.image_size, model.config.num_channels = height, channels  # what the dummy inputs read
    fix_same_padding(model, (channels, height, height))
    onnx_config = ViTOnnxConfig(model.config, task="image-classification")
    with warnings.catch_warnings():
        # the fixed 'SAME' padding exports as strided Slices that torch.onnx cannot constant-fold, once per pass:
        # harmless, the exported logits are checked against PyTorch's before the file is used
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        onnx_export_from_model(model, out, task="image-classification", custom_onnx_configs={"model": onnx_config},
                               do_validation=False)
    add_features_output(out / ONNX_FP32)
    # TimmWrapperConfig.to_dict drops id2label; our config keeps labels, preprocessing, calibration and the gate
    for name in (CONFIG, PREPROCESSOR, GATE_FILE):
        if (Path(model_dir) / name).is_file():
            shutil.copy(Path(model_dir) / name, out / name)
    return out / ONNX_FP32


def fix_same_padding(model, input_size: tuple[int, int, int]) -> None:
    """TF-ported EfficientNets pad 'SAME' from the input's shape at every call, which exports as shape arithmetic
    and a Pad before each strided convolution (INT8 dequantizes around each: lite0's INT8 file ran 12.2 ms on one
    thread). At the served input size that padding is a constant; timm's Conv2dSameExport fixes it on its first
    call, so the model's Conv2dSame layers (same weights, no other state) become that class and run once at
    `input_size`."""
    import torch
    from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport

    same = [module for module in model.modules() if isinstance(module, Conv2dSame)]
    for module in same:
        module.__class__ = Conv2dSameExport
        module.pad, module.pad_input_size = None, (0, 0)
    if same:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))


def add_features_output(path: Path) -> None:
    """A second graph output, `features`: what the classifier's last linear layer reads, which the leaf gate needs
    too. optimum's image-classification export returns the logits only; `logits` stays the first output, so
    ORTModelForImageClassification and plain `session.run(None, ...)[0]` read the same as before."""
    import onnx

    model = onnx.load(str(path))
    head = [node for node in model.graph.node if node.op_type == "Gemm"][-1]
    model.graph.node.append(onnx.helper.make_node("Identity", [head.input[0]], [FEATURES_OUTPUT],
                                                  name="features_output"))
    width = next(i for i in model.graph.initializer if i.name == head.input[1]).dims[1]
    model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURES_OUTPUT, onnx.TensorProto.FLOAT,
                                                                 ["batch_size", width]))
    onnx.save(model, str(path))


def latency_ms(run: Callable[[np.ndarray], object], sample: np.ndarray, runs: int = 50) -> dict[str, float]:
    """Batch-1 latency of one ONNX session on `sample`."""
    return latency_summary(timed(lambda: run(sample), runs))


def _logits(predictor: OnnxPredictor, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([predictor.session.run(None, {predictor.input_name: pixels[i:i + batch]})[0]
                           for i in range(0, len(pixels), batch)])


@dataclass(frozen=True)
class VerifySet:
    """Photos an export is verified on, their labels and PyTorch's logits on them (the reference)."""

    images: Sequence
    labels: np.ndarray
    torch_logits: np.ndarray

    def compare(self, predictor: OnnxPredictor) -> dict[str, float]:
        logits = _logits(predictor, np.stack([predictor.preprocess(image) for image in self.images]))
        accuracy = float((logits.argmax(-1) == self.labels).mean())
        torch_accuracy = float((self.torch_logits.argmax(-1) == self.labels).mean())
        return {"top1_agreement": float((logits.argmax(-1) == self.torch_logits.argmax(-1)).mean()),
                "accuracy": accuracy, "accuracy_change_points": round(100 * (accuracy - torch_accuracy), 3)}


def export_model(
    model_dir: str | Path, out_dir: str | Path, calibration_images: Sequence, verify_images: Sequence,
    verify_labels: Sequence[int], torch_logits: np.ndarray, threads: int = SERVING_THREADS,
    field_proxy: VerifySet | None = None,
) -> dict[str, Any]:
    """Export, quantize, verify. `torch_logits` are PyTorch's logits on `verify_images` (the reference); with
    `field_proxy`, INT8 must also keep the accuracy on those views (MAX_FIELD_ACCURACY_LOSS)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ONNX_INT8).unlink(missing_ok=True)  # an INT8 file from earlier weights must not outlive this export
    export_fp32(model_dir, out)
    fp32 = OnnxPredictor(out, ONNX_FP32, threads)
    calibration = np.stack([fp32.preprocess(image) for image in calibration_inputs(calibration_images)])
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
        keeps_field = True
        if field_proxy is not None:
            row["field_proxy"] = field_proxy.compare(candidate)
            keeps_field = row["field_proxy"]["accuracy_change_points"] >= -MAX_FIELD_ACCURACY_LOSS
        if row["top1_agreement"] >= MIN_AGREEMENT and keeps_field and (best is None
                                                                         or row["p50_ms"] < best[1]["p50_ms"]):
            best = (path, row)
    for row in report["int8_candidates"]:
        if best is None or row is not best[1]:
            (out / f"_{row['setup']}.onnx").unlink()
    report["torch_accuracy"] = torch_accuracy
    report["int8"] = _choose(best, out, report["fp32"])
    report["calibration_photos"] = photo_set_digest(calibration_images)
    report["weights_sha256"] = file_sha256(Path(model_dir) / WEIGHTS)
    ExportRecord(report).write(out)
    return report


def rebuild_export(model_dir: str | Path, out_dir: str | Path, recorded: dict[str, Any], calibration_images: Sequence,
                   check_images: Sequence, torch_logits: np.ndarray, threads: int = SERVING_THREADS) -> dict[str, Any]:
    """The release's verified export made again (ONNX files are not committed): fp32, checked against PyTorch on
    `check_images`, and the recorded INT8 set-up with the same calibration photos. The INT8 file is served only
    if it is byte-identical to the one verified at release time (onnxruntime versions may quantize differently)."""
    if photo_set_digest(calibration_images) != recorded.get("calibration_photos"):
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
        calibration = np.stack([fp32.preprocess(image) for image in calibration_inputs(calibration_images)])
        path = quantize(out, setup, calibration, ONNX_INT8)
        same = file_sha256(path) == int8.get("sha256")
        if not same:
            path.unlink()
        report["int8"] = {**int8, "served": same, "reason": "byte-identical to the INT8 file verified at release "
                          "time" if same else "differs from the INT8 file verified at release time (another "
                          "onnxruntime version?): fp32 is served"}
    ExportRecord(report).write(out)
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
    """The photos INT8 calibration reads: up to CALIBRATION_PHOTOS of `rows`, in a seeded order."""
    rows = rows.shuffle(seed=seed)
    return [stored_photo(image) for image in rows.select(range(min(CALIBRATION_PHOTOS,
                                                                                    len(rows))))["image"]]


def calibration_inputs(photos: Sequence) -> list:
    """Each calibration photo and FIELD_VIEWS field-style views of it over procedural scenes. Field photos reach
    activations lab photos never do (min-max ranges from lab photos alone clipped them); procedural scenes are
    functions of their seed, so a fresh clone makes the same inputs from the same photos, and the same INT8 file."""
    from cropdx_hf.field.backgrounds import BackgroundBank
    from cropdx_hf.field.composite import FieldStyle, field_view

    scenes, style = BackgroundBank(photos=[]), FieldStyle(lab_share=0.0)
    loaded = [load_image(photo) for photo in photos]
    return loaded + [field_view(photo, scenes, FIELD_VIEWS * i + k, style)
                     for i, photo in enumerate(loaded) for k in range(FIELD_VIEWS)]


def _choose(best, out: Path, fp32: dict[str, Any]) -> dict[str, Any]:
    """Keep the fastest agreeing INT8 file; recommend it only if it really pays off on this CPU."""
    if best is None:
        return {"recommended": False,
                "reason": f"no INT8 set-up was faster than fp32, kept {MIN_AGREEMENT:.0%} top-1 agreement and (where "
                          f"measured) lost at most {MAX_FIELD_ACCURACY_LOSS:g} point on the field proxy"}
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
    ReleaseMetadata.update(model_dir, export=ExportRecord({key: report[key] for key in (
        "fp32", "int8", "verify_images", "calibration_photos")}))


def is_current(model_dir: str | Path, out_dir: str | Path, gate_dir: str | Path) -> bool:
    """Whether `out_dir` already holds an export of these weights and leaf gate, and `gate_dir` the gate network."""
    from cropdx_hf.release.gate_export import is_current as gate_network_is_current

    if not ((Path(out_dir) / EXPORT_REPORT).is_file() and (Path(out_dir) / ONNX_FP32).is_file()):
        return False
    if ExportRecord.read(out_dir).weights_sha256 != file_sha256(Path(model_dir) / WEIGHTS):
        return False
    gate = ReleaseMetadata.read(model_dir).leaf_gate
    exported = ReleaseMetadata.from_config(read_config(out_dir, weights=ONNX_FP32)).leaf_gate
    return gate == exported and (not gate or gate_network_is_current(gate_dir))


def export_release(model_dir: str | Path, data: LeafDataset, out_dir: str | Path, gate_dir: str | Path,
                   split: str = "test", calibration_data: LeafDataset | None = None, rebuild: bool = False,
                   record: bool = False, field_photos: str | Path | None = None) -> dict[str, Any]:
    """`cropdx export`: the classifier (searched and verified on `split` of `data` and, with `field_photos`, on its
    field proxy; or rebuilt from the release's record) and the leaf gate its config names."""
    from cropdx_hf.evaluation.predictions import predict_split, select_split

    model_dir = Path(model_dir)
    reference = predict_split(model_dir, data, split)
    photos = [stored_photo(image) for image in reference.rows["image"]]
    calibration_rows = calibration_data.rows if calibration_data else select_split(data, model_dir / "split.csv",
                                                                                     "train")
    calibration = calibration_sample(calibration_rows if len(calibration_rows) else data.rows)
    meta = ReleaseMetadata.read(model_dir)
    if rebuild:
        if not meta.export:
            raise ValueError(f"{model_dir}: no recorded export to rebuild; run `cropdx export` on its data first")
        report = rebuild_export(model_dir, out_dir, meta.export.report, calibration, photos, reference.logits)
    else:
        field_proxy = None
        if field_photos:
            proxy = predict_split(model_dir, data, split, field_photos=field_photos)
            field_proxy = VerifySet([image["bytes"] for image in proxy.rows["image"]], proxy.labels, proxy.logits)
        report = export_model(model_dir, out_dir, calibration, photos, reference.labels, reference.logits,
                              field_proxy=field_proxy)
        if record:
            record_in_release(model_dir, report)
    if meta.leaf_gate:
        report["gate"] = verify_gate(model_dir, out_dir, gate_dir, photos, calibration)
        ExportRecord(report).write(out_dir)
    return report


def verify_gate(model_dir: Path, out_dir: str | Path, gate_dir: str | Path, photos: Sequence,
                calibration_photos: Sequence) -> dict[str, Any]:
    """The gate network, exported once for every release (INT8 calibrated like the classifiers), then the whole
    ONNX gate (the served classifier file's features and the exported network's) against the PyTorch gate,
    decision by decision. Below MIN_AGREEMENT through the INT8 network, fp32 is served from then on."""
    from cropdx_hf.inference.predictor import Predictor
    from cropdx_hf.release.gate_export import export_gate_network, is_current, withdraw_int8

    torch_predictor = Predictor.from_folder(model_dir)
    gate = torch_predictor.gate
    if not is_current(gate_dir, gate.backbone, gate.image_size):
        export_gate_network(gate_dir, photos[:GATE_CHECK_IMAGES], calibration_inputs(calibration_photos),
                            gate.backbone, gate.image_size)
    torch_decisions = np.concatenate([_leaf_decisions(torch_predictor, photos[i:i + 32])
                                      for i in range(0, len(photos), 32)])
    while True:
        onnx_predictor = OnnxPredictor.for_release(model_dir, out_dir)
        onnx_decisions = np.concatenate([_leaf_decisions(onnx_predictor, photos[i:i + 32])
                                         for i in range(0, len(photos), 32)])
        agree = float(np.mean(torch_decisions == onnx_decisions))
        served = onnx_predictor.gate_network.file_name
        if agree >= MIN_AGREEMENT or served == GATE_ONNX:
            break
        withdraw_int8(gate_dir, f"{model_dir.name}: gate decisions through it agreed with PyTorch's on only "
                                f"{agree:.2%} of {len(photos)} photos")
    report = ExportRecord.read(gate_dir, GATE_EXPORT_REPORT).report
    return {**report, "served_file": served, "check_photos": len(photos), "decisions_agree": agree}


def _leaf_decisions(predictor: Predictor | OnnxPredictor, photos: Sequence) -> np.ndarray:
    images = [load_image(image) for image in photos]
    return np.array([d.status != "not_a_leaf" for d in predictor.diagnose_many(images)])
