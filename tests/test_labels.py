import pytest

from cropdx_hf.labels import CLASS_IDS, get_class, resolve_label, select_classes
from tests.conftest import LEAVES


def test_fifteen_classes_match_the_data_folders():
    assert len(CLASS_IDS) == 15
    assert sorted(CLASS_IDS) == sorted(p.name for p in LEAVES.iterdir())
    assert sum(get_class(c).healthy for c in CLASS_IDS) == 3


@pytest.mark.parametrize(("foreign", "ours"), [
    ("Tomato___Early_blight", "Tomato_Early_blight"),
    ("Pepper,_bell___Bacterial_spot", "Pepper__bell___Bacterial_spot"),
    ("Tomato___Spider_mites Two-spotted_spider_mite", "Tomato_Spider_mites_Two_spotted_spider_mite"),
    ("Tomato___Tomato_Yellow_Leaf_Curl_Virus", "Tomato__Tomato_YellowLeaf__Curl_Virus"),
    ("Tomato Early blight leaf", "Tomato_Early_blight"),
    ("Bell_pepper leaf spot", "Pepper__bell___Bacterial_spot"),
    ("Tomato leaf", "Tomato_healthy"),
    ("Bell_pepper leaf", "Pepper__bell___healthy"),
    ("tomato_early_blight", "Tomato_Early_blight"),
])
def test_aliases_resolve(foreign, ours):
    assert resolve_label(foreign) == ours


def test_classes_without_counterpart_resolve_to_none():
    assert resolve_label("Apple Scab Leaf") is None
    assert resolve_label("Corn_(maize)___Common_rust_") is None


def test_subsets():
    assert select_classes() == list(CLASS_IDS)
    assert select_classes("potato") == ["Potato___Early_blight", "Potato___Late_blight", "Potato___healthy"]
    assert select_classes("Tomato leaf,Tomato___Late_blight") == ["Tomato_Late_blight", "Tomato_healthy"]
    with pytest.raises(ValueError, match="no class matches"):
        select_classes("banana")
