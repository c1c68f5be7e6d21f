"""`cropdx` command line: one subcommand per pipeline step, each a module of `cropdx_hf.commands` that parses its
options and delegates to the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from cropdx_hf.commands import (
    calibrate,
    cards,
    compare,
    diagnose,
    eda,
    evaluate,
    export,
    fit_leaf_gate,
    models,
    predict,
    push,
    train,
)
from cropdx_hf.errors import DataError, ExtraNotInstalledError, HubError, ModelFolderError, WeightsUnavailableError
from cropdx_hf.photos import ImageError
from cropdx_hf.release.registry import EXPORTS_ENV, MODELS_ENV

# in the order `cropdx --help` lists them: photos, measuring a release, publishing, training
COMMANDS = (eda, predict, diagnose, calibrate, evaluate, export, fit_leaf_gate, push, compare, cards, models)
USER_ERRORS = (DataError, ExtraNotInstalledError, HubError, ImageError, ModelFolderError, WeightsUnavailableError,
               FileNotFoundError, KeyError, ValueError)


def build_parser(with_train_options: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cropdx", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--models-dir", help=f"folder of releases: --model then takes their names (default: "
                                             f"${MODELS_ENV})")
    parser.add_argument("--exports-dir", help=f"folder of ONNX exports, one sub-folder per model (default: "
                                              f"${EXPORTS_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    train.register(sub, with_train_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    training = "train" in argv
    if training:
        try:
            argv = train.with_config(argv)
        except DataError as exc:
            print(f"cropdx train: error: {exc}", file=sys.stderr)
            return 2
    args = build_parser(with_train_options=training).parse_args(argv)
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
