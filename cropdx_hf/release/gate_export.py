"""The leaf gate's generic network as ONNX (fp32 and INT8): pixels to pooled features, shared by every release.

optimum exports transformers and timm classifiers with their heads; the gate needs the bare backbone's pooled
features, so it goes through torch.onnx directly. The fp32 file is checked against PyTorch's features; the INT8
file is served only while every release's gate decisions through it agree with PyTorch's (`release.export`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cropdx_hf.gate.leaf_gate import GATE_BACKBONE, GATE_IMAGE_SIZE
from cropdx_hf.gate.network import gate_network, pooled_features
from cropdx_hf.inference.onnx_predictor import GATE_ONNX, GATE_ONNX_INT8, session
from cropdx_hf.modeling.exports import GATE_EXPORT_REPORT, ExportRecord
from cropdx_hf.photos import load_image
from cropdx_hf.release.quantize import INT8_SETUPS, quantize

MAX_FEATURE_DIFF = 1e-3


class GenericFeatures(torch.nn.Module):
    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pooled_features(self.network, pixel_values)


def is_current(out_dir: str | Path, backbone: str = GATE_BACKBONE, image_size: int = GATE_IMAGE_SIZE) -> bool:
    report = Path(out_dir) / GATE_EXPORT_REPORT
    if not (report.is_file() and (Path(out_dir) / GATE_ONNX).is_file()):
        return False
    written = ExportRecord.read(out_dir, GATE_EXPORT_REPORT).report
    return (written.get("backbone"), written.get("image_size")) == (backbone, image_size)


def export_gate_network(out_dir: str | Path, check_images: Sequence, calibration_images: Sequence = (),
                        backbone: str = GATE_BACKBONE, image_size: int = GATE_IMAGE_SIZE) -> dict[str, Any]:
    """Write gate_network.onnx, its INT8 version when `calibration_images` are given (static, per channel: the
    classifiers' fastest set-up), and gate_network.json (what they are, their preprocessing, the fp32 parity)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / GATE_ONNX_INT8).unlink(missing_ok=True)
    network, transform = gate_network(backbone, image_size)
    pixels = torch.stack([transform(load_image(image)) for image in check_images])
    batch_axis = {"pixel_values": {0: "batch"}, "features": {0: "batch"}}
    torch.onnx.export(GenericFeatures(network).eval(), (pixels[:2],), str(out / GATE_ONNX),
                      input_names=["pixel_values"], output_names=["features"], dynamic_axes=batch_axis,
                      opset_version=17, dynamo=False)
    onnx_features = session(out / GATE_ONNX).run(None, {"pixel_values": pixels.numpy()})[0]
    with torch.inference_mode():
        torch_features = pooled_features(network, pixels).numpy()
    report = {"backbone": backbone, "image_size": image_size, "check_images": len(check_images),
              "max_abs_feature_diff": float(np.abs(onnx_features - torch_features).max()),
              "pretrained_cfg": {k: network.pretrained_cfg[k] for k in ("input_size", "mean", "std", "crop_pct",
                                                                         "interpolation")},
              "int8": {"served": False, "reason": "no calibration photos given"}}
    if report["max_abs_feature_diff"] > MAX_FEATURE_DIFF:
        raise RuntimeError(f"{out / GATE_ONNX}: ONNX features differ from PyTorch by "
                           f"{report['max_abs_feature_diff']:.2e}")
    if calibration_images:
        calibration = np.stack([transform(load_image(image)).numpy() for image in calibration_images])
        quantize(out, INT8_SETUPS[0], calibration, GATE_ONNX_INT8, source=GATE_ONNX)
        report["int8"] = {"served": True, "setup": INT8_SETUPS[0].name, "calibration_inputs": len(calibration),
                          "reason": "served while the releases' gate decisions through it agree with PyTorch's"}
    ExportRecord(report).write(out, GATE_EXPORT_REPORT)
    return report


def withdraw_int8(out_dir: str | Path, reason: str) -> None:
    """Serve the fp32 gate network from now on (a release's gate decisions disagreed through the INT8 one)."""
    out = Path(out_dir)
    (out / GATE_ONNX_INT8).unlink(missing_ok=True)
    report = ExportRecord.read(out, GATE_EXPORT_REPORT).report
    report["int8"] = {**report["int8"], "served": False, "reason": reason}
    ExportRecord(report).write(out, GATE_EXPORT_REPORT)
