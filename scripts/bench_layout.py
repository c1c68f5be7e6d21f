"""What channels-last batches and the caching worker buy on this CPU: the figures behind their defaults.

Synthetic batches for the network timings (their speed does not depend on pixel values); real photos for the
cache, whose cost is mostly decoding and augmenting them.

    python scripts/bench_layout.py --data ../shared/data/plantvillage --json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.modeling.transforms import data_config
from cropdx_hf.release.timing import latency_summary, timed
from cropdx_hf.training import model_parts
from cropdx_hf.training.feature_cache import cache_activations
from cropdx_hf.training.views import train_transform

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def images_per_s(step: Callable[[], object], batch: int, steps: int, warmup: int = 2) -> float:
    return latency_summary(timed(step, steps, warmup), batch)["images_per_s"]


def training_speed(net: torch.nn.Module, shape: tuple[int, ...], batch: int, steps: int) -> dict[str, float]:
    """Forward, backward and AdamW step, in img/s, for each input layout."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    labels = torch.randint(0, 15, (batch,))
    result = {}
    for name, layout in LAYOUTS.items():
        x = torch.randn(batch, *shape).contiguous(memory_format=layout)

        def step(x=x) -> None:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), labels).backward()
            optimizer.step()

        result[name] = images_per_s(step, batch, steps)
    return result


def latency_ms(model: torch.nn.Module, size: int, runs: int) -> dict[str, float]:
    """One photo, one thread (the Space's setting), per input layout."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    result = {}
    with torch.inference_mode():
        for name, layout in LAYOUTS.items():
            x = torch.randn(1, 3, size, size).contiguous(memory_format=layout)
            result[name] = round(1000 / images_per_s(lambda x=x: model(x), 1, runs), 1)
    torch.set_num_threads(threads)
    return result


def caching_speed(model: torch.nn.Module, data: str, size: int, top_stages: int, photos: int) -> dict[str, float]:
    """Views cached per second with no DataLoader worker and with one (the default of `--cache_workers`)."""
    from cropdx_hf.data.loading import load_leaf_dataset

    rows = load_leaf_dataset(data).rows.shuffle(seed=0).select(range(photos))
    trunk, transform = model_parts.trunk(model, top_stages), train_transform(data_config(model, size))
    result = {}
    for workers in (0, 1):
        start = time.perf_counter()
        cache_activations(trunk, rows, transform, batch_size=8, num_workers=workers)
        result[f"workers_{workers}"] = round(photos / (time.perf_counter() - start), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--top-stages", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data", help="photos for the caching figure (skipped without)")
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = create_backbone(args.backbone, 15)
    with torch.no_grad():
        cached = model_parts.trunk(model, args.top_stages)(torch.zeros(1, 3, args.image_size, args.image_size))
    report = {
        "backbone": args.backbone, "image_size": args.image_size, "batch": args.batch, "threads": 2,
        "train_img_per_s": {
            f"cached_top_{args.top_stages}_stages": training_speed(
                model_parts.top(model, args.top_stages).train(), tuple(cached.shape[1:]), args.batch, args.steps),
            "whole_network": training_speed(model.train(), (3, args.image_size, args.image_size), args.batch,
                                            args.steps),
        },
        "batch1_latency_ms_1_thread": latency_ms(model.eval(), args.image_size, 5 * args.steps),
    }
    if args.data:
        report["cache_views_per_s"] = caching_speed(model, args.data, args.image_size, args.top_stages, args.photos)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for group, rows in report.items():
        if isinstance(rows, dict):
            for key, value in rows.items():
                print(f"{group} {key}: {value}")


if __name__ == "__main__":
    main()
