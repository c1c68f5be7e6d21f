"""`cropdx evaluate`: metrics.json, plots and report.md for a model on labelled photos."""

from __future__ import annotations

import argparse

from cropdx_hf.commands.common import Subcommands, model_dir, model_option


def register(sub: Subcommands) -> None:
    evaluate = sub.add_parser("evaluate", help="metrics.json, plots and report.md for a model on labelled photos",
                              parents=[model_option()])
    evaluate.add_argument("--data", required=True, help="image folder; class names may be any known alias")
    evaluate.add_argument("--out", required=True)
    evaluate.add_argument("--split", choices=["auto", "test", "validation", "all"], default="auto",
                          help="auto: the model's test split when its split covers the data, else every photo")
    evaluate.add_argument("--image-size", type=int, help="evaluate at this input size instead of the model's own")
    evaluate.add_argument("--crop-pct", type=float, help="centre crop instead of the model's own (1.0: whole photo)")
    evaluate.add_argument("--field-photos", help="folder from scripts/field_photos.py: evaluate on the field proxy "
                                                 "of the split (each photo's seeded field-style view) instead")
    evaluate.add_argument("--out-of-fold", action="store_true",
                          help="score --data (the real field photos the release was cross-validated on) with the "
                               "release's stored out-of-fold logits instead of running the model")
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.evaluation.run import EvaluationSettings, evaluate_model

    settings = EvaluationSettings(args.split, args.image_size, args.crop_pct, args.field_photos, args.out_of_fold)
    metrics = evaluate_model(model_dir(args, args.model), args.data, args.out, settings)
    if metrics["skipped_classes"]:
        print(f"skipped classes without a counterpart: {', '.join(metrics['skipped_classes'])}")
    flags = metrics["quality_flags"]
    per_check = ", ".join(f"{name} {count}" for name, count in flags.items() if name not in ("photos", "flagged"))
    print(f"{metrics['n']} photos: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
          f"top-3 {metrics['top3_accuracy']:.4f}; photo-quality check flagged {flags['flagged']}"
          + (f" ({per_check})" if per_check else "") + f"; wrote {args.out}/metrics.json and report.md")
    return 0
