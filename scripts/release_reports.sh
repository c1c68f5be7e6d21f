#!/usr/bin/env bash
# After scripts/train_releases.sh: each release's leaf gate (fitted, measured, named in its config),
# verified ONNX/INT8 exports (exports/, not committed), the comparison, the model cards, and the field, quality
# and example reports. Every figure they hold is measured here.
set -euo pipefail
cd "$(dirname "$0")/.."
# the checkout's releases and ONNX exports: what release names and `cropdx export` refer to
export CROPDX_MODELS="$PWD/models" CROPDX_EXPORTS="$PWD/exports"
DATA=${DATA:-../shared/data/plantvillage}
FIELD_DATA=${FIELD_DATA:-../shared/data/plantdoc_field}
FIELD=${FIELD:-field_photos}
RELEASES=${RELEASES:-efficientnet_lite0 mobilenetv2_100 efficientnet_lite2}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
[ -d "$FIELD/backgrounds" ] || .venv/bin/python scripts/field_photos.py "$FIELD"
# shellcheck disable=SC2086
.venv/bin/cropdx fit-leaf-gate --data "$DATA" --split-csv splits/plantvillage.csv --field-photos "$FIELD" \
  --field-data "$FIELD_DATA" --models $RELEASES
for release in $RELEASES; do
  # INT8 calibration on photos that ship with the repository (and field-style views of them over procedural
  # scenes), so that a fresh clone rebuilds the same file; INT8 is also checked on the field proxy
  .venv/bin/cropdx export --model "$release" --data "$DATA" --calibration-data tests/fixtures/leaves --field-photos "$FIELD"
done
.venv/bin/cropdx compare --out reports/compare
.venv/bin/cropdx cards --out model_cards
.venv/bin/python scripts/field_examples.py --data "$DATA" --field-photos "$FIELD"
.venv/bin/python scripts/bench_field.py --data "$DATA" --field-photos "$FIELD" --field-data "$FIELD_DATA"
.venv/bin/python scripts/bench_quality.py --data "$DATA" --field-photos "$FIELD" --field-data "$FIELD_DATA"
