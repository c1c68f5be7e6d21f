#!/usr/bin/env bash
# The README's test command: set up from scratch if needed, lint, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system_packages.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
