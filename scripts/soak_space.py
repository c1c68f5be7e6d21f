"""Soak test of the Space's REST API: many requests from concurrent clients, a bad input every Nth.

Bad inputs (a text file, a truncated JPEG, an empty file, a 1x1 image, a decompression bomb, an unknown model
name, ...) must each get a 4xx with a message; good photos a 200. Reports server errors (5xx), wrong answers,
the server's resident memory after warm-up and at the end, and throughput.

    python scripts/soak_space.py --requests 2000 --clients 8 --bad-every 10 --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from bad_inputs import unusable  # noqa: E402
from bench_space import LEAF, rss_mb, running_space  # noqa: E402


def requests_plan(total: int, bad_every: int) -> list[tuple[str, bytes, str]]:
    """(name, bytes, model query) per request: the leaf photo, with a bad input every `bad_every`-th."""
    bad = itertools.cycle([*sorted(unusable().items()), ("leaf.jpg", "unknown model")])
    plan = []
    for i in range(1, total + 1):
        if i % bad_every:
            plan.append(("leaf.jpg", LEAF.read_bytes(), ""))
        else:
            name, data = next(bad)
            plan.append((name, LEAF.read_bytes(), "no_such_model") if data == "unknown model" else (name, data, ""))
    return plan


def send(http: httpx.Client, base: str, item: tuple[str, bytes, str]) -> dict:
    name, data, model = item
    response = http.post(f"{base}/predict" + (f"?model={model}" if model else ""), files={"file": (name, data)})
    bad = bool(model) or name != "leaf.jpg"
    body = response.json()
    clear = isinstance(body.get("error"), str) and len(body["error"]) > 10 if bad else "status" in body
    return {"bad": bad, "status": response.status_code, "clear": clear}


def soak(total: int, clients: int, bad_every: int, warmup: int = 200, server_args: list[str] | None = None) -> dict:
    """Warm-up at full concurrency first (every input kind, every client thread's buffers and ONNX Runtime's
    arenas), then the plan in two halves: growth over the whole plan and over its second half tell a leak (it
    keeps growing) from a plateau."""
    plan = requests_plan(total, bad_every)
    with running_space("onnx", extra=server_args) as (base, server), httpx.Client(timeout=60) as http, \
            ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda item: send(http, base, item), requests_plan(warmup, bad_every)))
        after_warmup = rss_mb(server.pid, "VmRSS")
        start = time.perf_counter()
        results = list(pool.map(lambda item: send(http, base, item), plan[:total // 2]))
        halfway = rss_mb(server.pid, "VmRSS")
        results += list(pool.map(lambda item: send(http, base, item), plan[total // 2:]))
        wall = time.perf_counter() - start
        final = rss_mb(server.pid, "VmRSS")
    bad = [r for r in results if r["bad"]]
    good = [r for r in results if not r["bad"]]
    return {"requests": len(results), "clients": clients, "bad_inputs": len(bad),
            "server_errors": sum(r["status"] >= 500 for r in results),
            "bad_inputs_answered_4xx_with_a_message": sum(400 <= r["status"] < 500 and r["clear"] for r in bad),
            "good_photos_answered_200": sum(r["status"] == 200 and r["clear"] for r in good),
            "warmup_requests": warmup, "rss_after_warmup_mb": after_warmup, "rss_halfway_mb": halfway,
            "rss_at_end_mb": final, "rss_growth_mb": round(final - after_warmup, 1),
            "rss_growth_second_half_mb": round(final - halfway, 1),
            "throughput_rps": round(len(results) / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bad-every", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"command": "python scripts/soak_space.py " + " ".join(sys.argv[1:]),
              **soak(args.requests, args.clients, args.bad_every)}
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
