"""Gateway overhead: llmline and LiteLLM's proxy in front of the same fast
stub upstream on loopback, side by side in one run.

Targets, each a separate process: the stub itself (``direct``), ``llmline
serve`` (one worker, as shipped, default safety scanners on), LiteLLM's
proxy (``litellm --config``, one worker) and, as a diagnostic, llmline
without its safety scanners (``llmline_no_safety``).  For each:

* latency p50/p90/p99 at fixed request rates (default 50 and 200 RPS),
  measured by **h2load** (nghttp2, Debian ``nghttp2-client``): single-client
  h2load processes paced with ``--rps`` and started ``1/rate`` apart, so
  requests arrive evenly spaced; percentiles come from h2load's per-request
  log (microseconds).  wrk2 is not packaged in Debian and plain wrk has no
  rate control;
* the maximum throughput, measured by **wrk** (closed loop, ``-c``
  keep-alive connections), with its latency percentiles and the server's
  CPU time per request.

Overhead = proxy latency − direct latency at the same rate (p50 and p99).
Every request is a non-streaming chat completion with ``temperature: 0.7``
(never served from llmline's exact cache) and the same body.

LiteLLM is installed in its own virtualenv, ``bench/.venv-litellm``, on
first use (``--litellm-spec``, default pinned: 1.108.5 is the newest release
whose ``proxy`` extra resolves from the package index reachable here; the
1.110 series needs a ``litellm-proxy`` package that is not on it, 1.108.10 to
1.109 a ``litellm-enterprise`` post-release that is not either).  It runs
with no database (no ``DATABASE_URL``: no spend or error logs are written),
``LITELLM_MODE=PRODUCTION`` (no ``.env`` loading), ``LITELLM_LOG=ERROR``,
``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no fetch of the model cost map from
GitHub at start) and a master key (it refuses to start without one); its
usage telemetry is off unless ``LITELLM_TELEMETRY_*`` variables are set, and
those are removed from its environment.

Usage::

    .venv/bin/python bench/gateway_overhead.py            # about 3 minutes
    .venv/bin/python bench/gateway_overhead.py --rates 50 --duration 5 --skip-litellm

Figures are printed as JSON and written to ``--output``; never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _loadgen import (
    API_KEY,
    ROOT,
    Server,
    chat_body,
    emit,
    free_port,
    machine_info,
    prepare_workspace,
    process_cpu_s,
    require_tools,
    run_fixed_rate,
    run_in_workdir,
    run_wrk,
    start_gateway,
    start_server,
    start_stub,
    tool_versions,
)

__all__ = [
    "LITELLM_SPEC",
    "ensure_litellm",
    "litellm_runtime",
    "main",
    "measure_target",
    "summarise",
]

LITELLM_SPEC = "litellm[proxy]==1.108.5"
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
TARGETS = {"p50_overhead_ms": 2.0, "p99_overhead_ms": 10.0, "max_rps_vs_litellm": 2.0}
TARGET_RATE = 200.0
_CHAT = "/v1/chat/completions"


# -- LiteLLM ----------------------------------------------------------------------


class LiteLLMUnavailable(RuntimeError):
    pass


def _installed_litellm(python: Path) -> str | None:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", code], check=False, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def litellm_runtime(venv: Path) -> dict[str, str]:
    """Versions of the server stack LiteLLM runs on (it uses uvloop when installed)."""
    code = (
        "import importlib.metadata as m, json\n"
        "def v(p):\n"
        "    try: return m.version(p)\n"
        "    except m.PackageNotFoundError: return 'not installed'\n"
        "print(json.dumps({p: v(p) for p in ('litellm', 'uvicorn', 'uvloop', 'httptools',"
        " 'h11', 'fastapi', 'httpx', 'openai', 'aiohttp')}))"
    )
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-c", code], check=False, capture_output=True, text=True)
    found: dict[str, str] = json.loads(done.stdout) if done.returncode == 0 else {}
    return found


def ensure_litellm(venv: Path, spec: str) -> str:
    """The LiteLLM version in ``venv``, installing ``spec`` there first when
    it is missing or another version."""
    python = venv / "bin" / "python"
    wanted = spec.split("==", 1)[1] if "==" in spec else None
    if python.exists():
        found = _installed_litellm(python)
        if found and (wanted is None or found == wanted) and (venv / "bin" / "litellm").exists():
            return found
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # Keep the folder out of git without touching the repository's .gitignore.
        (venv / ".gitignore").write_text("*\n")
    print(f"installing {spec} into {venv} ...", file=sys.stderr)
    command = [str(python), "-m", "pip", "install", "--quiet", spec]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [x for x in done.stderr.splitlines() if not x.startswith("WARNING")]
        raise LiteLLMUnavailable(f"`{shlex.join(command)}` failed:\n" + "\n".join(errors[-15:]))
    version = _installed_litellm(python)
    if version is None:
        raise LiteLLMUnavailable(f"{spec} installed but `import litellm` fails in {venv}")
    return version


def _litellm_config(stub_url: str) -> str:
    return f"""\
model_list:
  - model_name: bench
    litellm_params:
      model: openai/stub
      api_base: {stub_url}/v1
      api_key: x
litellm_settings:
  set_verbose: false
  request_timeout: 60
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
"""


def _litellm_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LITELLM_TELEMETRY") and k not in ("DATABASE_URL", "VIRTUAL_ENV")
    }
    env.update(
        LITELLM_MASTER_KEY=API_KEY,
        LITELLM_MODE="PRODUCTION",
        LITELLM_LOG="ERROR",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_DONT_SHOW_FEEDBACK_BOX="true",
    )
    return env


def start_litellm(venv: Path, stub_url: str, log_dir: Path) -> Server:
    config = log_dir / "litellm.yaml"
    config.write_text(_litellm_config(stub_url))
    port = free_port()
    command = [str(venv / "bin" / "litellm"), "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return start_server(
        "litellm",
        command,
        port=port,
        ready_path="/health/liveliness",
        log_dir=log_dir,
        env=_litellm_env(),
    )


# -- measuring ----------------------------------------------------------------------


def measure_target(
    name: str, server: Server, model: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Warm-up, then each fixed rate (h2load), then maximum throughput (wrk)."""
    url = server.url + _CHAT
    body = chat_body(model, "What is a Python decorator?", args.max_tokens)
    # Warm-up: connection pools, lazily imported code paths, caches of the
    # interpreter; not recorded.
    run_wrk(url, body, connections=8, duration_s=args.warmup, threads=1)
    result: dict[str, Any] = {"pid": server.pid, "command": server.command, "fixed_rate": {}}
    for rate in args.rates:
        load = os.getloadavg()[0]
        fixed = run_fixed_rate(
            url, body, rate=rate, duration_s=args.duration, warmup_s=args.rate_warmup
        )
        result["fixed_rate"][f"{rate:g}"] = {**fixed.to_dict(), "loadavg_1m_before": load}
        print(f"  {name} @ {rate:g} RPS: {_brief_fixed(fixed.to_dict())}", file=sys.stderr)
        time.sleep(1)
    cpu_before, load = process_cpu_s(server.pid), os.getloadavg()[0]
    peak = run_wrk(
        url, body, connections=args.connections, duration_s=args.max_duration, threads=args.threads
    )
    cpu = process_cpu_s(server.pid) - cpu_before
    result["max"] = {
        **peak.to_dict(),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_request": round(1000 * cpu / max(1, peak.requests), 3),
        "loadavg_1m_before": load,
    }
    print(f"  {name} max: {peak.rps} RPS, p50 {peak.p50_ms} ms", file=sys.stderr)
    return result


def _brief_fixed(r: dict[str, Any]) -> str:
    return (
        f"achieved {r['achieved_rps']} RPS, p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms"
        f"{'' if r['sustained'] else ' (NOT sustained)'}"
    )


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Latency table, overhead vs direct, max RPS, ratios and the targets."""
    direct = results["direct"]["fixed_rate"]
    latency = {
        name: {
            rate: {k: r[k] for k in ("p50_ms", "p99_ms", "achieved_rps", "sustained")}
            for rate, r in res["fixed_rate"].items()
        }
        for name, res in results.items()
    }
    overhead = {
        name: {
            rate: {
                "p50_ms": round(r["p50_ms"] - direct[rate]["p50_ms"], 3),
                "p99_ms": round(r["p99_ms"] - direct[rate]["p99_ms"], 3),
                "sustained": r["sustained"],
            }
            for rate, r in res["fixed_rate"].items()
        }
        for name, res in results.items()
        if name != "direct"
    }
    max_rps = {name: res["max"]["rps"] for name, res in results.items()}
    cpu = {name: res["max"]["server_cpu_ms_per_request"] for name, res in results.items()}
    summary: dict[str, Any] = {
        "latency_ms": latency,
        "overhead_ms": overhead,
        "max_rps": max_rps,
        "server_cpu_ms_per_request_at_max": cpu,
    }
    if "litellm" in max_rps:
        for name in ("llmline", "llmline_no_safety"):
            if name in max_rps:
                summary[f"max_rps_ratio_{name}_vs_litellm"] = round(
                    max_rps[name] / max_rps["litellm"], 2
                )
    summary["targets"] = _targets(summary, f"{TARGET_RATE:g}" in direct)
    return summary


def _targets(summary: dict[str, Any], measured_at_target_rate: bool) -> dict[str, Any]:
    rate = f"{TARGET_RATE:g}"
    verdict: dict[str, Any] = {}
    ours = summary["overhead_ms"].get("llmline", {}).get(rate)
    if measured_at_target_rate and ours is not None:
        verdict[f"p50_overhead_le_{TARGETS['p50_overhead_ms']:g}ms_at_{rate}rps"] = bool(
            ours["sustained"] and ours["p50_ms"] <= TARGETS["p50_overhead_ms"]
        )
        verdict[f"p99_overhead_le_{TARGETS['p99_overhead_ms']:g}ms_at_{rate}rps"] = bool(
            ours["sustained"] and ours["p99_ms"] <= TARGETS["p99_overhead_ms"]
        )
    ratio = summary.get("max_rps_ratio_llmline_vs_litellm")
    if ratio is not None:
        verdict[f"max_rps_ge_{TARGETS['max_rps_vs_litellm']:g}x_litellm"] = bool(
            ratio >= TARGETS["max_rps_vs_litellm"]
        )
    verdict["note"] = "an overhead target needs the rate sustained (achieved >= 95%, no errors)"
    return verdict


# -- the run --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0])
    parser.add_argument("--duration", type=float, default=10.0, help="s measured per rate")
    parser.add_argument("--rate-warmup", type=float, default=2.0, help="s dropped per rate")
    parser.add_argument("--warmup", type=float, default=3.0, help="s of wrk per target first")
    parser.add_argument("--max-duration", type=float, default=10.0, help="s of the wrk max run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--litellm-spec", default=LITELLM_SPEC)
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-no-safety", action="store_true", help="skip the diagnostic")
    parser.add_argument("--workdir", type=Path, help="logs and workspace (default: temporary)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "gateway_overhead.json"
    )
    return parser


def _start_targets(
    args: argparse.Namespace, work: Path, report: dict[str, Any]
) -> list[tuple[str, Server, str]]:
    """The stub first (everything proxies to it), then the proxies."""
    stub = start_stub(work)
    targets = [("direct", stub, "stub")]
    workspace = prepare_workspace(work / "workspace", stub.url)
    targets.append(("llmline", start_gateway(workspace, work), "bench"))
    if not args.skip_litellm:
        try:
            report["litellm_version"] = ensure_litellm(args.litellm_venv, args.litellm_spec)
            report["litellm_runtime"] = litellm_runtime(args.litellm_venv)
            targets.append(("litellm", start_litellm(args.litellm_venv, stub.url, work), "bench"))
        except (LiteLLMUnavailable, RuntimeError) as exc:
            report["litellm_error"] = str(exc)
            print(f"warning: LiteLLM not measured: {exc}", file=sys.stderr)
    if not args.skip_no_safety:
        targets.append(("llmline_no_safety", start_gateway(workspace, work, safety=False), "bench"))
    return targets


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "gateway_overhead",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "tools": tool_versions(),
        "method": {
            "fixed_rate": "h2load --h1, single-client processes started 1/rate apart",
            "max_rps": f"wrk -t{args.threads} -c{args.connections} -d{args.max_duration:g}s",
            "request": chat_body("bench", "What is a Python decorator?", args.max_tokens),
            "overhead": "proxy percentile minus direct percentile at the same rate",
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    servers: list[Server] = []
    try:
        targets = _start_targets(args, work, report)
        servers = [s for _, s, _ in targets]
        results = {}
        for name, server, model in targets:
            print(f"measuring {name} ...", file=sys.stderr)
            results[name] = measure_target(name, server, model, args)
    finally:
        for server in reversed(servers):
            server.stop()
    report["results"] = results
    report["summary"] = summarise(results)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_tools("wrk", "h2load")
    report = run_in_workdir(lambda folder: _run(args, folder), args.workdir, "llmline-bench-gw-")
    emit(report, args.output)
    return 1 if "litellm_error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
