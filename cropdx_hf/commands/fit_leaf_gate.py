"""`cropdx fit-leaf-gate`: fit and measure each release's leaf gate ("not a leaf")."""

from __future__ import annotations

import argparse
import json

from cropdx_hf.commands.common import Subcommands, model_dir


def register(sub: Subcommands) -> None:
    gate = sub.add_parser("fit-leaf-gate", help="fit and measure each release's leaf gate (\"not a leaf\")")
    gate.add_argument("--data", required=True, help="the training data")
    gate.add_argument("--split-csv", required=True, help="the releases' split (positives come from its train part)")
    gate.add_argument("--field-photos", required=True, help="folder made by scripts/field_photos.py")
    gate.add_argument("--field-data", help="real field photos of our crops (class per sub-folder): positives too, "
                                           "their out-of-fold acceptance reported")
    gate.add_argument("--models", nargs="+", required=True,
                      help="releases or model folders: each gets its own leaf_gate.safetensors, named in its config")
    gate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.data.loading import load_leaf_dataset
    from cropdx_hf.training.leaf_gate import fit_leaf_gates

    model_dirs = [model_dir(args, name) for name in args.models]  # unknown names fail before the long fit
    field = load_leaf_dataset(args.field_data) if args.field_data else None
    reports = fit_leaf_gates(load_leaf_dataset(args.data), args.split_csv, args.field_photos, model_dirs,
                             field_data=field)
    print(json.dumps(reports, indent=2))
    return 0
