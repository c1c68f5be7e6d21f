"""`cropdx push` and `cropdx push-space`: publish a release, or the Space, to the Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from cropdx_hf.commands.common import Subcommands, model_option, releases
from cropdx_hf.gate.leaf_gate import GATE_FOLDER
from cropdx_hf.release.registry import resolve_model


def register(sub: Subcommands) -> None:
    push = sub.add_parser("push", help="publish a release (weights, card, metrics, plots, ONNX) to the Hub",
                          parents=[model_option()])
    push.add_argument("--repo-id", required=True, help="ORG/NAME")
    push.add_argument("--revision", help="tag to create, e.g. v1.0.0")
    push.add_argument("--private", action="store_true")
    push.set_defaults(func=run_push)

    space = sub.add_parser("push-space", help="publish the Space (app, cropdx_hf, releases, exports)")
    space.add_argument("--repo-id", required=True, help="ORG/NAME")
    space.add_argument("--space-dir", required=True, help="the Space's folder (app.py, README.md, examples)")
    space.add_argument("--private", action="store_true")
    space.set_defaults(func=run_push_space)


def run_push(args: argparse.Namespace) -> int:
    from cropdx_hf.release.hub import push_model

    found = releases(args)
    model_dir = resolve_model(args.model, found)
    commit = push_model(model_dir, args.repo_id, found.export_dir(model_dir.name), args.revision, args.private,
                        found.export_dir(GATE_FOLDER))
    print(f"pushed {args.model} to {args.repo_id} at {commit}" + (f", tagged {args.revision}" if args.revision else ""))
    return 0


def run_push_space(args: argparse.Namespace) -> int:
    from cropdx_hf.release.hub import push_space

    commit = push_space(args.repo_id, Path(args.space_dir), releases(args), args.private)
    print(f"pushed the Space to {args.repo_id} at {commit}")
    return 0
