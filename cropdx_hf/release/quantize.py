"""INT8 quantization through optimum's ORTQuantizer: the set-ups `cropdx export` measures, and one call to make each.

Several set-ups are measured because the fastest one that keeps the predictions differs between CPUs with and
without VNNI, and dynamic INT8 is often slower than fp32.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from cropdx_hf.modeling.config import ONNX_FP32

# ORTQuantizer warns when the folder holds no transformers config, as the leaf gate's network's folder never does:
# the quantized file is loaded by onnxruntime directly, never by an ORTModel
logging.getLogger("optimum.onnxruntime.quantization").setLevel(logging.ERROR)


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


def quantize(out_dir: Path, setup: Int8Setup, calibration: np.ndarray, file_name: str, source: str = ONNX_FP32
             ) -> Path:
    """`source` in `out_dir` quantized with `setup` (static set-ups read `calibration`, NCHW float32) to `file_name`.

    A graph with Pads (the TF-ported EfficientNets' 'SAME' padding) first goes through onnxruntime's quantization
    pre-processing, whose basic graph optimisations fold constant Pads into the convolutions: quantized as exported,
    each Pad kept a dequantize / quantize pair around it (lite0 INT8: 12.2 -> 9.1 ms). Graphs without Pads gain
    nothing from it and are quantized as exported, as they were when their INT8 files were verified."""
    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig

    prepared = out_dir / f"_prepared_{setup.name}.onnx"
    graph = source
    if any(node.op_type == "Pad" for node in onnx.load(str(out_dir / source)).graph.node):
        quant_pre_process(str(out_dir / source), str(prepared))
        graph = prepared.name
    try:
        quantizer = ORTQuantizer.from_pretrained(out_dir, file_name=graph)
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
    finally:
        prepared.unlink(missing_ok=True)
    return target
