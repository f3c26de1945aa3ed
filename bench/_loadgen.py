"""Shared pieces of the gateway benchmarks (``gateway_overhead.py``,
``gateway_soak.py``): servers started as real processes on loopback, load
from tools that are not ours (``wrk``, and ``h2load`` from nghttp2), and a
description of the machine.

Every server runs in its own process (and process group), so the load
generator, the stub upstream and the proxy under test never share a GIL.
Latencies are the load generators' own measurements: wrk's histogram
(microseconds) and h2load's per-request log (microseconds); this module only
merges and sorts them.

Run as a script it serves the gateway without safety scanners (a diagnostic
variant of ``gateway_overhead.py``)::

    .venv/bin/python bench/_loadgen.py serve-no-safety WORKSPACE PORT
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

__all__ = [
    "API_KEY",
    "BIN",
    "ROOT",
    "FixedRateResult",
    "Server",
    "WrkResult",
    "chat_body",
    "emit",
    "free_port",
    "gateway_requests_total",
    "machine_info",
    "percentile",
    "prepare_workspace",
    "process_cpu_s",
    "process_rss",
    "require_tools",
    "run_fixed_rate",
    "run_in_workdir",
    "run_wrk",
    "start_gateway",
    "start_server",
    "start_stub",
    "tool_versions",
]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the project's .venv/bin when run as `make bench` does
# Sent to every target alike: LiteLLM's proxy refuses to start without a
# master key, llmline hashes it into the caller's scope, the stub ignores it.
API_KEY = "sk-bench-0123456789abcdef"
_MARK = "BENCHJSON "
_INSTALL_HINT = (
    "install it with `bash scripts/install-system-deps.sh bench` "
    "(Debian packages wrk and nghttp2-client) or `apt-get install -y wrk nghttp2-client`"
)


# -- processes ------------------------------------------------------------------


def require_tools(*names: str) -> None:
    """Exit with a clear message when a load generator is not installed."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not found on PATH; {_INSTALL_HINT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process started by this benchmark (in its own session, so
    stopping it stops exactly its process group and nothing else)."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    command: list[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    ready_path: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 180.0,
) -> Server:
    """Start ``command`` and wait until ``GET ready_path`` answers 200."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=log_dir,
            start_new_session=True,
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log, list(command))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + ready_path, timeout=2.0).status_code == 200:
                return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def start_stub(log_dir: Path) -> Server:
    """The project's fast OpenAI-compatible stub (``llmline.testing.upstream``)."""
    port = free_port()
    command = [sys.executable, "-m", "llmline.testing.upstream", "--port", str(port)]
    command += ["--model", "stub"]
    return start_server(
        "stub", command, port=port, ready_path="/v1/models", log_dir=log_dir, env=_env()
    )


def prepare_workspace(directory: Path, stub_url: str, deployment: str = "bench") -> Path:
    """A fresh workspace whose deployment ``deployment`` serves ``upstream:stub``."""
    from llmline.gateway.deployments.api import create_deployment
    from llmline.gateway.deployments.spec import DeploymentSpec
    from llmline.workspace import Workspace, init_workspace

    init_workspace(directory, load_sample_data=False)
    config = directory / "llmline.yaml"
    with config.open("a") as out:
        out.write(f'\nupstreams:\n  stub:\n    base_url: "{stub_url}/v1"\n    model: "stub"\n')
    create_deployment(
        Workspace(directory), DeploymentSpec(name=deployment, models=["upstream:stub"])
    )
    return directory


def start_gateway(workspace: Path, log_dir: Path, *, safety: bool = True) -> Server:
    """``llmline serve`` (one worker, as shipped); ``safety=False`` is the
    diagnostic variant without the default safety scanners."""
    port = free_port()
    if safety:
        name = "llmline"
        command = [str(BIN / "llmline"), "-w", str(workspace), "serve", "--port", str(port)]
        command += ["--log-level", "warning"]
    else:
        name = "llmline-no-safety"
        command = [sys.executable, str(Path(__file__).resolve()), "serve-no-safety"]
        command += [str(workspace), str(port)]
    return start_server(name, command, port=port, ready_path="/readyz", log_dir=log_dir, env=_env())


def process_rss(pid: int) -> int:
    """Resident memory of ``pid`` and its children, in bytes."""
    proc = psutil.Process(pid)
    total = int(proc.memory_info().rss)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += int(child.memory_info().rss)
    return total


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children so far."""
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def gateway_requests_total(url: str) -> float:
    """Completed requests as the gateway's own ``/metrics`` counts them."""
    text = httpx.get(url + "/metrics", timeout=10.0).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("llmline_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- request bodies -------------------------------------------------------------


def chat_body(model: str, content: str, max_tokens: int) -> dict[str, Any]:
    # temperature > 0 is never served from llmline's exact cache: every
    # request really goes to the upstream, as it does through LiteLLM.
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
    }


def _headers(api_key: str = API_KEY) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}


# -- wrk (closed loop: maximum throughput, soak) ------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    command: list[str]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_count": self.error_count}


_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"mean":%f,"max":%d}\\n',
    MARK, summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""

# Unique bodies: a question numbered per request.  (wrk only stops after a
# duration: a Lua ``wrk.thread:stop()`` ends the sending, not the run.)
_WRK_VARIED = """
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format(TEMPLATE, counter))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def _wrk_script(body: Mapping[str, Any], *, varied: bool) -> str:
    lines = ['wrk.method = "POST"', f"MARK = {_lua_string(_MARK)}"]
    for key, value in _headers().items():
        lines.append(f"wrk.headers[{_lua_string(key)}] = {_lua_string(value)}")
    if varied:
        # The template's %d is the request number; '%' elsewhere is escaped.
        template = json.dumps(body).replace("%", "%%").replace("{N}", "%d")
        lines.append(f"TEMPLATE = {_lua_string(template)}")
        lines.append(_WRK_VARIED)
    else:
        lines.append(f"wrk.body = {_lua_string(json.dumps(body))}")
    lines.append(_WRK_DONE)
    return "\n".join(lines)


def run_wrk(
    url: str,
    body: Mapping[str, Any],
    *,
    connections: int,
    duration_s: float,
    threads: int = 1,
    varied: bool = False,
) -> WrkResult:
    """POST ``body`` to ``url`` for ``duration_s`` as fast as ``connections``
    keep-alive connections allow.  ``varied``: ``{N}`` in the body's strings
    becomes the request's number (per wrk thread)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_wrk_script(body, varied=varied))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{math.ceil(duration_s)}s"]
    command += ["--timeout", "30s", "-s", script.name, url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    finally:
        os.unlink(script.name)
    lines = [x for x in done.stdout.splitlines() if x.startswith(_MARK)]
    if not lines:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(lines[-1][len(_MARK) :])
    seconds = raw["duration_us"] / 1e6
    errors = {k: int(raw[k]) for k in ("connect", "read", "write", "status", "timeout")}
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1),
        p50_ms=raw["p50"] / 1000,
        p90_ms=raw["p90"] / 1000,
        p99_ms=raw["p99"] / 1000,
        mean_ms=round(raw["mean"] / 1000, 3),
        max_ms=raw["max"] / 1000,
        errors=errors,
        command=[*command[:-3], "-s", "<script.lua>", url],
    )


# -- h2load (fixed request rate) ----------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class FixedRateResult:
    target_rps: float
    achieved_rps: float
    requests: int
    non_2xx: int
    failed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    sustained: bool
    streams: int
    commands: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _h2load_streams(rate: float, per_stream_max: float) -> tuple[int, float]:
    streams = max(1, math.ceil(rate / per_stream_max))
    return streams, rate / streams


def _start_h2load(
    url: str, body_file: Path, rps: float, seconds: float, log: Path, *, api_key: str
) -> tuple[list[str], subprocess.Popen[str]]:
    command = ["h2load", "--h1", "-c1", "-t1", f"--rps={rps:g}", f"-D{math.ceil(seconds)}"]
    for key, value in _headers(api_key).items():
        command += ["-H", f"{key}: {value}"]
    command += ["-d", str(body_file), "--log-file", str(log), url]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return command, proc


def _read_h2load_log(path: Path) -> Iterator[tuple[int, int, int]]:
    """(start µs since the epoch, HTTP status, µs to the end of the response)."""
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            yield int(parts[0]), int(parts[1]), int(parts[2])


def _h2load_failed(output: str) -> int:
    # "requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored, 0 timeout"
    for line in output.splitlines():
        if line.startswith("requests:"):
            words = line.replace(",", "").split()
            return sum(int(words[i - 1]) for i, w in enumerate(words) if w in ("failed", "errored"))
    return 0


def run_fixed_rate(
    url: str,
    body: Mapping[str, Any],
    *,
    rate: float,
    duration_s: float,
    warmup_s: float,
    per_stream_max: float = 25.0,
    api_key: str = API_KEY,
) -> FixedRateResult:
    """``rate`` requests/s for ``warmup_s + duration_s``; statistics over the
    last ``duration_s``.

    h2load paces each client at ``--rps``; all clients of one h2load process
    fire together, so the rate is split over single-client h2load processes
    started ``1/rate`` apart: requests arrive evenly spaced instead of in
    bursts.  A client waits for its answer before the next request (HTTP/1.1,
    no pipelining), so a server slower than ``1/per_stream_max`` per request
    falls behind the rate: ``sustained`` says whether it kept up.
    """
    streams, per_stream = _h2load_streams(rate, per_stream_max)
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_text(json.dumps(body))
        runs = []
        for i in range(streams):
            log = Path(tmp) / f"log{i}.tsv"
            runs.append(
                (
                    *_start_h2load(
                        url, body_file, per_stream, warmup_s + duration_s, log, api_key=api_key
                    ),
                    log,
                )
            )
            time.sleep(1.0 / rate)
        outputs = [proc.communicate()[0] for _, proc, _ in runs]
        entries = [e for _, _, log in runs for e in _read_h2load_log(log)]
    failed = sum(_h2load_failed(o) for o in outputs)
    if not entries:
        raise RuntimeError("h2load logged no request:\n" + "\n".join(outputs))
    start = min(e[0] for e in entries) + warmup_s * 1e6
    window = [e for e in entries if start <= e[0] < start + duration_s * 1e6]
    latencies = sorted(e[2] / 1000 for e in window)
    achieved = len(window) / duration_s
    non_2xx = sum(1 for e in window if not 200 <= e[1] < 300)
    return FixedRateResult(
        target_rps=rate,
        achieved_rps=round(achieved, 1),
        requests=len(window),
        non_2xx=non_2xx,
        failed=failed,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        mean_ms=round(sum(latencies) / len(latencies), 3) if latencies else math.nan,
        max_ms=latencies[-1] if latencies else math.nan,
        sustained=achieved >= 0.95 * rate and non_2xx == 0 and failed == 0,
        streams=streams,
        commands=[c for c, _, _ in runs][:1],
    )


# -- the machine ----------------------------------------------------------------------


def _first_line(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            list(command), check=False, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_revision() -> str:
    rev = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{rev}{'+uncommitted changes' if dirty else ''}"


def tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {
        "wrk": _first_line(["wrk", "-v"]),
        "h2load": _first_line(["h2load", "--version"]),
        "python": sys.version.split()[0],
    }
    for package in ("llmline", "uvicorn", "fastapi", "httpx", "h11", "uvloop", "httptools"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    found["llmline_git"] = _git_revision()
    return found


def machine_info() -> dict[str, Any]:
    return {
        "nproc": _first_line(["nproc"]),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- running a benchmark script ------------------------------------------------------


def run_in_workdir(run: Any, workdir: Path | None, prefix: str) -> dict[str, Any]:
    """``run(folder)`` in ``workdir`` (kept) or a temporary folder (removed)."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return dict(run(workdir.resolve()))
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return dict(run(Path(tmp)))


def emit(report: Mapping[str, Any], output: Path | None) -> None:
    """Print the report as JSON and write it to ``output`` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if output and str(output):
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")


# -- the no-safety variant's server ------------------------------------------------------


def _serve_without_safety(argv: list[str]) -> None:
    """The gateway exactly as ``llmline serve`` builds it, but with no safety
    scanners: how much of its cost the default toxicity scanner is."""
    import uvicorn

    from llmline.gateway import build_app
    from llmline.guard.policy import GuardPolicy
    from llmline.workspace import Workspace

    workspace, port = Path(argv[0]), int(argv[1])
    settings = Workspace(workspace).settings
    settings = settings.model_copy(update={"guard": GuardPolicy(defaults=False)})
    app = build_app(Workspace(workspace, settings))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve-no-safety"] or len(sys.argv) != 4:
        sys.exit("usage: _loadgen.py serve-no-safety WORKSPACE PORT")
    _serve_without_safety(sys.argv[2:])
