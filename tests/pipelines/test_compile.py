"""The compiled ``tune`` pipeline: kfp loads it back, and its structure is
what Kubeflow Pipelines / Vertex AI need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmline.errors import NotFoundError
from llmline.pipelines import compile_pipeline

STEPS = ["build-dataset", "tune", "evaluate-base", "evaluate-tuned", "register"]


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = compile_pipeline("tune", tmp_path_factory.mktemp("compiled") / "tune.yaml")
    return dict(yaml.safe_load(path.read_text()))


def test_compiled_yaml_loads_with_kfp(tmp_path: Path) -> None:
    from kfp import components

    path = compile_pipeline("tune", tmp_path / "tune.yaml")
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "tune"
    assert "train_steps" in loaded.component_spec.inputs


def test_components_and_tasks(spec: dict[str, Any]) -> None:
    assert spec["pipelineInfo"]["name"] == "tune"
    assert sorted(spec["components"]) == sorted(f"comp-{s}" for s in STEPS)
    assert sorted(spec["root"]["dag"]["tasks"]) == sorted(STEPS)
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor["container"]
        assert container["image"].startswith("llmline/")
        # Nothing is pip-installed when a step starts: the image has llmline.
        assert "pip install" not in " ".join(container["command"])


def test_parameters_and_defaults(spec: dict[str, Any]) -> None:
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["train_steps"]["defaultValue"] == 200
    assert params["evaluation_interval"]["defaultValue"] == 20
    assert params["learning_rate"]["parameterType"] == "NUMBER_DOUBLE"
    for name in ("lora_rank", "lora_alpha", "target_modules", "batch_size", "seed"):
        assert name in params
    assert params["workspace"].get("isOptional") is not True  # required


def test_artifacts_pass_between_steps(spec: dict[str, Any]) -> None:
    tasks = spec["root"]["dag"]["tasks"]
    register = tasks["register"]["inputs"]["artifacts"]
    assert register["adapter"]["taskOutputArtifact"] == {
        "outputArtifactKey": "adapter",
        "producerTask": "tune",
    }
    assert register["tuned_metrics"]["taskOutputArtifact"]["producerTask"] == "evaluate-tuned"
    evaluate = tasks["evaluate-tuned"]["inputs"]["artifacts"]
    assert evaluate["adapter"]["taskOutputArtifact"]["producerTask"] == "tune"
    tune_inputs = tasks["tune"]["inputs"]["parameters"]
    assert tune_inputs["dataset_ref"]["taskOutputParameter"] == {
        "outputParameterKey": "ref",
        "producerTask": "build-dataset",
    }
    outputs = spec["components"]["comp-tune"]["outputDefinitions"]["artifacts"]
    assert outputs["adapter"]["artifactType"]["schemaTitle"] == "system.Model"
    assert outputs["training_metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_caching_flags(spec: dict[str, Any]) -> None:
    tasks = spec["root"]["dag"]["tasks"]
    # The build reads the warehouse, which its inputs do not describe.
    assert tasks["build-dataset"]["cachingOptions"].get("enableCache", False) is False
    for name in STEPS[1:]:
        assert tasks[name]["cachingOptions"]["enableCache"] is True


def test_unknown_pipeline_suggests_close_match(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="did you mean tune"):
        compile_pipeline("tuen", tmp_path / "x.yaml")
    assert not (tmp_path / "x.yaml").exists()
