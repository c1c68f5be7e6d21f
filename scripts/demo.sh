#!/usr/bin/env bash
# The README's demo command: set up from scratch if needed, then serve the Space with the committed
# recommended model at http://127.0.0.1:7860 (HOST/PORT/MODEL override; MODEL may be a Hub id).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1
exec .venv/bin/python space/app.py --host "${HOST:-127.0.0.1}" --port "${PORT:-7860}" ${MODEL:+--model "$MODEL"}
