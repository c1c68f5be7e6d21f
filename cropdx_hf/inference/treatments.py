"""Sourced treatment and care advice per class, stored as data (resources/treatments.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cropdx_hf.labels import get_class

TREATMENTS_FILE = Path(__file__).parent / "resources" / "treatments.yaml"


@dataclass(frozen=True)
class Source:
    code: str
    title: str
    url: str


@dataclass(frozen=True)
class Treatment:
    """What to do about one class (a disease, a pest, or a healthy leaf's care), with its sources."""

    class_id: str
    crop: str
    disease: str
    healthy: bool
    kind: str
    severity: str
    urgency: str
    cause: str = ""
    actions: tuple[str, ...] = ()
    active_ingredients: tuple[dict[str, str], ...] = ()
    caveats: tuple[str, ...] = ()
    care_tips: tuple[str, ...] = ()
    verify: tuple[str, ...] = ()
    sources: tuple[Source, ...] = field(default_factory=tuple)
    disclaimer: str = ""

    @property
    def advice(self) -> tuple[str, ...]:
        """The steps to show: the actions for a disease or pest, the care tips for a healthy leaf."""
        return self.actions or self.care_tips

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_name": self.class_id, "crop": self.crop, "disease": self.disease, "healthy": self.healthy,
            "kind": self.kind, "severity": self.severity, "urgency": self.urgency, "cause": self.cause,
            "actions": list(self.advice), "active_ingredients": list(self.active_ingredients),
            "caveats": list(self.caveats), "verify": list(self.verify),
            "sources": [{"code": s.code, "title": s.title, "url": s.url} for s in self.sources],
            "disclaimer": self.disclaimer,
        }


@cache
def _table() -> dict[str, Any]:
    return yaml.safe_load(TREATMENTS_FILE.read_text())


def photo_tips() -> list[str]:
    return list(_table()["photo_tips"])


def treatment_for(class_id: str) -> Treatment:
    table = _table()
    entry = table["classes"][class_id]
    cls = get_class(class_id)
    sources = tuple(Source(code, **table["sources"][code]) for code in entry["sources"])
    return Treatment(
        class_id=class_id, crop=cls.crop, disease=cls.disease, healthy=cls.healthy, kind=entry["kind"],
        severity=entry["severity"], urgency=entry["urgency"], cause=entry.get("cause", ""),
        actions=tuple(entry.get("actions", ())), active_ingredients=tuple(entry.get("active_ingredients", ())),
        caveats=tuple(entry.get("caveats", ())), care_tips=tuple(entry.get("care_tips", ())),
        verify=tuple(entry.get("verify", ())), sources=sources, disclaimer=table["disclaimer"],
    )
