"""`cropdx compare`: the released models side by side, and a recommendation computed by a stated rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8
from cropdx_hf.release.registry import RECOMMENDATION, Releases
from cropdx_hf.release.timing import latency_summary, timed


def cpu_latency(model_dir: Path, runs: int = 50, warmup: int = 10, threads: int = 2) -> dict[str, float]:
    """Batch-1 latency of the eager PyTorch model on `threads` CPU threads, warm-up runs excluded."""
    torch.set_num_threads(threads)
    predictor = Predictor.from_folder(model_dir)
    x = torch.randn(1, *predictor.model.pretrained_cfg["input_size"])
    with torch.inference_mode():
        return latency_summary(timed(lambda: predictor.model(x), runs, warmup))


def _file_mb(path: Path) -> float | None:
    return round(path.stat().st_size / 1e6, 2) if path.is_file() else None


def compare_releases(releases: Releases, runs: int = 50) -> dict[str, Any]:
    """Each release's size, lab, field-proxy and real field (out-of-fold) metrics and eager CPU latency, and the
    recommended one."""
    rows = []
    for name in releases.names():
        info = releases.describe(name, recommend=False)
        test, proxy, field = (info[k] or {} for k in ("test_metrics", "field_proxy_test_metrics", "field_metrics"))
        exports = releases.export_dir(name) if releases.exports_dir else None
        rows.append({
            "name": name, "backbone": info["backbone"], "stands_in_for": info["stands_in_for"],
            "params": info["params"], "accuracy": test.get("accuracy"), "macro_f1": test.get("macro_f1"),
            "field_proxy_accuracy": proxy.get("accuracy"), "field_proxy_top3": proxy.get("top3_accuracy"),
            "field_accuracy": field.get("accuracy"), "field_top3": field.get("top3_accuracy"),
            "safetensors_mb": info["size_mb"], "onnx_mb": _file_mb(exports / ONNX_FP32) if exports else None,
            "int8_mb": _file_mb(exports / ONNX_INT8) if exports else None,
            **cpu_latency(releases.path(name), runs=runs),
        })
    pick = next(r for r in rows if r["name"] == releases.recommended())
    best = max(r["macro_f1"] for r in rows)
    return {"models": rows, "recommended": pick["name"], "rule": RECOMMENDATION,
            "reason": f"{pick['name']}: macro-F1 {pick['macro_f1']:.4f} vs best {best:.4f}, real field top-1 (out of "
                      f"fold) {pick['field_accuracy'] or 0:.4f}, {pick['params'] / 1e6:.2f} M parameters"}


def write_comparison(result: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    header = ("| model | stands in for | params | test accuracy | test macro-F1 | real field top-1 / top-3 (out of "
              "fold) | field proxy top-1 / top-3 | safetensors MB | ONNX MB | INT8 MB | p50 ms | p95 ms |")
    lines = ["# Released models compared", "", header, "|" + "---|" * 12]
    for r in result["models"]:
        field, proxy = (f"{r[k + '_accuracy']:.4f} / {r[k + '_top3']:.4f}" if r[k + "_accuracy"] is not None
                        else "–" for k in ("field", "field_proxy"))
        cells = [r["name"], r["stands_in_for"], f"{r['params'] / 1e6:.2f} M", f"{r['accuracy']:.4f}",
                 f"{r['macro_f1']:.4f}", field, proxy, r["safetensors_mb"], r["onnx_mb"] or "–", r["int8_mb"] or "–",
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
