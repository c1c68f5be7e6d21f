"""Per-class precision, recall, F1 and support as an `evaluate` module, shipped for offline use.

The Hub's precision/recall/f1 modules give one number per call; an error analysis needs all four per
class at once, which is sklearn's `precision_recall_fscore_support`.
"""

import datasets
import evaluate
from sklearn.metrics import precision_recall_fscore_support


class PerClass(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Precision, recall, F1 and support for each class.",
            citation="",
            inputs_description="predictions, references: integer class ids; labels: the class ids to report",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None):
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=labels, zero_division=0)
        return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
                "support": support.tolist()}
