#!/usr/bin/env bash
# The commands that produced the committed releases (CPU, 2 cores). On a lent GPU machine run
#   DEVICE=cuda BATCH=128 bash scripts/train_releases.sh
# : the same recipe with bigger batches and mixed precision (the Trainer turns fp16 on for CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-auto}
BATCH=${BATCH:-32}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
common=(--data "${DATA:-../shared/data/plantvillage}" --split_csv splits/plantvillage.csv
        --device "$DEVICE" --batch_size "$BATCH")
for backbone in ${BACKBONES:-efficientnet_lite0 mobilenetv2_100 efficientnet_lite2}; do
  .venv/bin/cropdx -v train "${common[@]}" --backbone "$backbone" --out "models/$backbone" \
    --epochs_head 10 --epochs_top 4 --epochs_full 0.5
done
