"""Running the ``tune`` pipeline for real with kfp's local runner: recorded
steps, lineage, caching, gates, and resume after the process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmline.evaluation import EvalStore
from llmline.models import ModelRegistry
from llmline.pipelines import RunStore, run_pipeline
from llmline.storage.lineage import ArtifactRef, walk
from llmline.workspace import Workspace

pytestmark = pytest.mark.slow

STEPS = {"build-dataset", "tune", "evaluate-base", "evaluate-tuned", "register"}


def _upstream(workspace: Workspace, ref: ArtifactRef) -> set[str]:
    with workspace.metadata.read_session() as session:
        return {str(edge.src) for edge in walk(session, ref).upstream}


def test_run_registers_promotes_and_caches(
    pipeline_ws: Workspace, fast_params: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_pipeline(pipeline_ws, "tune", fast_params)
    assert first.status == "succeeded"
    assert {s.name for s in first.steps} == STEPS
    assert first.cache_hits == 0
    assert all(s.duration_s > 0 for s in first.steps)

    model_ref = first.outputs["model_ref"]
    dataset_ref = first.outputs["dataset_ref"]
    info = ModelRegistry(pipeline_ws.metadata).get(model_ref)
    assert (info.kind, info.format, info.base) == ("tuned", "peft-lora", "tiny@1")
    assert info.metadata["run"] == first.run_id
    assert info.metadata["dataset"] == dataset_ref
    assert info.metadata["training"]["steps"] == 3
    assert set(info.aliases) == {"champion", "challenger"}  # gate rows>=1 passes
    # Lineage: dataset version → run → model version.
    assert f"run:{first.run_id}" in _upstream(pipeline_ws, ArtifactRef("model", model_ref))
    assert f"dataset:{dataset_ref}" in _upstream(pipeline_ws, ArtifactRef("run", first.run_id))
    # Both evaluations are stored under exact versions.
    store = EvalStore(pipeline_ws.metadata)
    assert store.get(model_ref, dataset_ref, "eval").metrics["rows"] == 2
    assert store.get("tiny@1", dataset_ref, "eval").metrics["rows"] == 2

    again = run_pipeline(pipeline_ws, "tune", fast_params)
    assert again.status == "succeeded"
    assert again.cache_hits == len(STEPS)
    assert again.outputs["model_ref"] == model_ref
    assert len(ModelRegistry(pipeline_ws.metadata).versions(info.name)) == 1

    # One parameter changed: only the steps downstream of it run again; an
    # impossible gate keeps the new version from being promoted.
    changed = run_pipeline(
        pipeline_ws, "tune", {**fast_params, "train_steps": "4", "gates": "rougeL>=base+2"}
    )
    assert {s.name for s in changed.steps if s.cached} == {"build-dataset", "evaluate-base"}
    registration = changed.outputs["registration"]
    assert registration["promoted"] is False
    assert "rougeL" in registration["failures"][0]["message"]
    newer = ModelRegistry(pipeline_ws.metadata).get(changed.outputs["model_ref"])
    assert newer.version == info.version + 1
    assert "champion" not in newer.aliases
    assert [r.run_id for r in RunStore(pipeline_ws.metadata).list()] == [
        first.run_id,
        again.run_id,
        changed.run_id,
    ]
    _check_cli_views(pipeline_ws, capsys, first.run_id, changed.run_id)


def _check_cli_views(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], first: str, last: str
) -> None:
    """``pipeline runs/show --json`` and the text views read the recorded runs."""
    from llmline.cli.app import main

    def cli(*args: str) -> str:
        capsys.readouterr()
        assert main(["--workspace", str(workspace.root), *args]) == 0
        return capsys.readouterr().out

    runs = json.loads(cli("pipeline", "runs", "--json"))
    assert [r["run_id"] for r in runs][::2] == [first, last]
    assert {"status", "steps", "cache_hits", "duration_s", "parameters", "outputs"} <= set(runs[0])
    shown = json.loads(cli("pipeline", "show", "latest", "--json"))
    assert shown["run_id"] == last and shown["cache_hits"] == 2
    tune = next(s for s in shown["steps"] if s["name"] == "tune")
    assert tune["cached"] is False and Path(tune["outputs"]["adapter"]["uri"]).is_dir()
    text = cli("pipeline", "show", first)
    assert first in text and "build-dataset" in text and "0/5 steps from cache" in text
    assert "succeeded" in cli("pipeline", "runs").replace("\n", "")  # table view


def _console(*args: str, cwd: Path) -> subprocess.Popen[str]:
    script = Path(sys.executable).with_name("llmline")
    return subprocess.Popen(
        [str(script), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, steps included
    )


def _wait_for_checkpoint(root: Path, process: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = sorted(root.glob(".llmline/pipelines/work/tune-*/checkpoints/step-*"))
        if found:
            return found[0]
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_killed_run_resumes_from_its_checkpoint(
    pipeline_ws: Workspace, fast_params: dict[str, str]
) -> None:
    params = {**fast_params, "train_steps": "400", "checkpoint_every": "2"}
    args = [arg for key, value in params.items() for arg in ("-p", f"{key}={value}")]
    process = _console("pipeline", "run", "tune", *args, cwd=pipeline_ws.root)
    try:
        _wait_for_checkpoint(pipeline_ws.root, process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed = RunStore(pipeline_ws.metadata).list()
    assert [r.status for r in killed] == ["interrupted"]

    resumed = run_pipeline(pipeline_ws, "tune", params)
    assert resumed.status == "succeeded"
    tune = next(s for s in resumed.steps if s.name == "tune")
    summary = tune.outputs["training_metrics"]["metadata"]["summary"]
    assert 0 < summary["resumed_from_step"] < 400
    assert summary["steps"] == 400
    metrics = json.loads(Path(tune.outputs["training_metrics"]["uri"]).read_text())
    assert metrics["resumed_from_step"] == summary["resumed_from_step"]
