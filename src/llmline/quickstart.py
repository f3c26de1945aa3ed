"""The whole lifecycle on embedded defaults, in one call.

Init the workspace if needed → import the embedded base model → run the
``tune`` pipeline (which builds the dataset from the shipped FAQ, tunes,
evaluates tuned and base, registers and promotes) → compare base and tuned.
A second call finds every step in the pipeline cache and returns in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from llmline.settings import CONFIG_FILE
from llmline.workspace import Workspace, init_workspace

if TYPE_CHECKING:
    from llmline.evaluation import Comparison
    from llmline.models import ModelVersionInfo
    from llmline.pipelines import RunInfo
    from llmline.pipelines.runner import StepCallback

__all__ = ["DEFAULT_BASE_MODEL", "QuickstartResult", "quickstart"]

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
#: Metrics the summary shows, best known first.
#: The quickstart's training budget, under ten minutes on 2 CPU cores: the
#: FAQ answers run to ~250 tokens, so a step of 4 costs ~5 s there (the
#: ``tune`` pipeline's own default is 200 steps, for a real run).
QUICKSTART_PARAMETERS: dict[str, Any] = {"train_steps": 60}
SUMMARY_METRICS = ("rougeL", "rouge1", "bleu", "chrf", "semantic_similarity", "exact_match")


@dataclass(frozen=True)
class QuickstartResult:
    workspace: Path
    base: ModelVersionInfo
    run: RunInfo
    model_ref: str
    promoted: bool
    comparison: Comparison
    gate_failures: list[dict[str, Any]]

    @property
    def dataset_ref(self) -> str:
        return str(self.run.outputs.get("dataset_ref") or "")

    @property
    def fully_cached(self) -> bool:
        return bool(self.run.steps) and self.run.cache_hits == len(self.run.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "base_model": self.base.ref,
            "dataset_ref": self.dataset_ref,
            "run_id": self.run.run_id,
            "run_duration_s": self.run.duration_s,
            "cache_hits": self.run.cache_hits,
            "steps": len(self.run.steps),
            "model_ref": self.model_ref,
            "promoted": self.promoted,
            "gate_failures": self.gate_failures,
            "metrics": {
                m.name: {"base": m.a, "tuned": m.b, "delta": m.delta}
                for m in self.comparison.metrics
                if m.name in SUMMARY_METRICS
            },
        }


def quickstart(
    directory: Path | str = ".",
    parameters: Mapping[str, Any] | None = None,
    *,
    on_step: StepCallback | None = None,
    echo: IO[str] | None = None,
    on_stage: Any = None,
) -> QuickstartResult:
    """Run the lifecycle in ``directory`` (made a workspace if it is not one).

    ``parameters`` override the ``tune`` pipeline's (e.g. ``train_steps``);
    ``on_stage`` is told a short text before each stage.
    """
    from llmline.evaluation import EvalStore
    from llmline.models import ModelRegistry, import_model
    from llmline.pipelines import run_pipeline
    from llmline.pipelines.tune import TuneParams

    # Typos and out-of-range values fail now, not after a minute of importing.
    TuneParams.parse(dict(parameters or {}))
    tell = on_stage or (lambda _text: None)
    root = Path(directory)
    if (root / CONFIG_FILE).is_file():
        workspace = Workspace(root)
    else:
        tell(f"initialising a workspace in {root}")
        workspace = init_workspace(root)
    with workspace:
        params = {**QUICKSTART_PARAMETERS, **(parameters or {})}
        if "base_model" in params:
            base = ModelRegistry(workspace.metadata).get(str(params["base_model"]))
        else:
            tell(f"importing the base model {DEFAULT_BASE_MODEL} (once; later runs reuse it)")
            base = import_model(workspace, DEFAULT_BASE_MODEL)
            params["base_model"] = base.ref
        tell("running the tune pipeline")
        run = run_pipeline(workspace, "tune", params, on_step=on_step, echo=echo)
        registration = run.outputs.get("registration") or {}
        model_ref = str(run.outputs.get("model_ref") or registration.get("model_ref"))
        comparison = EvalStore(workspace.metadata).compare(
            str(run.parameters["base_model"]),
            model_ref,
            dataset_ref=str(run.outputs.get("dataset_ref")),
            split=str(run.parameters["eval_split"]),
        )
        return QuickstartResult(
            workspace=workspace.root,
            base=base,
            run=run,
            model_ref=model_ref,
            promoted=bool(registration.get("promoted")),
            comparison=comparison,
            gate_failures=list(registration.get("failures") or []),
        )
