"""`cropdx export`: ONNX and INT8 files via optimum, verified for parity, accuracy and speed."""

from __future__ import annotations

import argparse

from cropdx_hf.commands.common import Subcommands, model_option, releases
from cropdx_hf.gate.leaf_gate import GATE_FOLDER
from cropdx_hf.modeling.exports import ExportRecord
from cropdx_hf.release.registry import resolve_model


def register(sub: Subcommands) -> None:
    export = sub.add_parser("export", help="ONNX and INT8 files via optimum, verified for parity, accuracy, speed",
                            parents=[model_option()])
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
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.data.loading import load_leaf_dataset
    from cropdx_hf.release.export import export_release, is_current

    found = releases(args)
    model_dir = resolve_model(args.model, found)
    out, gate_out = found.export_dir(model_dir.name), found.export_dir(GATE_FOLDER)
    if args.if_stale and is_current(model_dir, out, gate_out):
        print(f"{out}: already an export of {model_dir}'s weights")
        return 0
    calibration = load_leaf_dataset(args.calibration_data) if args.calibration_data else None
    record = ExportRecord(export_release(
        model_dir, load_leaf_dataset(args.data), out, gate_out, args.split, calibration, args.rebuild,
        record=args.record and model_dir.parent == found.models_dir, field_photos=args.field_photos))
    print(f"wrote {out}: " + _summary(record))
    return 0


def _summary(record: ExportRecord) -> str:
    fp32, int8, gate = record.report["fp32"], record.int8, record.report.get("gate")
    return (f"fp32 max |logit diff| vs PyTorch {fp32['max_abs_logit_diff_vs_torch']:.2e}; "
            f"INT8 {int8.get('setup', 'none')}: {int8['reason']}; serves {'INT8' if record.serves_int8 else 'fp32'}"
            + (f"; leaf gate decisions agree with PyTorch on {gate['decisions_agree']:.1%} of "
               f"{gate['check_photos']} photos" if gate else ""))
