"""What logging, metrics and tracing cost per request, and how fast the
local trace store ingests spans.

Part 1, side by side in one run: two gateways (``llmline serve``, one
worker each, their own processes) on the same ``fake:`` deployment and the
same settings but ``monitoring:`` — "off" (``tracing: false``,
``json_logs: false``, ``request_log: false``) and "on" (the defaults: a
trace per request in ``.llmline/traces.db``, one JSON log line per request,
the request log in the metadata store).  Metrics are always on (they cannot
be switched off).  The guard's scanners are off in both, so that the
difference is observability alone.  h2load sends a fixed rate (as
``guard_overhead.py``); the configurations alternate in ``--rounds``
windows so that both see the same background load on a shared machine
(``--breakdown`` adds three gateways with one switch on each).
Reported per configuration: the median over rounds of each window's
p50/p90/p99 latency, and gateway CPU time per request (user + system of
the server process over the window / requests answered) — the steadier
figure when other work shares the cores.

Part 2: span ingest into the local store.  (a) end to end: spans made as
the gateway makes them (``StageSpan``: a root and seven children per
"request", with attributes) through ``LocalSpanProcessor`` into SQLite,
timed until the last is committed; (b) the store alone:
finished spans handed to ``SpanStore.add`` as fast as a loop can, timed
until committed.  Both report spans/s on this machine.

    .venv/bin/python bench/observability_overhead.py [--rates 200 50] [--duration 10]
        [--rounds 3] [--spans 100000] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loadgen import (
    BIN,
    Server,
    chat_body,
    emit,
    free_port,
    gateway_requests_total,
    machine_info,
    process_cpu_s,
    require_tools,
    run_fixed_rate,
    run_in_workdir,
    start_server,
    tool_versions,
)

_CHAT = "/v1/chat/completions"
_PROMPT = "What is the difference between a list and a tuple in Python?"
_CHILDREN = [
    *("auth", "guardrails.input", "cache.lookup", "routing", "backend"),
    *("guardrails.output", "postprocess"),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[200.0, 50.0], help="requests/s (200 50)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per window")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured s per window")
    parser.add_argument("--rounds", type=int, default=3, help="windows per configuration")
    parser.add_argument("--spans", type=int, default=100_000, help="spans per ingest test")
    parser.add_argument("--skip-gateway", action="store_true", help="part 2 only")
    parser.add_argument(
        "--breakdown", action="store_true", help="also each of the three switches alone"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    return parser


# -- part 1: the gateway -------------------------------------------------------------


_CONFIGS = {
    "off": {"tracing": False, "json_logs": False, "request_log": False},
    "on": {"tracing": True, "json_logs": True, "request_log": True},
    "tracing only": {"tracing": True, "json_logs": False, "request_log": False},
    "json_logs only": {"tracing": False, "json_logs": True, "request_log": False},
    "request_log only": {"tracing": False, "json_logs": False, "request_log": True},
}


def _workspace(directory: Path, monitoring: dict[str, bool]) -> Path:
    from llmline.gateway.deployments.api import create_deployment
    from llmline.gateway.deployments.spec import DeploymentSpec
    from llmline.workspace import Workspace, init_workspace

    init_workspace(directory, load_sample_data=False)
    with (directory / "llmline.yaml").open("a") as out:
        out.write("\nguard:\n  defaults: false\nmonitoring:\n")
        out.writelines(f"  {key}: {str(value).lower()}\n" for key, value in monitoring.items())
    spec = DeploymentSpec(name="bench", models=["fake:bench"], cache={"exact": False})
    create_deployment(Workspace(directory), spec)
    return directory


def _start(name: str, workspace: Path, log_dir: Path) -> Server:
    port = free_port()
    command = [str(BIN / "llmline"), "-w", str(workspace), "serve", "--port", str(port)]
    command += ["--log-level", "warning", "--no-auth"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return start_server(name, command, port=port, ready_path="/readyz", log_dir=log_dir, env=env)


def _window(server: Server, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    body = chat_body("bench", _PROMPT, 16)
    cpu_before, answered_before = process_cpu_s(server.pid), gateway_requests_total(server.url)
    fixed = run_fixed_rate(
        server.url + _CHAT, body, rate=rate, duration_s=args.duration, warmup_s=args.warmup
    )
    cpu = process_cpu_s(server.pid) - cpu_before
    answered = gateway_requests_total(server.url) - answered_before
    result = fixed.to_dict()
    # Over warm-up + window, per request the gateway itself counted as answered.
    result["cpu_ms_per_request"] = round(cpu * 1000 / max(answered, 1), 3)
    result.pop("commands", None)
    return result


def _gateway(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    names = ["off", "on", *(_BREAKDOWN if args.breakdown else [])]
    servers = {}
    try:
        for i, name in enumerate(names):
            servers[name] = _start(f"gw{i}", _workspace(work / f"ws{i}", _CONFIGS[name]), work)
        by_rate = {f"{rate:g}": _compare(servers, args, rate) for rate in args.rates}
        stored = _observed_counts(servers["on"])
    finally:
        for server in servers.values():
            server.stop()
    return {"by_rate": by_rate, "on_counts": stored}


_BREAKDOWN = ["tracing only", "json_logs only", "request_log only"]


def _compare(servers: dict[str, Server], args: argparse.Namespace, rate: float) -> dict[str, Any]:
    windows: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for round_ in range(args.rounds):
        order = list(servers) if round_ % 2 == 0 else list(servers)[::-1]
        for name in order:
            print(f"round {round_ + 1}: {name} at {rate:g} RPS ...", file=sys.stderr)
            windows[name].append(_window(servers[name], args, rate))
    summary = {name: _median(results) for name, results in windows.items()}
    keys = ("p50_ms", "p90_ms", "p99_ms", "cpu_ms_per_request")
    added = {
        name: {key: round(summary[name][key] - summary["off"][key], 3) for key in keys}
        for name in servers
        if name != "off"
    }
    print(f"{rate:g} RPS: added {added}", file=sys.stderr)
    return {"windows": windows, "median": summary, "added": added}


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("p50_ms", "p90_ms", "p99_ms", "achieved_rps", "cpu_ms_per_request")
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in results), 3) for k in keys}
    out["sustained"] = all(r["sustained"] for r in results)
    out["non_2xx"] = sum(r["non_2xx"] + r["failed"] for r in results)
    return out


def _observed_counts(server: Server) -> dict[str, float]:
    """What the "on" gateway says it wrote (its own /metrics)."""
    import httpx

    text = httpx.get(server.url + "/metrics", timeout=10.0).text
    wanted = {"llmline_requestlog_stored_total", "llmline_requestlog_dropped_total"}
    wanted |= {"llmline_spans_stored_total", "llmline_spans_dropped_total"}
    counts = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            counts[name] = float(value)
    return counts


# -- part 2: span ingest ---------------------------------------------------------------


def _ingest_end_to_end(path: Path, spans: int) -> dict[str, Any]:
    from opentelemetry.trace import SpanKind

    from llmline.monitoring.spanstore import SpanStore
    from llmline.monitoring.tracing import Tracing

    store = SpanStore(path).start()
    tracing = Tracing(store=store, endpoint=None)
    per_request = 1 + len(_CHILDREN)
    started = time.perf_counter()
    for i in range(spans // per_request):
        # As the gateway makes them: StageSpans (see llmline.monitoring.tracing).
        root = tracing.stage("chat bench", None, SpanKind.SERVER, {"llmline.deployment": "b"})
        context = root.get_span_context()
        for name in _CHILDREN:
            child = tracing.stage(name, context, attributes={"gen_ai.request.model": "x"})
            child.end()
        root.set_attributes({"llmline.request_id": f"r{i}", "http.response.status_code": 200})
        root.end()
    made = time.perf_counter() - started
    assert store.flush(120.0), "the store did not finish"
    elapsed = time.perf_counter() - started
    tracing.shutdown()
    total = (spans // per_request) * per_request
    return {
        "spans": total,
        "stored": store.stored,
        "dropped": store.dropped,
        "seconds": round(elapsed, 3),
        "spans_per_s": round(total / elapsed),
        "creating_s": round(made, 3),
    }


def _ingest_store_only(path: Path, spans: int) -> dict[str, Any]:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmline.monitoring.spanstore import SpanStore
    from llmline.monitoring.tracing import Tracing

    memory = InMemorySpanExporter()
    maker = Tracing(store=None, endpoint=None)
    maker.provider.add_span_processor(SimpleSpanProcessor(memory))
    for i in range(min(spans, 10_000)):
        span = maker.tracer.start_span("backend", attributes={"gen_ai.usage.output_tokens": i})
        span.end()
    finished = list(memory.get_finished_spans())
    store = SpanStore(path, max_pending=spans + 1).start()
    started = time.perf_counter()
    for i in range(spans):
        store.add(finished[i % len(finished)])  # same rows again: INSERT OR IGNORE still works
    assert store.flush(120.0), "the store did not finish"
    elapsed = time.perf_counter() - started
    store.close()
    return {"spans": spans, "seconds": round(elapsed, 3), "spans_per_s": round(spans / elapsed)}


def _ingest(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    print(f"span ingest: {args.spans} spans ...", file=sys.stderr)
    return {
        "end_to_end": _ingest_end_to_end(work / "ingest-e2e.db", args.spans),
        "store_only": _ingest_store_only(work / "ingest-store.db", args.spans),
    }


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "observability_overhead",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "tools": tool_versions(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    if not args.skip_gateway:
        report["gateway"] = _gateway(args, work)
    report["span_ingest"] = _ingest(args, work)
    ingest = report["span_ingest"]
    print(
        f"span ingest: {ingest['end_to_end']['spans_per_s']} spans/s end to end, "
        f"{ingest['store_only']['spans_per_s']} spans/s into the store",
        file=sys.stderr,
    )
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.skip_gateway:
        require_tools("h2load")
    report = run_in_workdir(lambda folder: _run(args, folder), args.workdir, "llmline-bench-obs-")
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
