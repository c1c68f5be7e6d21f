"""cropdx Space: diagnose a tomato, potato or bell-pepper leaf photo (Gradio page + REST API on one server).

    python space/app.py [--host 127.0.0.1] [--port 7860] [--model NAME | DIR | ORG/NAME] [--backend auto|onnx|torch]

The page and the Gradio API call the library's Service; REST routes come from cropdx_hf.serving.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI

from cropdx_hf.errors import UnknownModelError
from cropdx_hf.photos import MAX_BYTES, ImageError
from cropdx_hf.release.registry import DEFAULT_RELEASE, EXPORTS_ENV, MODELS_ENV, Releases, resolve_models
from cropdx_hf.serving.api import CLIENT_ERRORS, build_api, error_payload
from cropdx_hf.serving.render import TOP3_LABEL, headline, inline_image, render_card, top3_labels, top3_title
from cropdx_hf.serving.service import BACKENDS, Service

HERE = Path(__file__).parent
EXAMPLES_DIR = HERE / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.jpg"))
# Gradio caches by content: an upload byte-identical to an example, under the example's name, lands at the example's
# own cache path, which must survive; the same bytes under another name are an upload like any other
EXAMPLE_FILES = {(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in EXAMPLES}


def beside_or_above(name: str) -> Path:
    """models/ or exports/ beside app.py (a pushed Space) or beside its folder (the repository's checkout)."""
    return next((p for p in (HERE / name, HERE.parent / name) if p.is_dir()), HERE / name)


def read_and_delete(path: str | None) -> bytes:
    """Read the photo and remove Gradio's copy, so no leaf photo stays on disk (the examples' copies stay)."""
    if not path:
        raise ImageError("no photo: upload, paste or take a photo first")
    file = Path(path)
    if file.stat().st_size > MAX_BYTES:
        file.unlink(missing_ok=True)
        raise ImageError(f"the photo is over the {MAX_BYTES // 2**20} MB limit")
    data = file.read_bytes()
    if (file.name, hashlib.sha256(data).hexdigest()) not in EXAMPLE_FILES:
        file.unlink(missing_ok=True)
    return data


def build_ui(service: Service) -> gr.Blocks:
    def diagnose(upload: dict | None, model: str) -> tuple[str, dict, str, bytes, str]:
        """Runs on the upload as Gradio cached it (`preprocess=False` below): cropdx's reader gives a bad file one
        clear sentence, where Gradio's own decoding would show the server's temporary path and log a traceback."""
        try:
            data = read_and_delete(upload and upload.get("path"))
            result = service.diagnose(data, model, "ui", "the photo")
        except CLIENT_ERRORS as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        top = result.predictions[0].class_name if result.predictions else ""
        labels = gr.Label(top3_labels(result), label=top3_title(result))
        return headline(result), labels, render_card(result), data, top

    def explain(data: bytes | None, model: str, top: str) -> str:
        if not data or not top:
            raise gr.Error("diagnose a leaf photo first", print_exception=False)
        try:
            return inline_image(service.explain(data, model, top), "Where the model looked")
        except UnknownModelError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def api_predict(photo: str | None, model: str | None = None) -> dict[str, Any]:
        try:
            return service.diagnose(read_and_delete(photo), model, "gradio_api").to_dict()
        except CLIENT_ERRORS as exc:
            return error_payload(exc)[0]

    with gr.Blocks(title="cropdx: leaf disease diagnosis", analytics_enabled=False, delete_cache=(60, 60)) as demo:
        gr.Markdown("# cropdx\nPhotograph one tomato, potato or bell-pepper leaf to get the three likeliest "
                    "diagnoses with sourced advice. Decision support only: not a substitute for an agronomist.")
        photo_bytes, top_class = gr.State(None), gr.State("")  # kept in memory for Grad-CAM, never on disk
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="Leaf photo")
                model = gr.Dropdown(list(service.dirs), value=service.default, label="Model")
                button = gr.Button("Diagnose", variant="primary")
                if EXAMPLES:
                    gr.Examples([str(p) for p in EXAMPLES], inputs=photo, label="Example leaves")
            with gr.Column():
                verdict = gr.Markdown(elem_id="verdict", label="Verdict")
                # no heading: the verdict above says what the photo shows, or what to do when the model is unsure
                label = gr.Label(num_top_classes=3, label=TOP3_LABEL, show_heading=False, elem_id="top3")
                card = gr.Markdown(elem_id="treatment-card", label="Treatment card")
                explain_button = gr.Button("Show where the model looked (Grad-CAM)")
                # HTML with a data URI: an image output would be written to Gradio's file cache
                cam = gr.HTML(label="Grad-CAM")
        button.click(diagnose, [photo, model], [verdict, label, card, photo_bytes, top_class],
                     api_name="diagnose_ui", preprocess=False)
        explain_button.click(explain, [photo_bytes, model, top_class], cam, api_name="explain_ui")
        api_photo = gr.File(type="filepath", visible=False, label="photo")  # a plain file: bad uploads reach us
        api_model = gr.Textbox(value=service.default, visible=False, label="model")
        api_out = gr.JSON(visible=False, label="diagnosis")
        gr.Button(visible=False).click(api_predict, [api_photo, api_model], api_out, api_name="predict")
    return demo.queue(default_concurrency_limit=int(os.environ.get("CROPDX_UI_CONCURRENCY", 2)))


def create_app(default: str = DEFAULT_RELEASE, models: list[str] | None = None, models_dir: Path | None = None,
               exports_dir: Path | None = None, backend: str = "auto", threads: int = 1) -> FastAPI:
    """The page and the REST API on one FastAPI app: `default` and `models` (release names of `models_dir`,
    model folders or Hub ids; default: every release), served from the exports in `exports_dir` when there."""
    releases = Releases(models_dir) if models_dir and models_dir.is_dir() else None
    names = models if models is not None else (releases.names() if releases else [])
    model_dirs = resolve_models(default, names, releases)
    service = Service(model_dirs, Path(default).name, exports_dir, backend, threads)
    api = build_api(service)
    api.state.service = service
    ui = build_ui(service)
    with contextlib.redirect_stdout(io.StringIO()):  # gradio 5.50's mount_gradio_app prints "new /" (a debug print)
        return gr.mount_gradio_app(api, ui, path="/", max_file_size=MAX_BYTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--model", default=os.environ.get("CROPDX_MODEL", DEFAULT_RELEASE),
                        help=f"default model: release name, model folder or Hub id (default: {DEFAULT_RELEASE})")
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get(MODELS_ENV, beside_or_above("models"))),
                        help="folder of releases offered in the page (default: models/ of the Space or checkout)")
    parser.add_argument("--backend", choices=BACKENDS, default=os.environ.get("CROPDX_BACKEND", "auto"),
                        help="auto: ONNX Runtime where a model has an export, PyTorch otherwise")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("CROPDX_THREADS", 1)),
                        help="intra-op threads per model call (default 1: concurrent requests fill the cores)")
    parser.add_argument("--exports-dir", type=Path,
                        default=Path(os.environ.get(EXPORTS_ENV, beside_or_above("exports"))),
                        help="folder of `cropdx export` outputs: one sub-folder per model, and leaf_gate/ "
                             "(the gate's generic network)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("timm").setLevel(logging.WARNING)  # timm logs every checkpoint it loads at INFO
    app = create_app(args.model, models_dir=args.models_dir, exports_dir=args.exports_dir, backend=args.backend,
                     threads=args.threads)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
    threading.Thread(target=announce, args=(server, f"http://{args.host}:{args.port}"), daemon=True).start()
    server.run()


def announce(server: uvicorn.Server, url: str) -> None:
    """One line once the server listens, the last thing the demo prints (uvicorn's own start-up lines are off)."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.1)
    print(f"Space running at {url}", flush=True)


if __name__ == "__main__":
    main()
