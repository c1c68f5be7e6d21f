#!/usr/bin/env bash
# The README's test command: set up from scratch if needed, lint (ruff, the import layers), run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev,scale bash scripts/setup.sh  # the slow tier runs the Ray batch job and Serve app
bash scripts/system_packages.sh
.venv/bin/ruff check .
.venv/bin/lint-imports --no-logo --no-cache  # the layer order in pyproject.toml (docs/architecture.md)
.venv/bin/python -m pytest "$@"
