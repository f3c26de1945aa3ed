"""The pipelines llmline ships, by name, and what each needs around KFP:
parameter validation and resolution, the graph, its outputs, compiling."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmline.errors import ConfigError, NotFoundError
from llmline.workspace import Workspace

__all__ = ["PIPELINES", "PipelineDefinition", "compile_pipeline", "get_pipeline"]


@dataclass(frozen=True)
class PipelineDefinition:
    name: str
    description: str

    def resolve(self, workspace: Workspace, parameters: dict[str, Any]) -> dict[str, Any]:
        """Validated arguments, with moving references pinned to versions."""
        return _resolve_tune(workspace, parameters)

    def build(self, workspace: Workspace, arguments: dict[str, Any], *, cache: bool) -> Any:
        from llmline.pipelines.tune import tune_pipeline

        key = _build_cache_key(workspace, arguments["dataset"]) if cache else None
        return tune_pipeline(key)

    def outputs(self, task: Any, steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        build = steps.get("build-dataset", {})
        registration = steps.get("register", {}).get("registration", {})
        return {
            "dataset_ref": build.get("ref"),
            "model_ref": getattr(task, "output", None),
            "registration": registration.get("metadata", {}),
        }

    def compile(self, path: Path) -> Path:
        from kfp import compiler

        from llmline.pipelines.tune import tune_pipeline

        if path.suffix not in (".yaml", ".yml"):
            raise ConfigError(f"{path}: the compiled pipeline is YAML; name it *.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.yaml")
        compiler.Compiler().compile(tune_pipeline(None), package_path=str(tmp))
        tmp.replace(path)  # a failed compile never leaves half a file
        return path


PIPELINES = {
    "tune": PipelineDefinition(
        "tune", "dataset → LoRA tuning → evaluation (tuned vs base) → register and promote"
    ),
}


def get_pipeline(name: str) -> PipelineDefinition:
    try:
        return PIPELINES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(PIPELINES), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(PIPELINES))
        raise NotFoundError(f"no pipeline named {name!r} (known: {known}){hint}") from None


def compile_pipeline(name: str, path: Path) -> Path:
    """Write pipeline ``name`` as KFP pipeline-spec YAML to ``path``."""
    return get_pipeline(name).compile(path)


def _resolve_tune(workspace: Workspace, parameters: dict[str, Any]) -> dict[str, Any]:
    from llmline.models import Gate, ModelRegistry
    from llmline.pipelines.tune import TuneParams
    from llmline.training import LoraTuneConfig

    params = TuneParams.parse(parameters)
    LoraTuneConfig.parse(
        {
            "train_steps": params.train_steps,
            "evaluation_interval": params.evaluation_interval,
            "learning_rate": params.learning_rate,
            "lora_rank": params.lora_rank,
            "lora_alpha": params.lora_alpha,
            "target_modules": [m.strip() for m in params.target_modules.split(",")],
            "batch_size": params.batch_size,
            "max_seq_length": params.max_seq_length,
            "checkpoint_every": params.checkpoint_every,
            "seed": params.seed,
        },
        source="pipeline tune",
    )
    _check_dataset(workspace, params.dataset, params.eval_split)
    registry = ModelRegistry(workspace.metadata)
    try:
        base = registry.get(params.base_model)
    except NotFoundError as exc:
        raise NotFoundError(
            f"{exc}; import a base model first: llmline models import smollm2-135m-instruct"
        ) from None
    if base.kind != "base":
        raise ConfigError(f"base_model {base.ref} is a {base.kind} model, not a base model")
    from llmline.models.info import check_model_name

    check_model_name(params.model_display_name)
    gates = params.gates or ";".join(workspace.settings.promotion.gates)
    for text in filter(None, (g.strip() for g in gates.split(";"))):
        Gate.parse(text)
    return {
        **params.model_dump(),
        "workspace": str(workspace.root),
        "base_model": base.ref,
        "gates": gates,
    }


def _check_dataset(workspace: Workspace, dataset: str, eval_split: str) -> None:
    """Fail before anything runs when the dataset (or its spec) cannot give
    the run a train and an eval split."""
    from llmline.data.builder import resolve_spec
    from llmline.data.catalog import get_version
    from llmline.pipelines.steps import require_splits

    name, _, selector = dataset.partition("@")
    if selector and selector != "latest":
        info = get_version(workspace, dataset)
        require_splits(info.ref, info.splits, ("train", eval_split))
        return
    fractions = resolve_spec(workspace, name).split.fractions
    missing = [s for s in ("train", eval_split) if s not in fractions]
    if missing:
        known = ", ".join(fractions)
        raise ConfigError(
            f"dataset {name} has no {missing[0]!r} split (its spec splits into {known}); "
            f"set eval_split or the spec's split fractions"
        )


def _build_cache_key(workspace: Workspace, dataset: str) -> str:
    """The build step's cache key: a version reference is immutable; a build
    is keyed on its plan (template version, SQL, table fingerprints)."""
    from llmline.data.builder import plan_fingerprint

    name, _, selector = dataset.partition("@")
    pinned = bool(selector and selector != "latest")
    plan = "" if pinned else plan_fingerprint(workspace, name)
    text = json.dumps([str(workspace.root), dataset, plan])
    return hashlib.sha256(text.encode()).hexdigest()
