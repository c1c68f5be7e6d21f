"""Why stage 3 freezes BatchNorm: validation macro-F1 of a model before and after its BatchNorm layers see
training batches in train mode, without a single weight update (what an unfrozen stage 3 does to them).

    python scripts/bn_drift.py --model efficientnet_lite0 --data ../shared/data/plantvillage --json
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import DataLoader

from cropdx_hf.data.loading import load_leaf_dataset
from cropdx_hf.evaluation.predictions import select_split
from cropdx_hf.evaluation.scores import evaluate_rows
from cropdx_hf.modeling.folder import load_model_folder
from cropdx_hf.modeling.transforms import batch_transform, data_config
from cropdx_hf.release.registry import Releases, resolve_model
from cropdx_hf.training.views import train_transform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--data", required=True)
    parser.add_argument("--batches", type=int, default=130, help="half an epoch at batch 32")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model_dir = resolve_model(args.model, Releases.from_settings())
    model, _ = load_model_folder(model_dir)
    dataset = load_leaf_dataset(args.data)
    validation = select_split(dataset, model_dir / "split.csv", "validation")
    before = evaluate_rows(model, validation)
    train = select_split(dataset, model_dir / "split.csv", "train").shuffle(seed=0).select(range(32 * args.batches))
    with torch.no_grad():
        model.train()
        for batch in DataLoader(train.with_transform(batch_transform(train_transform(data_config(model)))), 32):
            model(batch["pixel_values"])
    after = evaluate_rows(model, validation)
    result = {"model": args.model, "batches": args.batches, "validation_before": before, "validation_after": after}
    print(json.dumps(result, indent=2) if args.json else
          f"validation macro-F1 {before['macro_f1']:.4f} -> {after['macro_f1']:.4f} after BatchNorm drift")


if __name__ == "__main__":
    main()
