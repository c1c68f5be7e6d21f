#!/usr/bin/env bash
# After scripts/train_releases.sh: the leaf detector, verified ONNX/INT8 exports (exports/, not committed),
# the comparison and the model cards of every release. Every figure they hold is measured here.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/plantvillage}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
NON_LEAF=$(mktemp -d)
.venv/bin/python scripts/non_leaf_photos.py "$NON_LEAF"
for model in ${BACKBONES:-efficientnet_lite0 mobilenetv2_100 efficientnet_lite2}; do
  .venv/bin/cropdx fit-leaf-detector --model "$model" --data "$DATA" --non-leaf "$NON_LEAF"
  .venv/bin/cropdx export --model "$model" --data "$DATA"
done
.venv/bin/cropdx compare --out reports/compare
.venv/bin/cropdx cards --out model_cards
rm -rf "$NON_LEAF"
