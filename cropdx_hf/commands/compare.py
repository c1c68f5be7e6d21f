"""`cropdx compare`: table, JSON and plot over the released models."""

from __future__ import annotations

import argparse

from cropdx_hf.commands.common import Subcommands, releases


def register(sub: Subcommands) -> None:
    compare = sub.add_parser("compare", help="table, JSON and plot over the released models")
    compare.add_argument("--out", default="reports/compare")
    compare.add_argument("--runs", type=int, default=50, help="timed batch-1 runs per model")
    compare.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.release.compare import compare_releases, write_comparison

    out = write_comparison(compare_releases(releases(args), runs=args.runs), args.out)
    print((out / "compare.md").read_text())
    return 0
