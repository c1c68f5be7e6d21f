"""`cropdx predict`: the diagnosis of one or more photos (or a bare backbone's ImageNet top-k, as an install check)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cropdx_hf.commands.common import Subcommands, model_dir
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8, read_config
from cropdx_hf.photos import ImageError, find_photos
from cropdx_hf.release.registry import DEFAULT_RELEASE


def register(sub: Subcommands) -> None:
    predict = sub.add_parser("predict", help="top-k classes for one or more photos")
    predict.add_argument("images", nargs="+", help="photos, or folders of them")
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--model", help=f"release name, model folder or Hub id (default: {DEFAULT_RELEASE})")
    source.add_argument("--backbone", help="bare ImageNet backbone, e.g. efficientnet_lite0 (install check)")
    source.add_argument("--onnx", help="an export folder: torch-free inference with onnxruntime")
    predict.add_argument("--int8", action="store_true", help="with --onnx: the INT8 file")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Bare backbones print ImageNet top-k; trained models print the diagnosis (threshold, treatment). Exits 1 when a
    photo could not be read (the others are still answered)."""
    photos = find_photos(args.images)
    if args.onnx:
        read_config(args.onnx, weights=ONNX_INT8 if args.int8 else ONNX_FP32)
    elif not args.backbone:
        args.model = model_dir(args, args.model)  # an unknown name fails here, before torch is imported
    predictor = _predictor(args)
    results: dict[str, Any] = {}
    for photo in photos:
        try:
            results[photo] = (predictor.predict(photo, top_k=args.top_k) if args.backbone
                              else predictor.diagnose(photo, top_k=args.top_k))
        except ImageError as exc:
            results[photo] = exc
    if args.json:
        print(json.dumps({photo: _as_json(result) for photo, result in results.items()}, indent=2))
    else:
        print("\n".join(_describe(photo, result) for photo, result in results.items()))
    return 1 if any(isinstance(result, ImageError) for result in results.values()) else 0


def _predictor(args: argparse.Namespace):
    if args.onnx:
        from cropdx_hf.inference.onnx_predictor import OnnxPredictor

        return OnnxPredictor.from_export(args.onnx, ONNX_INT8 if args.int8 else ONNX_FP32)
    from cropdx_hf.inference.predictor import Predictor

    return Predictor.from_backbone(args.backbone) if args.backbone else Predictor.from_folder(args.model)


def _as_json(result) -> dict | list:
    if isinstance(result, ImageError):
        return {"error": str(result)}
    return [p.to_dict() for p in result] if isinstance(result, list) else result.to_dict()


def _describe(photo: str, result) -> str:
    """A few lines per photo: its status, the top-k, failed photo checks and the first treatment steps."""
    if isinstance(result, ImageError):
        return f"{photo}\n  error: {result}"
    if isinstance(result, list):  # a bare backbone's ImageNet classes
        return "\n".join([photo] + [f"  {rank}. {p.class_name:<45} {p.probability:.1%}"
                                    for rank, p in enumerate(result, 1)])
    lines = [f"{photo}: {result.status}" + (f" ({result.message})" if result.message else "")]
    lines += [f"  {rank}. {c.display_name:<45} {c.probability:.1%}" for rank, c in enumerate(result.predictions, 1)]
    if result.quality and not result.quality.passed:
        lines += [f"  photo check: {check.tip}" for check in result.quality.failed]
    if result.treatment:
        lines.append(f"  {result.treatment.urgency} First steps: {'; '.join(result.treatment.advice[:2])}")
    return "\n".join(lines)
