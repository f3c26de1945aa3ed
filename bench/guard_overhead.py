"""What governance costs per request, and how fast the Redis rate limiter is.

Part 1, side by side in one run against the same stub upstream: the
gateway with no auth, no limits and no scanners ("bare") and the gateway
as shipped with auth on, an API key with rpm/tpm/budget limits, and the
default input and output scanners ("governed").  Both serve the same
fixed request rate (h2load, as ``gateway_overhead.py``); the added latency
is governed minus bare at each percentile.  Benign prompts, so every
scanner runs to the end and nothing is blocked.

Part 2: ``RedisRateLimiter.take`` against a real ``redis-server`` from
several processes at once (each an asyncio loop with many concurrent
checks), counted over a fixed time: checks per second on this machine.

    .venv/bin/python bench/guard_overhead.py [--rate 50] [--duration 20] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loadgen import (
    BIN,
    Server,
    chat_body,
    emit,
    free_port,
    machine_info,
    prepare_workspace,
    require_tools,
    run_fixed_rate,
    run_in_workdir,
    start_server,
    start_stub,
    tool_versions,
)

_CHAT = "/v1/chat/completions"
_PROMPT = "What is the difference between a list and a tuple in Python?"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s (default 50)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first")
    parser.add_argument("--limiter-seconds", type=float, default=5.0)
    parser.add_argument("--limiter-processes", type=int, default=2)
    parser.add_argument("--limiter-concurrency", type=int, default=32, help="per process")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    return parser


def _start_gateway(workspace: Path, log_dir: Path, *, governed: bool) -> Server:
    port = free_port()
    command = [str(BIN / "llmline"), "-w", str(workspace), "serve", "--port", str(port)]
    command += ["--log-level", "warning", "--auth" if governed else "--no-auth"]
    name = "governed" if governed else "bare"
    return start_server(name, command, port=port, ready_path="/readyz", log_dir=log_dir)


def _prepare(work: Path, stub_url: str) -> tuple[Path, Path, str]:
    """Two workspaces on the same stub: bare (guard off) and governed (a key)."""
    from llmline.guard.keys import KeyStore
    from llmline.workspace import Workspace

    bare = prepare_workspace(work / "bare", stub_url)
    with (bare / "llmline.yaml").open("a") as out:
        out.write("\nguard:\n  defaults: false\n")
    governed = prepare_workspace(work / "governed", stub_url)
    token, _ = KeyStore(Workspace(governed).metadata).create(
        "bench", "user", rpm=1_000_000, tpm=1_000_000_000, budget_usd=1_000_000.0
    )
    return bare, governed, token


def _measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    stub = start_stub(work)
    servers = [stub]
    try:
        bare_ws, governed_ws, token = _prepare(work, stub.url)
        bare = _start_gateway(bare_ws, work, governed=False)
        servers.append(bare)
        governed = _start_gateway(governed_ws, work, governed=True)
        servers.append(governed)
        body = chat_body("bench", _PROMPT, 16)
        results = {}
        for name, server, key in (("bare", bare, "none"), ("governed", governed, token)):
            print(f"measuring {name} at {args.rate:g} RPS ...", file=sys.stderr)
            fixed = run_fixed_rate(
                server.url + _CHAT,
                body,
                rate=args.rate,
                duration_s=args.duration,
                warmup_s=args.warmup,
                api_key=key,
            )
            results[name] = fixed.to_dict()
    finally:
        for server in reversed(servers):
            server.stop()
    added = {
        q: round(results["governed"][q] - results["bare"][q], 3)
        for q in ("p50_ms", "p90_ms", "p99_ms")
        if q in results["bare"]
    }
    return {"results": results, "added_ms": added}


# -- part 2: the Redis limiter ------------------------------------------------------------


def _limiter_worker(url: str, seconds: float, concurrency: int, out: Any) -> None:
    from llmline.guard.limits import RedisRateLimiter, Take

    async def run() -> int:
        limiter = RedisRateLimiter.from_url(url, prefix=f"bench{uuid.uuid4().hex[:6]}:")
        done = 0
        deadline = time.perf_counter() + seconds

        async def loop(i: int) -> None:
            nonlocal done
            takes = [Take(f"key:k{i % 8}:rpm", 1e12, 1), Take("deployment:bench:rpm", 1e12, 1)]
            while time.perf_counter() < deadline:
                await limiter.take(takes)
                done += 1

        await asyncio.gather(*(loop(i) for i in range(concurrency)))
        await limiter.aclose()
        return done

    out.put(asyncio.run(run()))


def _limiter(args: argparse.Namespace) -> dict[str, Any]:
    from llmline.testing import RedisServer

    with RedisServer() as server:
        queue: Any = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(
                target=_limiter_worker,
                args=(server.url, args.limiter_seconds, args.limiter_concurrency, queue),
            )
            for _ in range(args.limiter_processes)
        ]
        for proc in procs:
            proc.start()
        total = sum(queue.get() for _ in procs)
        for proc in procs:
            proc.join()
    return {
        "checks": total,
        "seconds": args.limiter_seconds,
        "checks_per_s": round(total / args.limiter_seconds),
        "processes": args.limiter_processes,
        "concurrency_per_process": args.limiter_concurrency,
        "buckets_per_check": 2,
    }


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "guard_overhead",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "tools": tool_versions(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    report["gateway"] = _measure(args, work)
    print(f"added latency: {report['gateway']['added_ms']}", file=sys.stderr)
    report["redis_limiter"] = _limiter(args)
    print(f"redis limiter: {report['redis_limiter']['checks_per_s']} checks/s", file=sys.stderr)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_tools("h2load")
    report = run_in_workdir(lambda folder: _run(args, folder), args.workdir, "llmline-bench-guard-")
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
