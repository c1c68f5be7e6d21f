"""`cropdx eda`: the exploration report of an image folder."""

from __future__ import annotations

import argparse

from cropdx_hf.commands.common import Subcommands


def register(sub: Subcommands) -> None:
    eda = sub.add_parser("eda", help="exploration report for an image folder")
    eda.add_argument("--data", required=True, help="image folder (class per sub-folder) or a Hub dataset id")
    eda.add_argument("--out", required=True)
    eda.add_argument("--classes", default=None, help="'all', a crop, or comma-separated class names")
    eda.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.data.eda import write_eda
    from cropdx_hf.data.loading import load_leaf_dataset

    stats = write_eda(load_leaf_dataset(args.data, args.classes), args.out)
    print(f"wrote {args.out}/report.md ({stats['n_images']} images, {stats['n_classes']} classes, "
          f"{len(stats['corrupt_files'])} unreadable)")
    return 0
