"""The built-in ``tune`` pipeline: build dataset → tune → evaluate tuned and
base → register (and promote when the gates pass).

:func:`tune_pipeline` returns the KFP pipeline; the same definition runs
locally (:mod:`llmline.pipelines.runner`) and compiles to the pipeline-spec
YAML that Kubeflow Pipelines and Vertex AI Pipelines run.
"""

from typing import Any

from kfp import dsl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmline._pydantic import problems
from llmline.errors import ConfigError
from llmline.pipelines import components

__all__ = ["TuneParams", "tune_pipeline"]

DESCRIPTION = (
    "Build a dataset version, LoRA-tune a base model on it, evaluate the tuned and the "
    "base model on the held-out split, register the adapter and promote it when the "
    "promotion gates pass."
)


class TuneParams(BaseModel):
    """Parameters of the ``tune`` pipeline (``-p key=value`` on the CLI)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_display_name: str = Field(
        default="python-faq-lora", description="registry name of the tuned model"
    )
    base_model: str = Field(default="smollm2-135m-instruct", description="base model ref")
    dataset: str = Field(
        default="python-faq", description="NAME (build now) or NAME@VERSION (use as is)"
    )
    train_steps: int = Field(default=200, gt=0)
    evaluation_interval: int = Field(default=20, gt=0)
    learning_rate: float = Field(default=3e-4, gt=0, allow_inf_nan=False)
    lora_rank: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, gt=0)
    target_modules: str = Field(default="q_proj,v_proj", min_length=1)
    batch_size: int = Field(default=4, ge=1)
    max_seq_length: int = Field(default=256, ge=8)
    checkpoint_every: int = Field(default=50, gt=0)
    seed: int = Field(default=42, ge=0)
    eval_split: str = Field(default="eval", min_length=1)
    eval_limit: int = Field(default=0, ge=0, description="rows to score; 0 = all")
    max_new_tokens: int = Field(default=128, ge=1)
    eval_batch_size: int = Field(default=8, ge=1)
    gates: str = Field(default="", description="';'-separated gates; empty = llmline.yaml's")
    promote: bool = True

    @classmethod
    def parse(cls, values: dict[str, Any]) -> "TuneParams":
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(f"pipeline tune: {problems(exc, 'parameters')}") from None


def tune_pipeline(build_cache_key: str | None = None) -> Any:
    """The ``tune`` pipeline as a KFP graph component.

    KFP caches a step on its inputs, but the build step reads the warehouse,
    which its inputs do not describe.  Given ``build_cache_key`` (a hash of
    the build's plan, table fingerprints included) the build step is cached
    under that key; without one (as compiled for a cluster) it always runs,
    and its unchanged output still lets every later step hit the cache.
    """

    @dsl.pipeline(name="tune", description=DESCRIPTION)
    def tune(
        workspace: str,
        model_display_name: str = "python-faq-lora",
        base_model: str = "smollm2-135m-instruct",
        dataset: str = "python-faq",
        train_steps: int = 200,
        evaluation_interval: int = 20,
        learning_rate: float = 3e-4,
        lora_rank: int = 8,
        lora_alpha: int = 16,
        target_modules: str = "q_proj,v_proj",
        batch_size: int = 4,
        max_seq_length: int = 256,
        checkpoint_every: int = 50,
        seed: int = 42,
        eval_split: str = "eval",
        eval_limit: int = 0,
        max_new_tokens: int = 128,
        eval_batch_size: int = 8,
        gates: str = "rougeL>=base",
        promote: bool = True,
    ) -> str:
        build = components.build_dataset(
            workspace=workspace, dataset=dataset, eval_split=eval_split
        )
        if build_cache_key:
            build.set_caching_options(True, cache_key=build_cache_key)
        else:
            build.set_caching_options(False)
        dataset_ref = build.outputs["ref"]
        trained = components.tune(
            workspace=workspace,
            base_model=base_model,
            dataset_ref=dataset_ref,
            train_steps=train_steps,
            evaluation_interval=evaluation_interval,
            learning_rate=learning_rate,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            target_modules=target_modules,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            checkpoint_every=checkpoint_every,
            seed=seed,
        )
        evaluation = {
            "workspace": workspace,
            "base_model": base_model,
            "dataset_ref": dataset_ref,
            "split": eval_split,
            "limit": eval_limit,
            "max_new_tokens": max_new_tokens,
            "batch_size": eval_batch_size,
        }
        base_eval = components.evaluate_base(**evaluation)
        tuned_eval = components.evaluate_tuned(**evaluation, adapter=trained.outputs["adapter"])
        registered = components.register(
            workspace=workspace,
            model_name=model_display_name,
            base_model=base_model,
            dataset_ref=dataset_ref,
            gates=gates,
            promote=promote,
            job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            adapter=trained.outputs["adapter"],
            training_metrics=trained.outputs["training_metrics"],
            tuned_metrics=tuned_eval.outputs["metrics"],
            base_metrics=base_eval.outputs["metrics"],
        )
        model_ref: str = registered.outputs["model_ref"]
        return model_ref

    return tune
