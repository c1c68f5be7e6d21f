"""cropdx Space: diagnose a tomato, potato or bell-pepper leaf photo (Gradio UI + REST API).

    python space/app.py [--host 127.0.0.1] [--port 7860] [--model NAME | DIR | ORG/NAME]
"""

import argparse
import os

import torch
import uvicorn

from cropdx_hf.serving import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--model", default=os.environ.get("CROPDX_MODEL"),
                        help="default model: release name, model folder or Hub id (default: the recommended one)")
    parser.add_argument("--torch-threads", type=int, default=int(os.environ.get("CROPDX_TORCH_THREADS", 1)),
                        help="intra-op threads per request (default 1: concurrent requests already fill the cores; "
                             "2 threads each on 2 cores cost ~30 %% of throughput, README Benchmarks)")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    uvicorn.run(create_app(args.model), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
