#!/usr/bin/env bash
# The README's demo command: set up from scratch if needed, then diagnose bundled leaf photos.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
.venv/bin/cropdx predict --backbone efficientnet_lite0 tests/fixtures/leaves/Tomato_Early_blight/*
