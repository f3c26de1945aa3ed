"""Run a pipeline locally with kfp's own local runner, and record it.

``kfp.local`` (subprocess runner, current interpreter, caching on) executes
the DAG; llmline adds what a platform needs around it: parameters resolved
to exact versions before the run (so the cache keys on content, not on
``latest``), a run record with per-step timing, cache hits and outputs in
the metadata store, the full KFP log in the run's folder, and a step's
failure reported as one line.

Per-step timing and cache hits come from wrapping two functions of
``kfp.local``'s orchestrator for the duration of a run (kfp is pinned to
2.17.0; the tests catch a change of those internals).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from llmline.errors import UserError
from llmline.pipelines import steps
from llmline.pipelines.registry import get_pipeline
from llmline.pipelines.store import RunInfo, RunStore
from llmline.storage.models import utcnow
from llmline.workspace import Workspace

__all__ = ["PipelineFailedError", "StepEvent", "run_pipeline"]

#: Lines a step prints with this prefix reach the console; the rest of the
#: KFP output goes to the run's log file only.
CONSOLE_PREFIX = steps.CONSOLE_PREFIX
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp colours its messages


class PipelineFailedError(UserError, RuntimeError):
    """A step failed; the message names the step and its error."""

    def __init__(self, message: str, run: RunInfo) -> None:
        super().__init__(message)
        self.run = run


@dataclass(frozen=True)
class StepEvent:
    """Told to ``on_step`` as each step starts (``done`` False) and ends."""

    name: str
    done: bool
    status: str = "running"
    cached: bool = False
    duration_s: float = 0.0


StepCallback = Callable[[StepEvent], None]


def run_pipeline(
    workspace: Workspace,
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    cache: bool = True,
    on_step: StepCallback | None = None,
    echo: IO[str] | None = None,
    verbose: bool = False,
) -> RunInfo:
    """Run pipeline ``name`` with ``parameters`` (validated, then resolved).

    ``echo`` receives the lines steps print for people (training progress);
    with ``verbose`` it receives KFP's whole log.  Raises
    :class:`PipelineFailedError` when a step fails; the run stays recorded.
    """
    definition = get_pipeline(name)
    arguments = definition.resolve(workspace, dict(parameters or {}))
    run_id = _new_run_id(name)
    run_dir = workspace.state_dir / "pipelines" / "runs" / run_id
    run_dir.mkdir(parents=True)
    store = RunStore(workspace.metadata)
    root = workspace.state_dir / "pipelines" / "root"
    store.start(run_id, name, arguments, str(root))
    pipeline = definition.build(workspace, arguments, cache=cache)
    _init_local(root, workspace.state_dir / "pipelines" / "cache", cache)
    recorder = _StepRecorder(store, run_id, on_step)
    env = {steps.RUN_ID_ENV: run_id, steps.ERRORS_ENV: str(run_dir / "errors")}
    with (
        open(run_dir / "log.txt", "w", encoding="utf-8") as log,
        contextlib.redirect_stdout(_Tee(log, echo, verbose)),
        _environment(env),
        recorder.installed(),
    ):
        try:
            task = pipeline(**arguments)
        except Exception as exc:
            error = _failure_message(run_dir, recorder, exc)
            run = store.finish(run_id, "failed", outputs={}, error=error)
            raise PipelineFailedError(
                f"pipeline {name} run {run_id} failed: {error}", run
            ) from None
    return store.finish(run_id, "succeeded", outputs=definition.outputs(task, recorder.outputs))


def _new_run_id(name: str) -> str:
    return f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def _init_local(root: Path, cache_root: Path, cache: bool) -> None:
    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
        enable_caching=cache,
        cache_root=str(cache_root),
    )


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the step processes (they inherit ours)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _failure_message(run_dir: Path, recorder: _StepRecorder, exc: Exception) -> str:
    """The failing step's own one-line error, else what KFP said."""
    failed = recorder.failed_step or "a step"
    errors = sorted((run_dir / "errors").glob("*.txt"))
    log = run_dir / "log.txt"
    if errors:
        text = errors[0].read_text("utf-8").strip()
        hint = f" (traceback in {log})" if text.startswith("internal error") else ""
        return f"step {failed}: {text}{hint}"
    detail = _ANSI.sub("", " ".join(str(exc).split())) or type(exc).__name__
    return f"step {failed}: {detail} (see {log})"


class _Tee(io.TextIOBase):
    """Everything to the log; console-prefixed lines (or all) to ``echo``."""

    def __init__(self, log: IO[str], echo: IO[str] | None, verbose: bool) -> None:
        self.log, self.echo, self.verbose = log, echo, verbose
        self.pending = ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self.log.flush()
        if self.echo is None:
            return len(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if self.verbose:
                self.echo.write(line + "\n")
            elif CONSOLE_PREFIX in line:
                self.echo.write("  " + line.split(CONSOLE_PREFIX, 1)[1] + "\n")
        self.echo.flush()
        return len(text)


class _StepRecorder:
    """Times each KFP task and tells a cache hit from an execution."""

    def __init__(self, store: RunStore, run_id: str, on_step: StepCallback | None) -> None:
        self.store, self.run_id, self.on_step = store, run_id, on_step
        self.outputs: dict[str, dict[str, Any]] = {}
        self.failed_step: str | None = None
        self._local = threading.local()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from kfp.local import task_dispatcher
        from kfp.local.orchestrator import task_executor

        execute, dispatch = (
            task_executor.execute_single_task,
            (task_dispatcher.run_single_task_implementation),
        )

        def counted_dispatch(*args: Any, **kwargs: Any) -> Any:
            self._local.executed = True
            return dispatch(*args, **kwargs)

        def timed_execute(task_name: str, *args: Any, **kwargs: Any) -> Any:
            return self._timed(task_name, execute, task_name, *args, **kwargs)

        task_executor.execute_single_task = timed_execute
        task_dispatcher.run_single_task_implementation = counted_dispatch
        try:
            yield
        finally:
            task_executor.execute_single_task = execute
            task_dispatcher.run_single_task_implementation = dispatch

    def _timed(self, name: str, execute: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kfp.local import status as kfp_status

        self._local.executed = False
        started_at, started = utcnow(), time.perf_counter()
        if self.on_step:
            self.on_step(StepEvent(name, done=False))
        outputs, task_status = execute(*args, **kwargs)
        duration = time.perf_counter() - started
        cached = not self._local.executed
        status = "succeeded" if task_status == kfp_status.Status.SUCCESS else "failed"
        if status == "failed":
            self.failed_step = name
        plain = {key: _plain(value) for key, value in (outputs or {}).items()}
        self.outputs[name] = plain
        self.store.add_step(
            self.run_id,
            name,
            status=status,
            cached=cached,
            duration_s=duration,
            outputs=plain,
            started_at=started_at,
        )
        if self.on_step:
            self.on_step(StepEvent(name, True, status, cached, duration))
        return outputs, task_status


def _plain(value: Any) -> Any:
    """A KFP output as JSON: artifacts become their type, URI and metadata."""
    from kfp import dsl

    if isinstance(value, dsl.Artifact):
        return {
            "artifact": type(value).schema_title,
            "uri": value.uri,
            "metadata": dict(value.metadata),
        }
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
