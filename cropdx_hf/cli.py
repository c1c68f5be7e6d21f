"""`cropdx` command line: one subcommand per pipeline step, each a thin shell over the library.

Library modules are imported inside each command: `cropdx predict --onnx` must run where torch is not
installed, and `--help` should not pay for importing torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

import yaml

from cropdx_hf.errors import DataError, HubError, ModelFolderError, WeightsUnavailableError
from cropdx_hf.gate.leaf_gate import GATE_FOLDER
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8, read_config
from cropdx_hf.modeling.exports import ExportRecord
from cropdx_hf.photos import ImageError
from cropdx_hf.release.registry import DEFAULT_RELEASE, EXPORTS_ENV, MODELS_ENV, Releases, resolve_model
from cropdx_hf.training.config import ARGUMENT_GROUPS, TrainConfig

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
USER_ERRORS = (DataError, HubError, ImageError, ModelFolderError, WeightsUnavailableError, FileNotFoundError, KeyError,
               ValueError)


def _releases(args: argparse.Namespace) -> Releases:
    """The models folder (and exports folder) the command line or the environment names; an error without one."""
    releases = Releases.from_settings(args.models_dir, args.exports_dir)
    if releases is None:
        raise ModelFolderError(f"cropdx {args.command} needs a models folder: pass --models-dir or set {MODELS_ENV}")
    return releases


def _model_dir(args: argparse.Namespace, name: str | None) -> Path:
    """A model folder, a release of the models folder (when one is set) or a Hub id."""
    return resolve_model(name, Releases.from_settings(args.models_dir, args.exports_dir))


def _eda(args: argparse.Namespace) -> int:
    from cropdx_hf.data.eda import write_eda
    from cropdx_hf.data.loading import load_leaf_dataset

    stats = write_eda(load_leaf_dataset(args.data, args.classes), args.out)
    print(f"wrote {args.out}/report.md ({stats['n_images']} images, {stats['n_classes']} classes, "
          f"{len(stats['corrupt_files'])} unreadable)")
    return 0


def _predictor(args: argparse.Namespace):
    if args.onnx:
        from cropdx_hf.inference.onnx_predictor import OnnxPredictor

        return OnnxPredictor.from_export(args.onnx, ONNX_INT8 if args.int8 else ONNX_FP32)
    from cropdx_hf.inference.predictor import Predictor

    if args.backbone:
        return Predictor.from_backbone(args.backbone)
    return Predictor.from_folder(args.model)


def _photos(paths: Sequence[str]) -> list[str]:
    """Files as given and folders expanded to the photos inside; a path that is neither is an error, found
    before any model is loaded."""
    photos = []
    for path in paths:
        folder = Path(path)
        if folder.is_dir():
            found = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise DataError(f"{path}: a folder with no photos ({', '.join(sorted(PHOTO_SUFFIXES))})")
            photos += found
        elif folder.is_file():
            photos.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return photos


def _predict(args: argparse.Namespace) -> int:
    """Bare backbones print ImageNet top-k; trained models print the diagnosis (threshold, treatment)."""
    photos = _photos(args.images)
    if args.onnx:
        read_config(args.onnx, weights=ONNX_INT8 if args.int8 else ONNX_FP32)
    elif not args.backbone:
        args.model = _model_dir(args, args.model)  # an unknown name fails here, before torch is imported
    predictor = _predictor(args)
    results, failed = {}, 0
    for image in photos:
        try:
            results[image] = ([p.to_dict() for p in predictor.predict(image, top_k=args.top_k)] if args.backbone
                              else predictor.diagnose(image, top_k=args.top_k).to_dict())
        except ImageError as exc:
            failed += 1
            results[image] = {"error": str(exc)}
    print(json.dumps(results, indent=2) if args.json else "\n".join(_describe(i, r) for i, r in results.items()))
    return 1 if failed else 0


def _describe(image: str, result: dict | list) -> str:
    if isinstance(result, dict) and "error" in result:
        return f"{image}\n  error: {result['error']}"
    predictions = result if isinstance(result, list) else result["predictions"]
    lines = [image] if isinstance(result, list) else [f"{image}: {result['status']}" +
                                                      (f" ({result['message']})" if result["message"] else "")]
    lines += [f"  {rank}. {p.get('display_name', p['class_name']):<45} {p['probability']:.1%}"
              for rank, p in enumerate(predictions, 1)]
    if isinstance(result, dict) and result.get("quality") and not result["quality"]["passed"]:
        lines += [f"  photo check: {c['tip']}" for c in result["quality"]["checks"] if not c["passed"]]
    treatment = None if isinstance(result, list) else result["treatment"]
    if treatment:
        lines.append(f"  {treatment['urgency']} First steps: {'; '.join(treatment['actions'][:2])}")
    return "\n".join(lines)


def _calibrate(args: argparse.Namespace) -> int:
    from cropdx_hf.evaluation.calibrate import calibrate

    result = calibrate(_model_dir(args, args.model), args.data, args.field_data)
    print(f"temperature {result.temperature:.3f}, threshold {result.threshold:.2f}: {result.threshold_reason}")
    for report in result.calibration.values():
        answered = report["at_threshold"]
        print(f"  {report['photos']}: {answered['coverage']:.1%} answered, "
              f"{answered['selective_accuracy']:.1%} of them right")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cropdx_hf.evaluation.predictions import out_of_fold_split, predict_split
    from cropdx_hf.evaluation.report import write_report
    from cropdx_hf.evaluation.scores import full_metrics, quality_flags, write_metrics
    from cropdx_hf.modeling.metadata import ReleaseMetadata

    model_dir = _model_dir(args, args.model)
    threshold = ReleaseMetadata.read(model_dir).threshold
    pred = out_of_fold_split(model_dir, args.data) if args.out_of_fold else \
        predict_split(model_dir, args.data, args.split, args.image_size, args.crop_pct, args.field_photos)
    metrics = {**full_metrics(pred, threshold), "skipped_classes": pred.skipped_classes,
               "quality_flags": quality_flags(pred.rows)}
    if args.image_size or args.crop_pct:
        metrics["preprocessing_override"] = {"image_size": args.image_size, "crop_pct": args.crop_pct}
    if args.field_photos:
        metrics["photos"] = "field proxy: each photo's seeded field-style view (cropdx_hf/field/proxy.py)"
    if args.out_of_fold:
        metrics["photos"] = "real field photos, each scored by the fold model that never saw it (out of fold)"
    if pred.skipped_classes:
        print(f"skipped classes without a counterpart: {', '.join(pred.skipped_classes)}")
    out = Path(args.out)
    write_metrics(out / "metrics.json", metrics)
    write_report(pred, metrics, threshold, out)
    flags = metrics["quality_flags"]
    per_check = ", ".join(f"{k} {v}" for k, v in flags.items() if k not in ("photos", "flagged"))
    print(f"{metrics['n']} photos: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
          f"top-3 {metrics['top3_accuracy']:.4f}; photo-quality check flagged {flags['flagged']}"
          + (f" ({per_check})" if per_check else "") + f"; wrote {out}/metrics.json and report.md")
    return 0


def _export(args: argparse.Namespace) -> int:
    from cropdx_hf.data.loading import load_leaf_dataset
    from cropdx_hf.release.export import export_release, is_current

    releases = _releases(args)
    model_dir = resolve_model(args.model, releases)
    out, gate_out = releases.export_dir(model_dir.name), releases.export_dir(GATE_FOLDER)
    if args.if_stale and is_current(model_dir, out, gate_out):
        print(f"{out}: already an export of {model_dir}'s weights")
        return 0
    calibration = load_leaf_dataset(args.calibration_data) if args.calibration_data else None
    report = export_release(model_dir, load_leaf_dataset(args.data), out, gate_out, args.split, calibration,
                            args.rebuild, record=args.record and model_dir.parent == releases.models_dir,
                            field_photos=args.field_photos)
    fp32, int8 = report["fp32"], report["int8"]
    served = ExportRecord(report).serves_int8
    print(f"wrote {out}: fp32 max |logit diff| vs PyTorch "
          f"{fp32['max_abs_logit_diff_vs_torch']:.2e}; INT8 {int8.get('setup', 'none')}: {int8['reason']}; "
          f"serves {'INT8' if served else 'fp32'}"
          + (f"; leaf gate decisions agree with PyTorch on {report['gate']['decisions_agree']:.1%} of "
             f"{report['gate']['check_photos']} photos" if "gate" in report else ""))
    return 0


def _fit_leaf_gate(args: argparse.Namespace) -> int:
    from cropdx_hf.data.loading import load_leaf_dataset
    from cropdx_hf.training.leaf_gate import fit_leaf_gates

    model_dirs = [_model_dir(args, name) for name in args.models]  # unknown names fail before the long fit
    field = load_leaf_dataset(args.field_data) if args.field_data else None
    reports = fit_leaf_gates(load_leaf_dataset(args.data), args.split_csv, args.field_photos, model_dirs,
                             field_data=field)
    print(json.dumps(reports, indent=2))
    return 0


def _push(args: argparse.Namespace) -> int:
    from cropdx_hf.release.hub import push_model

    releases = _releases(args)
    model_dir = resolve_model(args.model, releases)
    commit = push_model(model_dir, args.repo_id, releases.export_dir(model_dir.name), args.revision, args.private,
                        releases.export_dir(GATE_FOLDER))
    print(f"pushed {args.model} to {args.repo_id} at {commit}" + (f", tagged {args.revision}" if args.revision else ""))
    return 0


def _push_space(args: argparse.Namespace) -> int:
    from cropdx_hf.release.hub import push_space

    commit = push_space(args.repo_id, Path(args.space_dir), _releases(args), args.private)
    print(f"pushed the Space to {args.repo_id} at {commit}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from cropdx_hf.release.compare import compare_releases, write_comparison

    result = compare_releases(_releases(args), runs=args.runs)
    out = write_comparison(result, args.out)
    print((out / "compare.md").read_text())
    return 0


def _cards(args: argparse.Namespace) -> int:
    from cropdx_hf.release.cards import write_cards

    releases = _releases(args)
    for path in write_cards(releases, args.models or releases.names(), args.out, args.namespace):
        print(f"wrote {path}")
    return 0


def _models(args: argparse.Namespace) -> int:
    releases = _releases(args)
    if args.names:
        print("\n".join(releases.names()))
        return 0
    rows = [releases.describe(name) for name in releases.names()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        test, proxy, field = (r[k] or {} for k in ("test_metrics", "field_proxy_test_metrics", "field_metrics"))
        print(f"{r['name']:<22}{' (default)' if r['default'] else '':<11}{r['params'] or 0:>11,} params  "
              f"{r['size_mb']:>6} MB  lab test acc {test.get('accuracy', float('nan')):.4f}  "
              f"macro-F1 {test.get('macro_f1', float('nan')):.4f}  "
              f"field-proxy acc {proxy.get('accuracy', float('nan')):.4f}  "
              f"real field top-1 {field.get('accuracy', float('nan')):.4f} "
              f"top-3 {field.get('top3_accuracy', float('nan')):.4f}")
    print("Real field: PlantDoc field photos, each scored by a model trained without it (out of fold). Field proxy: "
          "the lab test photos placed in scenes training never saw; it flatters the releases.")
    return 0


def _train(args: argparse.Namespace) -> int:
    from cropdx_hf.training.trainer import train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    out = train(cfg)
    print(f"wrote {out} (test metrics in {out}/metrics.json)")
    return 0


def build_parser(with_train_options: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cropdx", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--models-dir", help=f"folder of releases: --model then takes their names (default: "
                                             f"${MODELS_ENV})")
    parser.add_argument("--exports-dir", help=f"folder of ONNX exports, one sub-folder per model (default: "
                                              f"${EXPORTS_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)
    model_option = argparse.ArgumentParser(add_help=False)
    model_option.add_argument("--model", default=DEFAULT_RELEASE, help="release name, model folder or Hub id")

    _add_photo_commands(sub)
    _add_measure_commands(sub, model_option)
    _add_release_commands(sub, model_option)
    _add_train_command(sub, with_train_options)
    return parser


def _add_photo_commands(sub) -> None:
    """Commands on photos and folders of them: exploring a dataset, diagnosing photos."""
    eda = sub.add_parser("eda", help="exploration report for an image folder")
    eda.add_argument("--data", required=True, help="image folder (class per sub-folder) or a Hub dataset id")
    eda.add_argument("--out", required=True)
    eda.add_argument("--classes", default=None, help="'all', a crop, or comma-separated class names")
    eda.set_defaults(func=_eda)

    predict = sub.add_parser("predict", help="top-k classes for one or more photos")
    predict.add_argument("images", nargs="+")
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--model", help=f"release name, model folder or Hub id (default: {DEFAULT_RELEASE})")
    source.add_argument("--backbone", help="bare ImageNet backbone, e.g. efficientnet_lite0 (install check)")
    source.add_argument("--onnx", help="an export folder: torch-free inference with onnxruntime")
    predict.add_argument("--int8", action="store_true", help="with --onnx: the INT8 file")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(func=_predict)


def _add_measure_commands(sub, model_option: argparse.ArgumentParser) -> None:
    """Commands that measure a release and record it: calibration, evaluation, export, the leaf gate."""
    calibrate = sub.add_parser("calibrate", help="fit temperature and abstain threshold on the validation split",
                               parents=[model_option])
    calibrate.add_argument("--data", required=True, help="the data the model was trained on")
    calibrate.add_argument("--field-data", help="the real field photos the release was cross-validated on: hold the "
                                                "threshold on their out-of-fold scores as well")
    calibrate.set_defaults(func=_calibrate)

    evaluate = sub.add_parser("evaluate", help="metrics.json, plots and report.md for a model on labelled photos",
                              parents=[model_option])
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
    evaluate.set_defaults(func=_evaluate)

    export = sub.add_parser("export", help="ONNX and INT8 files via optimum, verified for parity, accuracy, speed",
                            parents=[model_option])
    export.add_argument("--data", required=True, help="verification photos (and calibration photos by default)")
    export.add_argument("--calibration-data", help="INT8 calibration photos (default: the training split of --data)")
    export.add_argument("--split", default="test", choices=["test", "validation", "all"], help="verification photos")
    export.add_argument("--field-photos", help="folder made by scripts/field_photos.py: verify INT8 on the split's "
                                               "field proxy too (it must not lose accuracy there)")
    export.add_argument("--rebuild", action="store_true",
                        help="make the release's recorded export again (same INT8 set-up and calibration photos) "
                             "and serve its INT8 file only if it is byte-identical to the verified one")
    export.add_argument("--if-stale", action="store_true",
                        help="do nothing when the folder already holds an export of these weights and their gate")
    export.add_argument("--no-record", dest="record", action="store_false",
                        help="do not write the figures into the release's config")
    export.set_defaults(func=_export)

    gate = sub.add_parser("fit-leaf-gate", help="fit and measure each release's leaf gate (\"not a leaf\")")
    gate.add_argument("--data", required=True, help="the training data")
    gate.add_argument("--split-csv", required=True, help="the releases' split (positives come from its train part)")
    gate.add_argument("--field-photos", required=True, help="folder made by scripts/field_photos.py")
    gate.add_argument("--field-data", help="real field photos of our crops (class per sub-folder): positives too, "
                                           "their out-of-fold acceptance reported")
    gate.add_argument("--models", nargs="+", required=True,
                      help="releases or model folders: each gets its own leaf_gate.safetensors, named in its config")
    gate.set_defaults(func=_fit_leaf_gate)


def _add_release_commands(sub, model_option: argparse.ArgumentParser) -> None:
    """Commands on the released models as a set: publishing, comparing, cards, the list."""
    push = sub.add_parser("push", help="publish a release (weights, card, metrics, plots, ONNX) to the Hub",
                          parents=[model_option])
    push.add_argument("--repo-id", required=True, help="ORG/NAME")
    push.add_argument("--revision", help="tag to create, e.g. v1.0.0")
    push.add_argument("--private", action="store_true")
    push.set_defaults(func=_push)

    push_space = sub.add_parser("push-space", help="publish the Space (app, cropdx_hf, releases, exports)")
    push_space.add_argument("--repo-id", required=True, help="ORG/NAME")
    push_space.add_argument("--space-dir", required=True, help="the Space's folder (app.py, README.md, examples)")
    push_space.add_argument("--private", action="store_true")
    push_space.set_defaults(func=_push_space)

    compare = sub.add_parser("compare", help="table, JSON and plot over the released models")
    compare.add_argument("--out", default="reports/compare")
    compare.add_argument("--runs", type=int, default=50, help="timed batch-1 runs per model")
    compare.set_defaults(func=_compare)

    cards = sub.add_parser("cards", help="regenerate the model cards from measured metrics")
    cards.add_argument("models", nargs="*", help="release names (default: all)")
    cards.add_argument("--out", default="model_cards")
    cards.add_argument("--namespace", default="cropdx", help="Hub namespace used in the usage snippets")
    cards.set_defaults(func=_cards)

    models = sub.add_parser("models", help="list the released models with their measured test metrics")
    models.add_argument("--json", action="store_true")
    models.add_argument("--names", action="store_true", help="only the release names, one per line")
    models.set_defaults(func=_models)


def _add_train_command(sub, with_train_options: bool) -> None:
    # the recipe's dataclass is the single source of its options; HfArgumentParser imports torch, so only
    # a `train` command line pays for it
    parents = []
    if with_train_options:
        from transformers import HfArgumentParser

        parents = [HfArgumentParser(ARGUMENT_GROUPS, add_help=False)]
    train = sub.add_parser("train", help="fine-tune a backbone with the three-stage recipe", parents=parents)
    train.add_argument("--config", help="YAML file of train options (configs/<release>.yaml); flags override it")
    for action in train._actions:  # HfArgumentParser takes both spellings; show the dashed one, as elsewhere
        action.option_strings.sort(key=lambda option: "_" in option)
    train.set_defaults(func=_train)


def _config_defaults(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """`cropdx train --config FILE.yaml`: the file's values become the defaults of the train options (flags given
    on the command line still win); a key that is no option is an error."""
    given = argparse.ArgumentParser(add_help=False)
    given.add_argument("--config")
    config = given.parse_known_args(argv)[0].config
    if not config:
        return
    train = next(action for action in parser._actions
                 if isinstance(action, argparse._SubParsersAction)).choices["train"]
    path = Path(config)
    if not path.is_file():
        raise DataError(f"{path}: no such training config")
    values = yaml.safe_load(path.read_text()) or {}
    options = {action.dest: action for action in train._actions}
    unknown = sorted(set(values) - set(options))
    if unknown:
        raise DataError(f"{path}: unknown option(s) {', '.join(unknown)}")
    for key, value in values.items():
        options[key].default, options[key].required = value, False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_train_options="train" in argv)
    if "train" in argv:
        try:
            _config_defaults(parser, argv)
        except DataError as exc:
            print(f"cropdx train: error: {exc}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
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
