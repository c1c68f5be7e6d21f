"""Inference latency and throughput per released model and format, on 2 CPU threads.

Formats: eager PyTorch (the baseline), the transformers pipeline, ONNX Runtime fp32 and INT8 (from
`cropdx export`). Batch 1 (latency p50/p95) and batch 32 (throughput), warm-up runs excluded; ratios are
against eager PyTorch at the same batch size. Preprocessing is excluded except for the pipeline, which
cannot skip it (its figure includes decoding-free PIL preprocessing of an in-memory image).

    python scripts/bench_infer.py --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from cropdx_hf.inference.onnx_predictor import session
from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8
from cropdx_hf.modeling.transforms import channels_last
from cropdx_hf.release.registry import Releases
from cropdx_hf.release.timing import latency_summary, timed

ROOT = Path(__file__).resolve().parents[1]
LEAF = next(ROOT.glob("tests/fixtures/leaves/Tomato_Early_blight/*"))
RELEASES = Releases.from_settings() or Releases(ROOT / "models", ROOT / "exports")


def bench_model(name: str, runs: int, warmup: int) -> dict[str, dict]:
    predictor = Predictor.from_folder(RELEASES.path(name))
    size = predictor.model.pretrained_cfg["input_size"]
    results: dict[str, dict] = {}
    for batch in (1, 32):
        n = runs if batch == 1 else max(5, runs // 10)
        x = torch.randn(batch, *size)
        with torch.inference_mode():
            eager = channels_last(x)  # the layout Predictor feeds
            results[f"torch_eager/b{batch}"] = latency_summary(
                timed(lambda x=eager: predictor.model(x), n, warmup), batch)
        for fmt, file_name in (("onnx_fp32", ONNX_FP32), ("onnx_int8", ONNX_INT8)):
            path = RELEASES.export_dir(name) / file_name
            if path.is_file():
                sess = session(path, threads=2)
                feed = {sess.get_inputs()[0].name: x.numpy()}
                times = timed(lambda s=sess, f=feed: s.run(None, f), n, warmup)
                results[f"{fmt}/b{batch}"] = latency_summary(times, batch)
    from transformers import pipeline

    pipe = pipeline("image-classification", model=str(RELEASES.path(name)), device="cpu")
    leaf = Image.open(LEAF).convert("RGB")
    for batch in (1, 32):
        n = runs if batch == 1 else max(5, runs // 10)
        images = [leaf] * batch
        results[f"transformers_pipeline/b{batch}"] = latency_summary(
            timed(lambda imgs=images: pipe(imgs, batch_size=len(imgs)), n, warmup), batch)
    for key, row in results.items():
        base = results[f"torch_eager/{key.split('/')[1]}"]
        row["p50_vs_torch_eager"] = round(row["p50_ms"] / base["p50_ms"], 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None, help="release names (default: all)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    report = {"threads": 2, "cpu": _cpu(), "models": {m: bench_model(m, args.runs, args.warmup)
                                                       for m in args.models or RELEASES.names()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'model':<20}{'format/batch':<30}{'p50 ms':>9}{'p95 ms':>9}{'img/s':>9}{'vs eager':>10}")
    for model, rows in report["models"].items():
        for key, row in rows.items():
            print(f"{model:<20}{key:<30}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['images_per_s']:>9}"
                  f"{row['p50_vs_torch_eager']:>10}")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
