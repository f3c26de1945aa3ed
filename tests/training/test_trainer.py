"""LoRA training: outputs, exact resume, kills, divergence, full disks, bad input."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from llmline.errors import ConfigError, UserError
from llmline.training import (
    CheckpointError,
    DeviceUnavailableError,
    LoraTuneConfig,
    ProgressEvent,
    TrainingDataError,
    TrainingDivergedError,
    TrainingInputMissingError,
    train_lora,
)
from llmline.training.lora import checkpoint as checkpoint_module
from llmline.training.lora import trainer as trainer_module
from llmline.training.lora.config import TRAJECTORY_FIELDS

DatasetFactory = Callable[..., Path]

# Small and fast; dropout on so that resume must restore the RNG to match.
BASE = LoraTuneConfig(
    train_steps=6,
    evaluation_interval=2,
    checkpoint_every=3,
    batch_size=2,
    warmup_steps=2,
    lora_dropout=0.1,
    seed=7,
)


class Stop(Exception):
    """Raised from on_progress to interrupt a run."""


def stop_at(step: int) -> Callable[[ProgressEvent], None]:
    def callback(event: ProgressEvent) -> None:
        if event.step == step:
            raise Stop

    return callback


def adapter_tensors(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "adapter" / "adapter_model.safetensors"))


def assert_same_adapter(left: Path, right: Path) -> None:
    a, b = adapter_tensors(left), adapter_tensors(right)
    assert a.keys() == b.keys() and a
    for name in a:
        assert torch.equal(a[name], b[name]), name


def steps_on_disk(output_dir: Path) -> list[int]:
    return [step for step, _ in checkpoint_module.checkpoint_steps(output_dir / "checkpoints")]


@pytest.fixture(scope="module")
def module_dataset(
    tmp_path_factory: pytest.TempPathFactory,
    rows: Callable[..., Any],
    write_rows: Callable[..., Path],
) -> Path:
    # 8 rows in batches of 2: 6 steps cross an epoch boundary
    return write_rows(tmp_path_factory.mktemp("data"), rows(8), rows(4, seed=1))


Reference = Callable[[LoraTuneConfig], Path]


@pytest.fixture(scope="module")
def reference(
    tiny_model: Path, module_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    """``reference(config)``: the output folder of an uninterrupted run (run once)."""
    runs: dict[str, Path] = {}

    def get(config: LoraTuneConfig) -> Path:
        key = config.model_dump_json(include=set(TRAJECTORY_FIELDS))
        if key not in runs:
            runs[key] = tmp_path_factory.mktemp("reference")
            train_lora(
                config, model_dir=tiny_model, dataset_dir=module_dataset, output_dir=runs[key]
            )
        return runs[key]

    return get


# -- config ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("train_steps", -1),
        ("train_steps", 0),
        ("lora_rank", 0),
        ("learning_rate", 0),
        ("learning_rate", float("nan")),
        ("evaluation_interval", 0),
        ("lora_dropout", 1.0),
        ("target_modules", []),
        ("target_modules", ["q_proj", " "]),
        ("batch_size", 0),
        ("device", "tpu"),
        ("checkpoint_every", 0),
        ("max_grad_norm", 0),
        ("warmup_steps", -1),
    ],
)
def test_invalid_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        LoraTuneConfig(**{field: value})


def test_parse_reports_every_problem_as_one_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tune\.yaml: train_steps: .* 0; lora_rank: ") as info:
        LoraTuneConfig.parse({"train_steps": -1, "lora_rank": 0}, source="tune.yaml")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="epochs: Extra inputs are not permitted"):
        LoraTuneConfig.parse({"epochs": 3})
    assert LoraTuneConfig.parse({"target_modules": ["q_proj"]}).target_modules == ("q_proj",)


def test_config_defaults_are_frozen_and_strict() -> None:
    config = LoraTuneConfig()
    assert (config.train_steps, config.lora_rank, config.target_modules) == (
        200,
        8,
        ("q_proj", "v_proj"),
    )
    with pytest.raises(ValidationError):
        config.train_steps = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        LoraTuneConfig(epochs=3)  # type: ignore[call-arg]


# -- a run and its outputs ---------------------------------------------------------
@pytest.mark.parametrize("packing", [True, False])
def test_a_run_writes_adapter_metrics_curve_and_last_two_checkpoints(
    tiny_model: Path, dataset: Path, tmp_path: Path, packing: bool
) -> None:
    config = BASE.model_copy(update={"train_steps": 4, "checkpoint_every": 1, "packing": packing})
    events: list[ProgressEvent] = []
    out = tmp_path / "run"
    result = train_lora(
        config, model_dir=tiny_model, dataset_dir=dataset, output_dir=out, on_progress=events.append
    )
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 8
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert steps_on_disk(out) == [3, 4]
    assert not list((out / "checkpoints" / ".staging").iterdir())

    metrics = json.loads(result.metrics_path.read_text())
    history = metrics["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4]
    assert [("eval_loss" in row) for row in history] == [False, True, False, True]
    for row in history:
        assert math.isfinite(row["train_loss"]) and row["tokens_per_s"] > 0
        assert row["learning_rate"] > 0
    assert [row["learning_rate"] for row in history][:2] == [1.5e-4, 3e-4]  # warm-up
    summary = metrics["summary"]
    assert summary["steps"] == result.steps == 4
    assert summary["final_eval_loss"] == result.final_eval_loss == history[-1]["eval_loss"]
    assert summary["device"] == result.device == "cpu"
    assert metrics["config"]["packing"] is packing

    assert [e.step for e in events] == [1, 2, 3, 4] and events[-1].total == 4
    assert [e.eval_loss is None for e in events] == [True, False, False, False]
    assert events[-1].eta_s == 0 and all(e.tokens_per_s > 0 for e in events)


# -- exact resume ------------------------------------------------------------------
@pytest.mark.parametrize("packing", [False, True])
def test_resume_gives_the_same_adapter_as_an_uninterrupted_run(
    tiny_model: Path, module_dataset: Path, reference: Reference, tmp_path: Path, packing: bool
) -> None:
    config = BASE.model_copy(update={"packing": packing})
    expected_dir = reference(config)
    out = tmp_path / "run"
    kwargs: dict[str, Any] = {
        "model_dir": tiny_model,
        "dataset_dir": module_dataset,
        "output_dir": out,
    }
    with pytest.raises(Stop):
        train_lora(config, on_progress=stop_at(5), **kwargs)  # checkpoint 3 written, 4-5 lost
    assert steps_on_disk(out) == [3]
    result = train_lora(config, **kwargs)
    assert result.resumed_from_step == 3
    assert_same_adapter(expected_dir, out)
    history = json.loads(result.metrics_path.read_text())["history"]
    expected = json.loads((expected_dir / "metrics.json").read_text())["history"]
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in expected]
    assert [r.get("eval_loss") for r in history] == [r.get("eval_loss") for r in expected]

    again = train_lora(config, **kwargs)  # already complete: nothing left to run
    assert again.resumed_from_step == 6
    assert_same_adapter(expected_dir, out)


def test_resume_false_starts_over(tiny_model: Path, module_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    kwargs: dict[str, Any] = {
        "model_dir": tiny_model,
        "dataset_dir": module_dataset,
        "output_dir": out,
    }
    with pytest.raises(Stop):
        train_lora(BASE, on_progress=stop_at(4), **kwargs)
    with pytest.raises(Stop):
        train_lora(BASE, resume=False, on_progress=stop_at(1), **kwargs)
    assert steps_on_disk(out) == []


def test_resume_refuses_other_settings_or_data(
    tiny_model: Path,
    module_dataset: Path,
    tmp_path: Path,
    rows: Callable[..., Any],
    write_rows: Callable[..., Path],
) -> None:
    out = tmp_path / "run"
    with pytest.raises(Stop):
        train_lora(
            BASE,
            model_dir=tiny_model,
            dataset_dir=module_dataset,
            output_dir=out,
            on_progress=stop_at(4),
        )
    changed = BASE.model_copy(update={"lora_rank": 4, "seed": 1, "evaluation_interval": 5})
    with pytest.raises(ConfigError, match=r"other settings \(lora_rank, seed\)"):
        train_lora(changed, model_dir=tiny_model, dataset_dir=module_dataset, output_dir=out)
    other = write_rows(tmp_path / "other", rows(8, seed=5), rows(4, seed=1))
    with pytest.raises(TrainingDataError, match="other train/eval data"):
        train_lora(BASE, model_dir=tiny_model, dataset_dir=other, output_dir=out)


# -- kills ---------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    from llmline.training import LoraTuneConfig, train_lora
    from llmline.training.lora import checkpoint

    config = LoraTuneConfig.model_validate_json(sys.argv[1])
    model, data, out = (Path(a) for a in sys.argv[2:5])
    real, calls = checkpoint._save_training_state, []

    def save(path, payload):
        # Hang inside the second checkpoint, its adapter written and its
        # training state not, and say so: the parent kills us right there.
        calls.append(path)
        if len(calls) == 2:
            (out / "in-second-checkpoint").touch()
            time.sleep(600)
        real(path, payload)

    checkpoint._save_training_state = save
    train_lora(config, model_dir=model, dataset_dir=data, output_dir=out)
    """
)


def _wait_for(child: subprocess.Popen[bytes], condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert child.poll() is None, "the child ended early"
        assert time.monotonic() < deadline, "timed out waiting for the child"
        time.sleep(0.05)


def test_sigkill_mid_checkpoint_then_resume_matches_an_uninterrupted_run(
    tiny_model: Path, module_dataset: Path, reference: Reference, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = BASE.model_copy(update={"checkpoint_every": 2})  # does not change the result
    args = [config.model_dump_json(), str(tiny_model), str(module_dataset), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], stderr=subprocess.DEVNULL, env=env
    )
    try:
        _wait_for(child, lambda: bool(steps_on_disk(out)))  # the first checkpoint appeared
        _wait_for(child, (out / "in-second-checkpoint").exists)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        child.kill()
    assert not (out / "adapter").exists()
    assert steps_on_disk(out) == [2]  # the half-written step-4 never got its name...
    leftovers = list((out / "checkpoints" / ".staging").iterdir())
    assert [p.name for p in leftovers[0].iterdir()] == ["adapter"]  # ...it is in staging
    result = train_lora(config, model_dir=tiny_model, dataset_dir=module_dataset, output_dir=out)
    assert result.resumed_from_step == 2
    assert_same_adapter(reference(BASE), out)
    assert not list((out / "checkpoints" / ".staging").iterdir())  # swept


# -- divergence and full disks -------------------------------------------------------
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    tiny_model: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = trainer_module._loss_sum, []

    def poisoned(model: Any, batch: Any) -> torch.Tensor:
        calls.append(1)
        loss = real(model, batch)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(trainer_module, "_loss_sum", poisoned)
    config = BASE.model_copy(update={"checkpoint_every": 2, "evaluation_interval": 100})
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="diverged at step 3: the loss is nan") as info:
        train_lora(config, model_dir=tiny_model, dataset_dir=dataset, output_dir=out)
    error = info.value
    assert isinstance(error, UserError) and isinstance(error, ArithmeticError)
    assert error.step == 3 and error.last_checkpoint == str(out / "checkpoints" / "step-2")
    assert "step-2 was kept" in str(error) and "lower learning_rate" in str(error)
    assert steps_on_disk(out) == [2] and not (out / "adapter").exists()
    # the kept checkpoint is good: resuming (without the poison) finishes the run
    monkeypatch.setattr(trainer_module, "_loss_sum", real)
    assert train_lora(config, model_dir=tiny_model, dataset_dir=dataset, output_dir=out).steps == 6


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(
    tiny_model: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = checkpoint_module._save_training_state, []

    def full_disk(path: Path, payload: dict[str, Any]) -> None:
        calls.append(path)
        if len(calls) == 2:
            path.write_bytes(b"partial")  # as a real write would, before failing
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, payload)

    monkeypatch.setattr(checkpoint_module, "_save_training_state", full_disk)
    config = BASE.model_copy(update={"train_steps": 4, "checkpoint_every": 2})
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="No space left on device") as info:
        train_lora(config, model_dir=tiny_model, dataset_dir=dataset, output_dir=out)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert f"{out / 'checkpoints' / 'step-4'}" in str(info.value)
    assert f"last complete checkpoint {out / 'checkpoints' / 'step-2'} is intact" in str(info.value)
    assert steps_on_disk(out) == [2]
    assert not list((out / "checkpoints" / ".staging").iterdir())  # the partial write is gone
    monkeypatch.setattr(checkpoint_module, "_save_training_state", real)
    result = train_lora(config, model_dir=tiny_model, dataset_dir=dataset, output_dir=out)
    assert result.resumed_from_step == 2 and result.steps == 4


# -- bad input -------------------------------------------------------------------------
def test_an_empty_eval_split_is_a_clear_error(
    tiny_model: Path, make_dataset: DatasetFactory, tmp_path: Path
) -> None:
    data = make_dataset(n_eval=0)
    with pytest.raises(TrainingDataError, match=r"eval.jsonl has no rows"):
        train_lora(BASE, model_dir=tiny_model, dataset_dir=data, output_dir=tmp_path / "o")


def test_a_dataset_without_train_jsonl_is_a_clear_error(
    tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    (dataset / "train.jsonl").unlink()
    with pytest.raises(TrainingInputMissingError, match=r"train.jsonl does not exist") as info:
        train_lora(BASE, model_dir=tiny_model, dataset_dir=dataset, output_dir=tmp_path / "o")
    assert isinstance(info.value, FileNotFoundError)


def test_a_missing_model_is_a_clear_error(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingInputMissingError, match="no model at"):
        train_lora(BASE, model_dir=tmp_path / "nope", dataset_dir=dataset, output_dir=tmp_path)


def test_unknown_target_modules_are_a_config_error(
    tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    config = BASE.model_copy(update={"target_modules": ("query_key_value",)})
    with pytest.raises(ConfigError, match="query_key_value"):
        train_lora(config, model_dir=tiny_model, dataset_dir=dataset, output_dir=tmp_path / "o")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda_is_a_clear_error(
    tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    config = BASE.model_copy(update={"device": "cuda"})
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available") as info:
        train_lora(config, model_dir=tiny_model, dataset_dir=dataset, output_dir=tmp_path / "o")
    assert isinstance(info.value, RuntimeError)


# -- the real model ----------------------------------------------------------------------
@pytest.mark.slow
def test_three_real_lora_steps_on_smollm2_from_gguf(dataset: Path, tmp_path: Path) -> None:
    from llmline.testing.models import smollm2_gguf_path

    config = LoraTuneConfig(
        train_steps=3, evaluation_interval=3, checkpoint_every=3, batch_size=4, warmup_steps=1
    )
    result = train_lora(
        config, model_dir=smollm2_gguf_path(), dataset_dir=dataset, output_dir=tmp_path / "o"
    )
    assert result.steps == 3
    assert math.isfinite(result.final_train_loss) and math.isfinite(result.final_eval_loss)
    # a real model knows English: far below the ln(49152) = 10.8 of a uniform guess
    assert result.final_eval_loss < 9
