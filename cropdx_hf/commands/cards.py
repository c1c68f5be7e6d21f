"""`cropdx cards`: the model cards, written from the measured metrics."""

from __future__ import annotations

import argparse

from cropdx_hf.commands.common import Subcommands, releases


def register(sub: Subcommands) -> None:
    cards = sub.add_parser("cards", help="regenerate the model cards from measured metrics")
    cards.add_argument("models", nargs="*", help="release names (default: all)")
    cards.add_argument("--out", default="model_cards")
    cards.add_argument("--namespace", default="cropdx", help="Hub namespace used in the usage snippets")
    cards.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.release.cards import write_cards

    found = releases(args)
    for path in write_cards(found, args.models or found.names(), args.out, args.namespace):
        print(f"wrote {path}")
    return 0
