#!/usr/bin/env bash
# The README's demo command: set up from scratch if needed, make the releases' ONNX files (they are not committed:
# `cropdx export --rebuild` makes each release's verified export again, about a minute each, once), then serve
# the Space with the recommended model on ONNX Runtime at http://127.0.0.1:7860 (HOST/PORT/MODEL override;
# MODEL may be a Hub id).
set -euo pipefail
cd "$(dirname "$0")/.."
# the checkout's releases and ONNX exports: what release names and `cropdx export` refer to
export CROPDX_MODELS="$PWD/models" CROPDX_EXPORTS="$PWD/exports"
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1
for release in $(.venv/bin/cropdx models --names); do
  echo "$release: ONNX files (made once, then reused)"
  .venv/bin/cropdx export --model "$release" --rebuild --if-stale --data tests/fixtures/leaves \
    --calibration-data tests/fixtures/leaves --split all
done
exec .venv/bin/python space/app.py --host "${HOST:-127.0.0.1}" --port "${PORT:-7860}" ${MODEL:+--model "$MODEL"}
