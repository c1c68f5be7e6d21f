"""A batch job's summary: counts per status and per diagnosed class as JSON, the files that failed by name, and a
bar chart of the same counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from matplotlib.figure import Figure

from cropdx_hf.labels import display_name

SUMMARY_FILE, CHART_FILE = "summary.json", "summary.png"


def summarize(table: pa.Table, run: dict[str, Any]) -> dict[str, Any]:
    """What the rows say, with `run` (what this run did: photos diagnosed, skipped as done, seconds, photos/s)."""
    statuses = table["status"].to_pylist()
    diagnosed = [classes[0] for classes, status in zip(table["classes"].to_pylist(), statuses, strict=True)
                 if status == "diagnosed"]
    errors = [{"path": p, "error": e} for p, e, s in zip(table["path"].to_pylist(), table["error"].to_pylist(),
                                                          statuses, strict=True) if s == "error"]
    return {"photos": table.num_rows, "by_status": dict(Counter(statuses).most_common()),
            "diagnosed_by_class": {display_name(c): n for c, n in Counter(diagnosed).most_common()},
            "models": sorted(set(table["model"].to_pylist()) - {None}),
            "model_versions": sorted(set(table["model_version"].to_pylist()) - {None}),
            "errors": errors, "run": run}


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    _plot(summary, out / CHART_FILE)


def _plot(summary: dict[str, Any], path: Path) -> None:
    classes, statuses = summary["diagnosed_by_class"], summary["by_status"]
    figure = Figure(figsize=(8, 2 + 0.3 * (len(classes) + len(statuses))))
    top, bottom = figure.subplots(2, 1, height_ratios=[max(len(statuses), 1), max(len(classes), 1)])
    for axes, counts, title in ((top, statuses, "photos by answer"), (bottom, classes, "diagnosed photos by class")):
        names = list(counts)[::-1]
        axes.barh(names, [counts[n] for n in names], color="#4c956c")
        axes.set_title(title, loc="left")
        for y, name in enumerate(names):
            axes.annotate(f"{counts[name]:,}", (counts[name], y), xytext=(3, 0), textcoords="offset points",
                          va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
