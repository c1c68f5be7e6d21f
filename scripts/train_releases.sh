#!/usr/bin/env bash
# The commands that produced the committed releases, on this project's 2-core CPU machine:
#   bash scripts/train_releases.sh                       # all three
#   RELEASES=mobilenetv2_100 bash scripts/train_releases.sh
# Each release starts from the field-style release of the same backbone (lab photos, then field-style views of
# them; restored from git history: STARTS names the commit that holds them, docs/training.md how they were made)
# and trains further on PlantDoc's real field photos beside field-style views of the lab photos
# (configs/<release>.yaml): cross-validated over 5 folds first, then on all of them. Then: calibration on lab
# validation photos and the real field photos' out-of-fold scores, and the evaluation reports.
# After all three: bash scripts/release_reports.sh (leaf gate, exports, comparison, cards, benchmarks).
# On a lent GPU machine: EXTRA="--device cuda" bash scripts/train_releases.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# the checkout's releases and ONNX exports: what release names and `cropdx export` refer to
export CROPDX_MODELS="$PWD/models" CROPDX_EXPORTS="$PWD/exports"
DATA=${DATA:-../shared/data/plantvillage}
FIELD_DATA=${FIELD_DATA:-../shared/data/plantdoc_field}
FIELD=${FIELD:-field_photos}
STARTS=${STARTS:-fdce7c8}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

[ -d "$FIELD/backgrounds" ] || .venv/bin/python scripts/field_photos.py "$FIELD"
for release in ${RELEASES:-efficientnet_lite0 mobilenetv2_100 efficientnet_lite2}; do
  start=runs/field-style-releases/$release
  mkdir -p "$start"
  for file in config.json model.safetensors preprocessor_config.json split.csv; do
    git show "$STARTS:models/$release/$file" > "$start/$file"
  done
  # shellcheck disable=SC2086
  .venv/bin/cropdx -v train --config "configs/$release.yaml" --data "$DATA" --field-photos "$FIELD" \
    --field-data "$FIELD_DATA" ${EXTRA:-}
  .venv/bin/cropdx calibrate --model "$release" --data "$DATA" --field-data "$FIELD_DATA"
  .venv/bin/cropdx evaluate --model "$release" --data "$DATA" --split test --out "models/$release/eval"
  .venv/bin/cropdx evaluate --model "$release" --data "$DATA" --split validation --out "models/$release/eval/validation"
  .venv/bin/cropdx evaluate --model "$release" --data "$DATA" --split test --field-photos "$FIELD" \
    --out "models/$release/eval/field_proxy"
  .venv/bin/cropdx evaluate --model "$release" --data "$FIELD_DATA" --out-of-fold \
    --out "models/$release/eval/field_out_of_fold"
done
