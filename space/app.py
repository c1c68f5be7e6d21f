"""cropdx Space: diagnose a tomato, potato or bell-pepper leaf photo (Gradio UI + REST API).

    python space/app.py [--host 127.0.0.1] [--port 7860] [--model NAME | DIR | ORG/NAME]
"""

import argparse
import os

import uvicorn

from cropdx_hf.serving import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--model", default=os.environ.get("CROPDX_MODEL"),
                        help="default model: release name, model folder or Hub id (default: the recommended one)")
    args = parser.parse_args()
    uvicorn.run(create_app(args.model), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
