"""`cropdx compare`: the released models side by side, and a recommendation computed by a stated rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.release.export import latency_ms
from cropdx_hf.release.registry import describe_release, export_dir, release_names, resolve_model

WITHIN_POINTS = 1.0  # macro-F1 points from the best that still count as "as good"
RULE = (f"the smallest model (parameters) whose test macro-F1 is within {WITHIN_POINTS:g} point of the best; "
        "ties go to the lower p50 latency")


def cpu_latency(model_dir: Path, runs: int = 50, warmup: int = 10, threads: int = 2) -> dict[str, float]:
    """Batch-1 latency of the eager PyTorch model on `threads` CPU threads, warm-up runs excluded."""
    torch.set_num_threads(threads)
    predictor = Predictor.from_folder(model_dir)
    x = torch.randn(1, *predictor.model.pretrained_cfg["input_size"])
    with torch.inference_mode():
        return latency_ms(predictor.model, x, runs=runs, warmup=warmup)


def _file_mb(path: Path) -> float | None:
    return round(path.stat().st_size / 1e6, 2) if path.is_file() else None


def compare_releases(names: list[str] | None = None, runs: int = 50) -> dict[str, Any]:
    rows = []
    for name in names or release_names():
        info = describe_release(name)
        test = info["test_metrics"] or {}
        exports = export_dir(name)
        rows.append({
            "name": name, "backbone": info["backbone"], "stands_in_for": info["stands_in_for"],
            "params": info["params"], "accuracy": test.get("accuracy"), "macro_f1": test.get("macro_f1"),
            "safetensors_mb": info["size_mb"], "onnx_mb": _file_mb(exports / "model.onnx"),
            "int8_mb": _file_mb(exports / "model_int8.onnx"),
            **cpu_latency(resolve_model(name), runs=runs),
        })
    best = max(r["macro_f1"] for r in rows)
    eligible = [r for r in rows if (best - r["macro_f1"]) * 100 <= WITHIN_POINTS]
    pick = min(eligible, key=lambda r: (r["params"], r["p50_ms"]))
    return {"models": rows, "recommended": pick["name"], "rule": RULE,
            "reason": f"{pick['name']}: macro-F1 {pick['macro_f1']:.4f} vs best {best:.4f}, "
                      f"{pick['params'] / 1e6:.2f} M parameters, p50 {pick['p50_ms']} ms"}


def write_comparison(result: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    header = ("| model | stands in for | params | test accuracy | test macro-F1 | safetensors MB | ONNX MB | "
              "INT8 MB | p50 ms | p95 ms |")
    lines = ["# Released models compared", "", header, "|" + "---|" * 10]
    for r in result["models"]:
        cells = [r["name"], r["stands_in_for"], f"{r['params'] / 1e6:.2f} M", f"{r['accuracy']:.4f}",
                 f"{r['macro_f1']:.4f}", r["safetensors_mb"], r["onnx_mb"] or "–", r["int8_mb"] or "–",
                 r["p50_ms"], r["p95_ms"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Latency: eager PyTorch, batch 1, 2 CPU threads, 10 warm-up runs excluded, 50 timed.", "",
              f"**Recommended: {result['recommended']}.** Rule: {result['rule']}. {result['reason']}.", "",
              "![comparison](compare.png)", ""]
    (out / "compare.md").write_text("\n".join(lines))
    _plot(result, out / "compare.png")
    return out


def _plot(result: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for r in result["models"]:
        ax.scatter(r["params"] / 1e6, r["macro_f1"], s=40 + 8 * r["p50_ms"])
        ax.annotate(f"{r['name']}\n{r['p50_ms']} ms", (r["params"] / 1e6, r["macro_f1"]), fontsize=8,
                    xytext=(5, 5), textcoords="offset points")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("test macro-F1")
    ax.set_title("Released models (marker size: p50 CPU latency)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
