#!/usr/bin/env bash
# The commands that produced the committed releases, on this project's 2-core CPU machine:
#   bash scripts/train_releases.sh                       # all three
#   RELEASES=mobilenetv2_100 bash scripts/train_releases.sh
# Each release is the lab-only release of the same backbone, trained further on field-style views
# (configs/<release>.yaml, docs/training.md); mobilenetv2_100 also learns from models/efficientnet_lite0 (its
# config's teacher), so that one comes first. Those lab-only releases are restored from git history first:
# LAB_RELEASES names the commit that holds them. The field photos come from scripts/field_photos.py.
# Then: calibration on lab and field-proxy validation photos, and the evaluation reports.
# After all three: bash scripts/release_reports.sh (leaf gate, exports, comparison, cards, benchmarks).
# On a lent GPU machine: EXTRA="--device cuda --batch_size 128" bash scripts/train_releases.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# the checkout's releases and ONNX exports: what release names and `cropdx export` refer to
export CROPDX_MODELS="$PWD/models" CROPDX_EXPORTS="$PWD/exports"
DATA=${DATA:-../shared/data/plantvillage}
FIELD=${FIELD:-field_photos}
LAB_RELEASES=${LAB_RELEASES:-5e4f322}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

[ -d "$FIELD/backgrounds" ] || .venv/bin/python scripts/field_photos.py "$FIELD"
for release in ${RELEASES:-efficientnet_lite0 mobilenetv2_100 efficientnet_lite2}; do
  lab=runs/lab-releases/$release
  mkdir -p "$lab"
  for file in config.json model.safetensors preprocessor_config.json split.csv; do
    git show "$LAB_RELEASES:models/$release/$file" > "$lab/$file"
  done
  # a release whose lab stage has its own config (mobilenetv2_100, efficientnet_lite2: the lab-only release
  # trained further at 224 px) trains that first; its field config starts from the result
  lab_stage=configs/$release-lab224.yaml
  # shellcheck disable=SC2086
  [ ! -f "$lab_stage" ] || .venv/bin/cropdx -v train --config "$lab_stage" --data "$DATA" ${EXTRA:-}
  # shellcheck disable=SC2086
  .venv/bin/cropdx -v train --config "configs/$release.yaml" --data "$DATA" --field-photos "$FIELD" ${EXTRA:-}
  .venv/bin/cropdx calibrate --model "$release" --data "$DATA" --field-photos "$FIELD"
  .venv/bin/cropdx evaluate --model "$release" --data "$DATA" --split test --out "models/$release/eval"
  .venv/bin/cropdx evaluate --model "$release" --data "$DATA" --split validation --out "models/$release/eval/validation"
  .venv/bin/cropdx evaluate --model "$release" --data "$DATA" --split test --field-photos "$FIELD" \
    --out "models/$release/eval/field_proxy"
done
