"""F1 as an `evaluate` module, shipped so `evaluate.load(<path>)` works without the Hub.

`average` is 'macro' (classes weigh equally: what a farmer with a rare disease cares about), 'weighted',
'micro' or None (one score per class).
"""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "Harmonic mean of precision and recall, averaged over classes."


class F1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description="predictions, references: integer class ids; average; labels",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, average="macro", labels=None):
        score = f1_score(references, predictions, average=average, labels=labels, zero_division=0)
        return {"f1": score.tolist() if average is None else float(score)}
