"""Bad pipeline input fails before anything runs: one clear line, exit code 1,
no run recorded, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmline.cli.app import main
from llmline.errors import ConfigError, NotFoundError, UserError
from llmline.pipelines import RunStore, run_pipeline
from llmline.workspace import Workspace


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"train_steps": "-5"}, ConfigError, "train_steps: Input should be greater than 0"),
        ({"train_steps": "many"}, ConfigError, "train_steps: Input should be a valid integer"),
        ({"lora_rank": "0"}, ConfigError, "lora_rank: Input should be greater than or equal to 1"),
        ({"learning_rate": "nan"}, ConfigError, "learning_rate"),
        ({"epochs": "3"}, ConfigError, "epochs: Extra inputs are not permitted"),
        ({"base_model": "tinny"}, NotFoundError, "did you mean tiny?"),
        ({"base_model": "nothing-like-it"}, NotFoundError, "llmline models import"),
        ({"dataset": "python-fqa"}, NotFoundError, "python-faq"),
        ({"dataset": "python-faq@20990101T000000Z"}, NotFoundError, "python-faq"),
        ({"eval_split": "test"}, ConfigError, "has no 'test' split"),
        ({"gates": "rougeL > base"}, UserError, "invalid gate 'rougeL > base'"),
        ({"model_display_name": "Bad Name!"}, UserError, "Bad Name!"),
    ],
)
def test_invalid_parameters_are_refused_before_running(
    pipeline_ws: Workspace,
    fast_params: dict[str, str],
    params: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        run_pipeline(pipeline_ws, "tune", {**fast_params, **params})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert RunStore(pipeline_ws.metadata).list() == []
    assert not (pipeline_ws.state_dir / "pipelines" / "runs").exists()


def test_tuned_model_is_not_a_base(pipeline_ws: Workspace, fast_params: dict[str, str]) -> None:
    from llmline.models import ModelRegistry

    ModelRegistry(pipeline_ws.metadata).register(
        "faq", kind="tuned", uri="/t", format="peft-lora", source="test", base="tiny@1"
    )
    with pytest.raises(ConfigError, match="is a tuned model, not a base model"):
        run_pipeline(pipeline_ws, "tune", {**fast_params, "base_model": "faq"})


def test_empty_eval_split_of_a_pinned_dataset(
    pipeline_ws: Workspace, fast_params: dict[str, str]
) -> None:
    from llmline.data import build
    from llmline.data.builder import resolve_spec

    spec = resolve_spec(pipeline_ws, "python-faq")
    few = spec.model_copy(
        update={
            "filters": spec.filters.model_copy(update={"limit": 3}),
            "split": spec.split.model_copy(update={"fractions": {"train": 0.99, "eval": 0.01}}),
        }
    )
    built = build("python-faq", few, workspace=pipeline_ws)
    assert built.manifest["splits"].get("eval", 0) == 0
    with pytest.raises(UserError, match=r"has an empty 'eval' split \(train=3"):
        run_pipeline(pipeline_ws, "tune", {**fast_params, "dataset": built.ref})


def _cli(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--workspace", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pipeline", "run", "tune", "-p", "train_steps=0"), "greater than 0"),
        (("pipeline", "run", "tune", "-p", "lora_rank"), "expected KEY=VALUE"),
        (("pipeline", "run", "tuen"), "did you mean tune?"),
        (("pipeline", "show", "tune-nope"), "no pipeline run"),
        (("pipeline", "compile", "tune", "-o", "tune.json"), "name it *.yaml"),
        (("pipeline", "compile", "tune", "-o", "."), "is a folder"),
        (("quickstart", "fresh", "-p", "lora_rank=0"), "lora_rank"),
    ],
)
def test_cli_errors_are_one_line(
    pipeline_ws: Workspace,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(pipeline_ws.root)
    extra = ("-p", "base_model=tiny") if args[0] == "quickstart" else ()
    code, _out, err = _cli(capsys, pipeline_ws.root, *args, *extra)
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert RunStore(pipeline_ws.metadata).list() == []
    assert not (pipeline_ws.root / "fresh").exists()  # quickstart validates first


def test_pipeline_list_json(pipeline_ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code, out, _ = _cli(capsys, pipeline_ws.root, "pipeline", "list", "--json")
    assert code == 0
    assert [p["name"] for p in json.loads(out)] == ["tune"]
    code, out, _ = _cli(capsys, pipeline_ws.root, "pipeline", "runs", "--json")
    assert (code, json.loads(out)) == (0, [])
