"""The leaf gate as one ONNX graph: the generic network's pooled features and the fitted linear score, folded.

optimum exports transformers and timm classifiers; the gate is neither (a bare backbone plus our own linear
score), so it goes through torch.onnx directly. The export is checked against the PyTorch gate on real photos:
scores and leaf / not-a-leaf decisions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cropdx_hf.gate.leaf_gate import LeafGate, file_digest
from cropdx_hf.gate.network import gate_network, pooled_features
from cropdx_hf.inference.images import load_image
from cropdx_hf.inference.onnx_predictor import GATE_EXPORT_REPORT, GATE_ONNX

MAX_SCORE_DIFF = 1e-3


class GateScorer(torch.nn.Module):
    """pixels -> leaf score: score = weights / scale . features + (bias - weights . mean / scale)."""

    def __init__(self, gate: LeafGate):
        super().__init__()
        self.network = gate_network(gate.backbone)[0]
        weights = torch.as_tensor(gate.weights / gate.scale, dtype=torch.float32)
        self.score = torch.nn.Linear(len(weights), 1)
        with torch.no_grad():
            self.score.weight.copy_(weights[None])
            self.score.bias.fill_(float(gate.bias - (gate.weights * gate.mean / gate.scale).sum()))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.score(pooled_features(self.network, pixel_values))[:, 0]


def export_gate(gate_file: str | Path, out_dir: str | Path, check_images: Sequence) -> dict[str, Any]:
    """Write leaf_gate.onnx and gate_export.json (what it was made from, how closely it agrees)."""
    import onnxruntime as ort

    gate = LeafGate.load(gate_file)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scorer = GateScorer(gate).eval()
    network, transform = gate_network(gate.backbone)
    pixels = torch.stack([transform(load_image(image)) for image in check_images])
    batch_axis = {"pixel_values": {0: "batch"}, "leaf_score": {0: "batch"}}
    torch.onnx.export(scorer, (pixels[:2],), str(out / GATE_ONNX), input_names=["pixel_values"],
                      output_names=["leaf_score"], dynamic_axes=batch_axis, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(out / GATE_ONNX), providers=["CPUExecutionProvider"])
    onnx_scores = session.run(None, {"pixel_values": pixels.numpy()})[0]
    with torch.inference_mode():
        torch_scores = gate.score(pooled_features(network, pixels).numpy())
    report = {"gate_sha256": file_digest(gate_file), "threshold": gate.threshold, "check_images": len(check_images),
              "max_abs_score_diff": float(np.abs(onnx_scores - torch_scores).max()),
              "decisions_agree": float(np.mean((onnx_scores >= gate.threshold) == (torch_scores >= gate.threshold))),
              "pretrained_cfg": {k: network.pretrained_cfg[k] for k in ("input_size", "mean", "std", "crop_pct",
                                                                         "interpolation")}}
    if report["max_abs_score_diff"] > MAX_SCORE_DIFF:
        raise RuntimeError(f"{out / GATE_ONNX}: ONNX scores differ from PyTorch by {report['max_abs_score_diff']:.2e}")
    (out / GATE_EXPORT_REPORT).write_text(json.dumps(report, indent=2))
    return report
