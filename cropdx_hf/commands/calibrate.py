"""`cropdx calibrate`: a release's temperature and abstain threshold, recorded in its metadata."""

from __future__ import annotations

import argparse

from cropdx_hf.commands.common import Subcommands, model_dir, model_option


def register(sub: Subcommands) -> None:
    calibrate = sub.add_parser("calibrate", help="fit temperature and abstain threshold on the validation split",
                               parents=[model_option()])
    calibrate.add_argument("--data", required=True, help="the data the model was trained on")
    calibrate.add_argument("--field-data", help="the real field photos the release was cross-validated on: hold the "
                                                "threshold on their out-of-fold scores as well")
    calibrate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.evaluation.calibrate import calibrate

    result = calibrate(model_dir(args, args.model), args.data, args.field_data)
    print(f"temperature {result.temperature:.3f}, threshold {result.threshold:.2f}: {result.threshold_reason}")
    for report in result.calibration.values():
        answered = report["at_threshold"]
        print(f"  {report['photos']}: {answered['coverage']:.1%} answered, "
              f"{answered['selective_accuracy']:.1%} of them right")
    return 0
