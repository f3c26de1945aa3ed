"""Soak: 100k requests through ``llmline serve``; RSS growth after warm-up
must stay under 10%.

The stub upstream and ``llmline serve`` (one worker, default settings) run
as separate processes on loopback.  **wrk** sends the load: closed loop,
``--connections`` keep-alive connections, in chunks of about ``--chunk``
requests (wrk runs for a duration: each chunk lasts ``chunk / last measured
rate`` seconds, so the total is about ``--requests``, reported exactly), so
that the gateway's RSS is read between chunks; a thread also samples it every
``--sample-interval`` seconds.  Every request is a distinct non-streaming
chat completion (the question carries its chunk and request number) with
``temperature: 0.7``, which llmline never serves from its exact cache: each
one goes through routing, safety scanning and the upstream call, and
anything keyed on the content gets a new key.

RSS (the gateway process and any children) is read after the warm-up and a
``--settle`` pause, after each chunk, and at the end after the same pause;
growth = (end − after warm-up) / after warm-up.  Open file descriptors and
threads are recorded too (a leak of either shows there first), and the
request count is cross-checked with the gateway's own ``/metrics``.

Usage::

    .venv/bin/python bench/gateway_soak.py                       # 100k requests
    .venv/bin/python bench/gateway_soak.py --requests 10000 --warmup 1000 --chunk 2000

At about 330 requests/s on two shared cores, 100k requests take about
5 minutes.  Figures are
printed as JSON and written to ``--output``; never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from _loadgen import (
    ROOT,
    Server,
    WrkResult,
    chat_body,
    emit,
    gateway_requests_total,
    machine_info,
    prepare_workspace,
    process_rss,
    require_tools,
    run_in_workdir,
    run_wrk,
    start_gateway,
    start_stub,
    tool_versions,
)

__all__ = ["RssSampler", "main", "soak"]

MIB = 2**20
_PROBE_S = 5.0


class RssSampler(threading.Thread):
    """Reads a process's RSS every ``interval_s`` seconds until stopped."""

    def __init__(self, pid: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop_event = threading.Event()
        self._start = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            with contextlib.suppress(psutil.Error):
                rss = process_rss(self.pid) / MIB
                self.samples.append((round(time.monotonic() - self._start, 1), round(rss, 1)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def _snapshot(server: Server) -> dict[str, Any]:
    proc = psutil.Process(server.pid)
    return {
        "rss_mib": round(process_rss(server.pid) / MIB, 2),
        "open_fds": proc.num_fds(),
        "threads": proc.num_threads(),
    }


def _load(server: Server, seconds: float, label: str, args: argparse.Namespace) -> WrkResult:
    """``seconds`` of distinct requests (the question carries ``label`` and
    wrk's request number)."""
    content = f"Soak {label} question {{N}}: how do I read a file?"
    return run_wrk(
        server.url + "/v1/chat/completions",
        chat_body("bench", content, args.max_tokens),
        connections=args.connections,
        threads=1,
        duration_s=seconds,
        varied=True,
    )


def _seconds_for(requests: int, rps: float) -> float:
    # wrk runs for whole seconds; the chunk's size follows the last measured rate.
    return float(max(1, round(requests / max(rps, 1.0))))


def _warm_up(server: Server, args: argparse.Namespace) -> tuple[list[WrkResult], float]:
    """A short probe for the rate, then the rest of ``args.warmup`` requests."""
    runs = [_load(server, _PROBE_S, "probe", args)]
    remaining = args.warmup - runs[0].requests
    if remaining > 0:
        runs.append(_load(server, _seconds_for(remaining, runs[0].rps), "warmup", args))
    rps = runs[-1].rps or runs[0].rps
    total = sum(r.requests for r in runs)
    print(f"warm-up: {total} requests, last at {rps} RPS", file=sys.stderr)
    return runs, rps


def _chunk_row(
    index: int, done: int, result: WrkResult, server: Server, t0: float
) -> dict[str, Any]:
    return {
        "chunk": index,
        "requests_so_far": done,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "requests": result.requests,
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
        **_snapshot(server),
    }


def soak(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up, then about ``args.requests`` in chunks; RSS along the way."""
    warm, rps = _warm_up(server, args)
    time.sleep(args.settle)
    after_warmup = _snapshot(server)
    served_before = gateway_requests_total(server.url)
    sampler = RssSampler(server.pid, args.sample_interval)
    sampler.start()
    chunks: list[dict[str, Any]] = []
    done, errors, t0 = 0, 0, time.monotonic()
    try:
        while done < args.requests:
            size = min(args.chunk, args.requests - done)
            result = _load(server, _seconds_for(size, rps), f"c{len(chunks)}", args)
            done += result.requests
            errors += result.error_count
            rps = result.rps or rps
            chunks.append(_chunk_row(len(chunks), done, result, server, t0))
            print(f"  chunk {json.dumps(chunks[-1])}", file=sys.stderr)
            if result.requests == 0:
                break  # the gateway stopped answering: report what there is
    finally:
        sampler.stop()
    soak_s = time.monotonic() - t0
    time.sleep(args.settle)
    end = _snapshot(server)
    growth = 100 * (end["rss_mib"] - after_warmup["rss_mib"]) / after_warmup["rss_mib"]
    peak = max([s[1] for s in sampler.samples] + [c["rss_mib"] for c in chunks], default=0.0)
    return {
        "warmup": {
            "requests": sum(w.requests for w in warm),
            "errors": sum(w.error_count for w in warm),
            "runs": [w.to_dict() for w in warm],
            "snapshot_after": after_warmup,
        },
        "requests_completed": done,
        "requests_served_by_gateway_metrics": gateway_requests_total(server.url) - served_before,
        "errors": errors,
        "soak_seconds": round(soak_s, 1),
        "mean_rps": round(done / soak_s, 1) if soak_s else None,
        "rss_mib_after_warmup": after_warmup["rss_mib"],
        "rss_mib_end": end["rss_mib"],
        "rss_mib_peak_sampled": peak,
        "rss_growth_pct": round(growth, 2),
        "snapshot_end": end,
        "pass_rss_growth_lt_10pct": bool(growth < args.max_growth_pct),
        "pass_no_errors": errors == 0,
        "chunks": chunks,
        "rss_samples": sampler.samples,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="after the warm-up")
    parser.add_argument("--warmup", type=int, default=5_000, help="requests before the baseline")
    parser.add_argument("--chunk", type=int, default=10_000, help="requests between RSS reads")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--settle", type=float, default=2.0, help="s idle before an RSS read")
    parser.add_argument("--sample-interval", type=float, default=5.0, help="s between samples")
    parser.add_argument("--max-growth-pct", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, help="logs and workspace (default: temporary)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "gateway_soak.json"
    )
    return parser


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "gateway_soak",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "tools": tool_versions(),
        "method": {
            "load": f"wrk -t1 -c{args.connections}, timed chunks of about {args.chunk} requests",
            "request": chat_body("bench", "Soak cN question N: how do I read a file?", 16),
            "rss": "psutil RSS of the gateway process and its children",
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    servers: list[Server] = []
    try:
        stub = start_stub(work)
        servers.append(stub)
        gateway = start_gateway(prepare_workspace(work / "workspace", stub.url), work)
        servers.append(gateway)
        report["gateway"] = {"pid": gateway.pid, "command": gateway.command}
        report["results"] = soak(gateway, args)
    finally:
        for server in reversed(servers):
            server.stop()
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_tools("wrk")
    report = run_in_workdir(lambda folder: _run(args, folder), args.workdir, "llmline-bench-soak-")
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
