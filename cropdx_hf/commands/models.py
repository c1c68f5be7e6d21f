"""`cropdx models`: the released models with their measured metrics."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cropdx_hf.commands.common import Subcommands, releases

MEANINGS = ("Real field: PlantDoc field photos, each scored by a model trained without it (out of fold). Field proxy: "
            "the lab test photos placed in scenes training never saw; it flatters the releases.")


def register(sub: Subcommands) -> None:
    models = sub.add_parser("models", help="list the released models with their measured test metrics")
    models.add_argument("--json", action="store_true")
    models.add_argument("--names", action="store_true", help="only the release names, one per line")
    models.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    found = releases(args)
    if args.names:
        print("\n".join(found.names()))
        return 0
    rows = [found.describe(name) for name in found.names()]
    print(json.dumps(rows, indent=2) if args.json else "\n".join([*map(_line, rows), MEANINGS]))
    return 0


def _line(row: dict[str, Any]) -> str:
    nan = float("nan")
    test, proxy, field = (row[k] or {} for k in ("test_metrics", "field_proxy_test_metrics", "field_metrics"))
    return (f"{row['name']:<22}{' (default)' if row['default'] else '':<11}{row['params'] or 0:>11,} params  "
            f"{row['size_mb']:>6} MB  lab test acc {test.get('accuracy', nan):.4f}  "
            f"macro-F1 {test.get('macro_f1', nan):.4f}  field-proxy acc {proxy.get('accuracy', nan):.4f}  "
            f"real field top-1 {field.get('accuracy', nan):.4f} top-3 {field.get('top3_accuracy', nan):.4f}")
