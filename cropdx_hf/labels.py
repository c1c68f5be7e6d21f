"""The one taxonomy: the 15 tomato/potato/bell-pepper classes and every other naming of them.

Class ids are the folder names of the PlantVillage 15-class copy in ../shared/data/plantvillage. Other
datasets name the same classes differently (the 38-class PlantVillage release, PlantDoc's field photos);
`resolve_label` maps any of those names onto our ids so evaluation works on foreign folders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CropClass:
    id: str
    crop: str
    disease: str
    healthy: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def display_name(self) -> str:
        return f"{self.crop}: {self.disease}"


CLASSES: tuple[CropClass, ...] = (
    CropClass("Pepper__bell___Bacterial_spot", "Bell pepper", "Bacterial spot", False,
              ("Pepper,_bell___Bacterial_spot", "Bell_pepper leaf spot")),
    CropClass("Pepper__bell___healthy", "Bell pepper", "Healthy", True,
              ("Pepper,_bell___healthy", "Bell_pepper leaf")),
    CropClass("Potato___Early_blight", "Potato", "Early blight", False,
              ("Potato leaf early blight",)),
    CropClass("Potato___Late_blight", "Potato", "Late blight", False,
              ("Potato leaf late blight",)),
    CropClass("Potato___healthy", "Potato", "Healthy", True,
              ("Potato leaf",)),
    CropClass("Tomato_Bacterial_spot", "Tomato", "Bacterial spot", False,
              ("Tomato___Bacterial_spot", "Tomato leaf bacterial spot")),
    CropClass("Tomato_Early_blight", "Tomato", "Early blight", False,
              ("Tomato___Early_blight", "Tomato Early blight leaf")),
    CropClass("Tomato_Late_blight", "Tomato", "Late blight", False,
              ("Tomato___Late_blight", "Tomato leaf late blight")),
    CropClass("Tomato_Leaf_Mold", "Tomato", "Leaf mold", False,
              ("Tomato___Leaf_Mold", "Tomato mold leaf")),
    CropClass("Tomato_Septoria_leaf_spot", "Tomato", "Septoria leaf spot", False,
              ("Tomato___Septoria_leaf_spot", "Tomato Septoria leaf spot")),
    CropClass("Tomato_Spider_mites_Two_spotted_spider_mite", "Tomato", "Two-spotted spider mite", False,
              ("Tomato___Spider_mites Two-spotted_spider_mite", "Tomato two spotted spider mites leaf")),
    CropClass("Tomato__Target_Spot", "Tomato", "Target spot", False,
              ("Tomato___Target_Spot",)),
    CropClass("Tomato__Tomato_YellowLeaf__Curl_Virus", "Tomato", "Yellow leaf curl virus", False,
              ("Tomato___Tomato_Yellow_Leaf_Curl_Virus", "Tomato leaf yellow virus")),
    CropClass("Tomato__Tomato_mosaic_virus", "Tomato", "Mosaic virus", False,
              ("Tomato___Tomato_mosaic_virus", "Tomato leaf mosaic virus")),
    CropClass("Tomato_healthy", "Tomato", "Healthy", True,
              ("Tomato___healthy", "Tomato leaf")),
)

CLASS_IDS: tuple[str, ...] = tuple(c.id for c in CLASSES)
_BY_ID = {c.id: c for c in CLASSES}


def _normalize(name: str) -> str:
    """Case, punctuation and underscore runs differ between datasets; the words do not."""
    return " ".join(re.findall(r"[a-z0-9]+", name.lower()))


_BY_NORMALIZED = {_normalize(n): c.id for c in CLASSES for n in (c.id, c.display_name, *c.aliases)}


def get_class(class_id: str) -> CropClass:
    try:
        return _BY_ID[class_id]
    except KeyError:
        raise KeyError(f"unknown class id {class_id!r}; known: {', '.join(CLASS_IDS)}") from None


def display_name(class_id: str) -> str:
    """'Bell pepper: Bacterial spot' for a class id; a name that is not one of ours is shown as it is."""
    return _BY_ID[class_id].display_name if class_id in _BY_ID else class_id


def resolve_label(name: str) -> str | None:
    """Our class id for a foreign class name, or None when the class has no counterpart here."""
    return _BY_NORMALIZED.get(_normalize(name))


def select_classes(spec: str | Sequence[str] | None = None) -> list[str]:
    """Class ids for a subset: None/'all', a crop name ('tomato'), or class names (any alias)."""
    if spec is None or spec == "all":
        return list(CLASS_IDS)
    if isinstance(spec, str):
        crop_ids = [c.id for c in CLASSES if _normalize(c.crop) == _normalize(spec)]
        if crop_ids:
            return crop_ids
        spec = [s for s in spec.split(",") if s.strip()]
    return _resolve_all(spec)


def _resolve_all(names: Iterable[str]) -> list[str]:
    ids, unknown = [], []
    for name in names:
        class_id = resolve_label(name.strip())
        (ids if class_id else unknown).append(class_id or name)
    if unknown:
        raise ValueError(f"no class matches {unknown}; use crop names, class ids or their aliases")
    return [c for c in CLASS_IDS if c in set(ids)]
