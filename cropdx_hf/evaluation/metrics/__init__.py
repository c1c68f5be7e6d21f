"""Metric modules for `evaluate`, loaded by file path (the Hub copies are unreachable offline)."""

from functools import cache
from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).parent


@cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    return evaluate.load(str(METRICS_DIR / f"{name}.py"))
