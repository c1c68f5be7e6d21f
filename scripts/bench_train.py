"""Time-to-accuracy: the three-stage cached recipe against a plain full fine-tune on the same data.

Both runs see the same split, resolution, batch size, augmentation and seed; the clock starts before any
image is decoded (the recipe's caching counts). Validation macro-F1 is measured every `--eval-every`
optimizer steps during the plain fine-tune and at each epoch of each recipe stage.

    python scripts/bench_train.py --data ../shared/data/plantvillage --image-size 128 \
        --max-train-samples 600 --target 0.85 --budget-minutes 4 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from cropdx_hf.training.trainer import StagedTrainer, TrainConfig


class Clock(TrainerCallback):
    """Records (seconds, stage, macro-F1) at every evaluation; stops a run once over budget."""

    def __init__(self, budget_s: float, eval_every: int | None = None):
        self.start = time.time()
        self.budget_s, self.eval_every = budget_s, eval_every
        self.points: list[dict] = []

    def on_step_end(self, args, state, control, **kwargs):
        if self.eval_every and state.global_step % self.eval_every == 0:
            control.should_evaluate = True
        if time.time() - self.start > self.budget_s:
            control.should_training_stop = True
            control.should_evaluate = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # the stage (head, top, full), not the run's temporary folder: the report is committed
        self.points.append({"seconds": round(time.time() - self.start, 1), "stage": Path(args.output_dir).name,
                            "macro_f1": metrics["eval_macro_f1"]})

    def time_to(self, target: float) -> float | None:
        return next((p["seconds"] for p in self.points if p["macro_f1"] >= target), None)


def run(cfg: TrainConfig, clock: Clock) -> dict:
    with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its logs; stdout is for the --json result
        StagedTrainer(cfg, callbacks=[clock]).run()
    return {"points": clock.points, "best_macro_f1": max(p["macro_f1"] for p in clock.points),
            "total_seconds": round(time.time() - clock.start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--target", type=float, default=0.97, help="validation macro-F1 to reach")
    parser.add_argument("--budget-minutes", type=float, default=15, help="per method")
    parser.add_argument("--plain-lr", type=float, default=1e-4)
    parser.add_argument("--plain-epochs", type=float, default=3)
    parser.add_argument("--eval-every", type=int, default=25, help="plain fine-tune: steps between evaluations")
    parser.add_argument("--split-csv", default="splits/plantvillage.csv")
    parser.add_argument("--top-stages", type=int, default=4, help="recipe: as the releases (train_releases.sh)")
    parser.add_argument("--lr-top", type=float, default=1e-3, help="recipe: as the releases")
    parser.add_argument("--epochs-top", type=float, default=5, help="recipe: stage 2 epochs (the 160-px recipe)")
    parser.add_argument("--epochs-full", type=float, default=2, help="recipe: stage 3 epochs (the 160-px recipe)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    budget = args.budget_minutes * 60
    with tempfile.TemporaryDirectory() as work:
        common = {"data": args.data, "backbone": args.backbone, "image_size": args.image_size,
                  "max_train_samples": args.max_train_samples, "split_csv": args.split_csv, "report_to": "none"}
        recipe_clock = Clock(budget)
        recipe = run(TrainConfig(out=f"{work}/recipe", top_stages=args.top_stages, lr_top=args.lr_top, epochs_head=5,
                                 epochs_top=args.epochs_top, epochs_full=args.epochs_full, **common), recipe_clock)
        plain_clock = Clock(budget, args.eval_every)
        plain = run(TrainConfig(out=f"{work}/plain", epochs_head=0, epochs_top=0, epochs_full=args.plain_epochs,
                                lr_full_low=args.plain_lr, lr_full_high=args.plain_lr, **common), plain_clock)
    recipe_t = recipe_clock.time_to(args.target)
    plain_t = plain_clock.time_to(args.target)
    result = {
        "backbone": args.backbone, "image_size": args.image_size, "max_train_samples": args.max_train_samples,
        "target_macro_f1": args.target, "budget_seconds": budget,
        "recipe": {**recipe, "seconds_to_target": recipe_t},
        "plain_finetune": {**plain, "seconds_to_target": plain_t, "lr": args.plain_lr},
        # plain never reaching the target within budget: the ratio is a lower bound (budget / recipe time)
        "speedup": round((plain_t or budget) / recipe_t, 2) if recipe_t else None,
        "speedup_is_lower_bound": plain_t is None,
    }
    print(json.dumps(result, indent=2) if args.json else
          f"recipe {recipe_t}s, plain {plain_t}s to macro-F1 {args.target}: speedup {result['speedup']}")


if __name__ == "__main__":
    main()
