"""`cropdx train`: fine-tune a backbone with the three-stage recipe; `--config FILE.yaml` holds a release's options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import yaml

from cropdx_hf.commands.common import Subcommands
from cropdx_hf.errors import DataError
from cropdx_hf.training.config import ARGUMENT_GROUPS, TrainConfig


def register(sub: Subcommands, with_options: bool = True) -> None:
    """The recipe's dataclasses are the single source of its options; HfArgumentParser imports torch, so only a
    `train` command line pays for building them (`--help` lists the commands without)."""
    parents = []
    if with_options:
        from transformers import HfArgumentParser

        parents = [HfArgumentParser(ARGUMENT_GROUPS, add_help=False)]
    train = sub.add_parser("train", help="fine-tune a backbone with the three-stage recipe", parents=parents)
    train.add_argument("--config", help="YAML file of train options (configs/<release>.yaml); flags override it")
    train.set_defaults(func=run)


def with_config(argv: Sequence[str]) -> list[str]:
    """`cropdx train --config FILE.yaml ...`: the file's options as flags placed before the ones typed, so that a
    flag on the command line wins (argparse keeps an option's last value). A key that is no option is an error."""
    argv = list(argv)
    given = argparse.ArgumentParser(add_help=False)
    given.add_argument("--config")
    config = given.parse_known_args(argv)[0].config
    if not config:
        return argv
    at = argv.index("train") + 1
    return argv[:at] + _config_flags(Path(config)) + argv[at:]


def _config_flags(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: no such training config")
    values = yaml.safe_load(path.read_text()) or {}
    options = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - options)
    if unknown:
        raise DataError(f"{path}: unknown option(s) {', '.join(unknown)}")
    flags = []
    for key, value in values.items():
        items = value if isinstance(value, list) else [value]
        if value is None or not items:
            raise DataError(f"{path}: {key} has no value; leave it out to keep its default")
        flags += [f"--{key}", *(str(item) for item in items)]
    return flags


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.training.trainer import train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    out = train(cfg)
    print(f"wrote {out} (test metrics in {out}/metrics.json)")
    return 0
