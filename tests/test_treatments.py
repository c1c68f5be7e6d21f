"""Schema and content checks for the treatment table, including the seed design's known errors."""

import pytest

from cropdx_hf.inference.treatments import _table, photo_tips, treatment_for
from cropdx_hf.labels import CLASS_IDS, get_class

FUNGICIDE_WORDS = ("fungicide", "chlorothalonil", "mancozeb", "strobilurin", "azoxystrobin", "mefenoxam")


def test_every_class_has_one_entry_and_nothing_else():
    assert sorted(_table()["classes"]) == sorted(CLASS_IDS)


@pytest.mark.parametrize("class_id", CLASS_IDS)
def test_every_entry_is_sourced_and_complete(class_id):
    t = treatment_for(class_id)
    assert t.sources and all(s.url.startswith("http") and s.title for s in t.sources)
    assert t.severity in {"none", "low-moderate", "moderate", "moderate-high", "high"}
    assert t.urgency and "label" in t.disclaimer and "extension" in t.disclaimer
    if t.healthy:
        assert t.care_tips and not t.actions and not t.active_ingredients and t.severity == "none"
    else:
        assert t.cause and t.actions
        for ingredient in t.active_ingredients:
            assert set(ingredient) <= {"name", "class", "note"} and ingredient["name"] and ingredient["class"]


def test_every_source_code_is_defined_and_used():
    table = _table()
    used = {code for entry in table["classes"].values() for code in entry["sources"]}
    assert used == set(table["sources"])


def test_healthy_classes_carry_no_chemical_advice():
    for class_id in CLASS_IDS:
        if get_class(class_id).healthy:
            text = " ".join(treatment_for(class_id).care_tips).lower()
            assert not any(w in text for w in FUNGICIDE_WORDS), class_id


def test_the_seed_designs_errors_are_not_repeated():
    pepper_spot = treatment_for("Pepper__bell___Bacterial_spot")
    assert not any("mefenoxam" in i["name"] or "metalaxyl" in i["name"] for i in pepper_spot.active_ingredients)
    assert any("oomycetes" in c for c in pepper_spot.caveats)  # says why mefenoxam is useless here
    for blight in ("Potato___Late_blight", "Tomato_Late_blight"):
        assert any("Mefenoxam resistance" in c for c in treatment_for(blight).caveats)
    assert any("Azoxystrobin resistance" in c for c in treatment_for("Tomato__Target_Spot").caveats)
    for virus in ("Tomato__Tomato_YellowLeaf__Curl_Virus", "Tomato__Tomato_mosaic_virus"):
        t = treatment_for(virus)
        assert t.kind == "virus" and t.active_ingredients == ()
        assert not any(w in " ".join(t.actions).lower() for w in FUNGICIDE_WORDS)
    assert treatment_for("Tomato_Spider_mites_Two_spotted_spider_mite").kind == "mite"


def test_advice_names_no_brands():
    # source titles may name a publisher; the advice itself must not name products
    advice = " ".join(str([d["actions"], d["active_ingredients"], d["caveats"], d["verify"]])
                      for d in (treatment_for(c).to_dict() for c in CLASS_IDS)).lower()
    for brand in ("ridomil", "revus", "presidio", "bravo", "quadris", "kocide", "dithane"):
        assert brand not in advice


def test_photo_tips():
    assert len(photo_tips()) >= 3
