#!/usr/bin/env bash
# The commands that produced the committed releases, on this project's 2-core CPU machine:
#   bash scripts/train_releases.sh                       # all three
#   BACKBONES=mobilenetv2_100 bash scripts/train_releases.sh
# On a lent GPU machine: DEVICE=cuda BATCH=128 bash scripts/train_releases.sh (same recipe, bigger batches;
# the Trainer turns on fp16 mixed precision for CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/plantvillage}
DEVICE=${DEVICE:-auto}
BATCH=${BATCH:-32}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

recipe_for() {  # lite2 (260 px) caches one view and fine-tunes all layers for a quarter epoch to fit the budget
  case "$1" in
    efficientnet_lite2) echo "--train_views 1 --epochs_head 10 --epochs_top 4 --epochs_full 0.25" ;;
    *) echo "--train_views 2 --epochs_head 10 --epochs_top 4 --epochs_full 0.5" ;;
  esac
}

for backbone in ${BACKBONES:-efficientnet_lite0 mobilenetv2_100 efficientnet_lite2}; do
  # shellcheck disable=SC2046
  .venv/bin/cropdx -v train --data "$DATA" --split_csv splits/plantvillage.csv --device "$DEVICE" \
    --batch_size "$BATCH" --backbone "$backbone" --out "models/$backbone" $(recipe_for "$backbone")
  .venv/bin/cropdx calibrate --model "$backbone" --data "$DATA"
  .venv/bin/cropdx evaluate --model "$backbone" --data "$DATA" --split test --out "models/$backbone/eval"
done
