"""What several commands share: the models folder the command line or environment names, and `--model`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.release.registry import DEFAULT_RELEASE, MODELS_ENV, Releases, resolve_model

Subcommands = Any  # what `ArgumentParser.add_subparsers` returns (its class is private to argparse)


def model_option() -> argparse.ArgumentParser:
    """`--model`, as a parent parser for the commands that act on one release."""
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument("--model", default=DEFAULT_RELEASE, help="release name, model folder or Hub id")
    return option


def releases(args: argparse.Namespace) -> Releases:
    """The models folder (and exports folder) the command line or the environment names; an error without one."""
    found = Releases.from_settings(args.models_dir, args.exports_dir)
    if found is None:
        raise ModelFolderError(f"cropdx {args.command} needs a models folder: pass --models-dir or set {MODELS_ENV}")
    return found


def model_dir(args: argparse.Namespace, name: str | None) -> Path:
    """A model folder, a release of the models folder (when one is set) or a Hub id."""
    return resolve_model(name, Releases.from_settings(args.models_dir, args.exports_dir))
