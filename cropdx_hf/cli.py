"""`cropdx` command line: one subcommand per pipeline step, each a thin shell over the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields

from transformers import HfArgumentParser

from .backbones import BACKBONES, WeightsUnavailableError
from .data import DataError
from .images import ImageError
from .model_folder import ModelFolderError

USER_ERRORS = (DataError, ImageError, ModelFolderError, WeightsUnavailableError, FileNotFoundError, KeyError,
               ValueError)


def _eda(args: argparse.Namespace) -> int:
    from .data import load_leaf_dataset
    from .eda import write_eda

    stats = write_eda(load_leaf_dataset(args.data, args.classes), args.out)
    print(f"wrote {args.out}/report.md ({stats['n_images']} images, {stats['n_classes']} classes, "
          f"{len(stats['corrupt_files'])} unreadable)")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .predict import Predictor

    predictor = Predictor.from_backbone(args.backbone) if args.backbone else Predictor.from_folder(args.model)
    failed = 0
    results = {}
    for image in args.images:
        try:
            results[image] = [p.to_dict() for p in predictor.predict(image, top_k=args.top_k)]
        except ImageError as exc:
            failed += 1
            results[image] = {"error": str(exc)}
    for image, result in results.items():
        if args.json:
            continue
        print(image)
        if "error" in result:
            print(f"  error: {result['error']}")
        for rank, pred in enumerate(result if isinstance(result, list) else [], 1):
            print(f"  {rank}. {pred['class_name']:<45} {pred['probability']:.1%}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    out = train(cfg)
    print(f"wrote {out} (test metrics in {out}/metrics.json)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cropdx", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    eda = sub.add_parser("eda", help="exploration report for an image folder")
    eda.add_argument("--data", required=True, help="image folder (class per sub-folder) or a Hub dataset id")
    eda.add_argument("--out", required=True)
    eda.add_argument("--classes", default=None, help="'all', a crop, or comma-separated class names")
    eda.set_defaults(func=_eda)

    predict = sub.add_parser("predict", help="top-k classes for one or more photos")
    predict.add_argument("images", nargs="+")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model folder")
    source.add_argument("--backbone", choices=sorted(BACKBONES), help="bare ImageNet backbone (install check)")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(func=_predict)

    from .train import TrainConfig  # the recipe's dataclass is the single source of its options

    train = sub.add_parser("train", help="fine-tune a backbone with the three-stage recipe",
                           parents=[HfArgumentParser(TrainConfig, add_help=False)])
    train.set_defaults(func=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"cropdx {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
