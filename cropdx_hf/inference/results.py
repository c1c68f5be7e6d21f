"""Result types shared by the PyTorch and the torch-free ONNX predictors."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Prediction:
    class_name: str
    probability: float

    def to_dict(self) -> dict:
        return asdict(self)
