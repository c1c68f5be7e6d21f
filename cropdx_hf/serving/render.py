"""What the page shows for a diagnosis: the verdict headline, the top-3 labels, the treatment or retake card, a
Grad-CAM figure."""

from __future__ import annotations

import base64
import io

from PIL import Image

from cropdx_hf.inference.diagnosis import Diagnosis


def inline_image(image: Image.Image, caption: str) -> str:
    """HTML with the image as a data URI: nothing derived from a photo is written to disk."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<figure><img src="data:image/jpeg;base64,{data}" alt="{caption}"><figcaption>{caption} (Grad-CAM)' \
           "</figcaption></figure>"


HEADLINES = {"retake": "Retake the photo", "not_a_leaf": "Not a leaf"}
TOP3_LABEL, POSSIBLE_LABEL = "Top-3 diagnoses", "Possible diagnoses (not confirmed: retake the photo)"


def headline(result: Diagnosis) -> str:
    """The first thing the page says: the diagnosis, or, when there is none, what to do. A retake names no
    disease here: on a phone screen the headline is what a farmer reads and acts on."""
    if result.status == "diagnosed":
        top = result.predictions[0]
        return f"## {top.display_name} ({top.probability:.0%})"
    return f"## {HEADLINES[result.status]}\n\n{result.message}"


def top3_labels(result: Diagnosis) -> dict[str, float]:
    return {p.display_name: p.probability for p in result.predictions}


def top3_title(result: Diagnosis) -> str:
    return TOP3_LABEL if result.status == "diagnosed" else POSSIBLE_LABEL


def render_card(result: Diagnosis) -> str:
    """Markdown for the page: the treatment card, or how to retake the photo (the headline says why)."""
    if result.status != "diagnosed":
        lines = ["**How to take a better photo**", "", *[f"- {tip}" for tip in result.tips]]
        if result.quality and result.quality.failed:
            lines += ["", "**Photo checks that failed:** " + "; ".join(
                f"{c.name.replace('_', ' ')} ({', '.join(f'{k} {v}' for k, v in c.measured.items())})"
                for c in result.quality.failed)]
        return "\n".join(lines)
    t = result.treatment
    lines = [f"## {t.crop}: {t.disease}", ""]
    if t.healthy:
        lines += ["**No treatment needed.** Care tips:", "", *[f"- {a}" for a in t.advice]]
    else:
        lines += [f"**Cause:** {t.cause}", "", f"**Severity:** {t.severity} · **Urgency:** {t.urgency}",
                  "", "**What to do**", "", *[f"- {a}" for a in t.advice]]
        if t.active_ingredients:
            lines += ["", "**Active ingredients** (by class, no brands)", "",
                      *[f"- {i['name']}: {i['class']}" + (f" ({i['note']})" if i.get("note") else "")
                        for i in t.active_ingredients]]
        lines += ["", "**Caveats**", "", *[f"- {c}" for c in t.caveats + t.verify]]
    lines += ["", "**Sources:** " + ", ".join(f"[{s.code}]({s.url})" for s in t.sources), "",
              f"*{t.disclaimer}*"]
    return "\n".join(lines)
