"""`cropdx diagnose`: a season's photos diagnosed in one job, on Ray (the optional scale extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cropdx_hf.commands.common import Subcommands, model_option, releases
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8
from cropdx_hf.release.registry import resolve_model


def register(sub: Subcommands) -> None:
    diagnose = sub.add_parser("diagnose", parents=[model_option()],
                              help="diagnose every photo of a folder, CSV or dataset on Ray; parquet rows + summary")
    diagnose.add_argument("--data", required=True, help="a folder of photos (recursive), a CSV with a path column, "
                                                        "or a dataset: parquet file or folder, or Hub id")
    diagnose.add_argument("--out", required=True, help="folder for diagnoses.parquet, summary.json and summary.png; "
                                                       "a re-run into it skips the photos already done")
    diagnose.add_argument("--workers", type=int, default=1, help="Ray actors, one ONNX session and core each")
    diagnose.add_argument("--batch-size", type=int, default=32, help="photos per worker call (and per part file)")
    diagnose.add_argument("--int8", action="store_true",
                          help="the export's INT8 file instead of its fp32 one: faster, and the Space's file where the "
                               "export qualified it, but a photo in a few hundred lands on the other side of the "
                               "threshold from PyTorch's answer")
    diagnose.add_argument("--ray-address", help="join this Ray cluster (e.g. auto, or ray://HEAD:10001) instead of "
                                                "starting Ray on this machine; paths must be readable on every node")
    diagnose.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cropdx_hf.scale.batch import BatchJob, run_batch
    from cropdx_hf.scale.sources import list_photos

    if args.workers < 1 or args.batch_size < 1:
        raise ValueError("--workers and --batch-size must be at least 1")
    found = releases(args)
    model_dir = resolve_model(args.model, found)
    photos = list_photos(args.data)  # a missing or empty source fails here, before Ray starts
    job = BatchJob(model_dir, found.export_dir(model_dir.name), Path(args.out), args.workers, args.batch_size,
                   args.ray_address, ONNX_INT8 if args.int8 else ONNX_FP32)
    summary = run_batch(job, photos)
    run = summary["run"]
    print(f"{summary['photos']:,} photos in {args.out}/diagnoses.parquet: "
          + ", ".join(f"{status} {count:,}" for status, count in summary["by_status"].items())
          + f"; this run diagnosed {run['diagnosed']:,} ({run['photos_per_second']} photos/s on {run['workers']} "
            f"worker(s)) and skipped {run['skipped_as_done']:,} done before")
    for error in summary["errors"][:10]:
        print(f"  error: {error['error']}")
    if len(summary["errors"]) > 10:
        print(f"  ... and {len(summary['errors']) - 10} more in {args.out}/summary.json")
    return 0
