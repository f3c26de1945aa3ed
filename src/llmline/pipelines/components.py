"""KFP v2 components of the ``tune`` pipeline.

Each is a Lightweight Python Component whose body imports
:mod:`llmline.pipelines.steps` in the step's own process, so the image (or,
locally, the interpreter) needs llmline installed and nothing else is
pip-installed at run time (``install_kfp_package=False``: the image ships
kfp, and local runs work offline).  KFP serialises each function's source
into the component spec, which is why the bodies import what they use.

Every output artifact gets a file at its path: kfp.local treats a cached
artifact whose file is missing as a cache miss.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

__all__ = ["IMAGE", "build_dataset", "evaluate_base", "evaluate_tuned", "register", "tune"]

#: The image the components run in on Kubeflow / Vertex AI: llmline with the
#: ``tune`` extra (``deploy/Dockerfile``).  Locally the subprocess runner
#: uses the current interpreter instead.
IMAGE = "llmline/llmline-python3.11:0.1.0"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def build_dataset(
    workspace: str, dataset: str, eval_split: str, manifest: Output[Dataset]
) -> NamedTuple("BuildOutputs", ref=str, content_hash=str):  # type: ignore[misc]
    """Build (or resolve) the dataset version the run trains on."""
    from typing import NamedTuple

    from llmline.pipelines import steps

    info = steps.build_dataset(workspace, dataset, eval_split=eval_split)
    steps.write_json(manifest.path, info)
    manifest.metadata.update(ref=info["ref"], status=info["status"], splits=info["splits"])
    outputs = NamedTuple("BuildOutputs", ref=str, content_hash=str)  # type: ignore[misc]
    return outputs(info["ref"], info["content_hash"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune(
    workspace: str,
    base_model: str,
    dataset_ref: str,
    train_steps: int,
    evaluation_interval: int,
    learning_rate: float,
    lora_rank: int,
    lora_alpha: int,
    target_modules: str,
    batch_size: int,
    max_seq_length: int,
    checkpoint_every: int,
    seed: int,
    adapter: Output[Model],
    training_metrics: Output[Metrics],
    training_curve: Output[Artifact],
) -> None:
    """LoRA supervised tuning of the base model on the dataset's train split."""
    from llmline.pipelines import steps

    config = {
        "train_steps": train_steps,
        "evaluation_interval": evaluation_interval,
        "learning_rate": learning_rate,
        "lora_rank": lora_rank,
        "lora_alpha": lora_alpha,
        "target_modules": [m.strip() for m in target_modules.split(",") if m.strip()],
        "batch_size": batch_size,
        "max_seq_length": max_seq_length,
        "checkpoint_every": checkpoint_every,
        "seed": seed,
    }
    summary = steps.tune(
        workspace,
        base_model=base_model,
        dataset=dataset_ref,
        config=config,
        adapter_dir=adapter.path,
        metrics_path=training_metrics.path,
        curve_path=training_curve.path,
    )
    adapter.metadata.update(base_model=base_model, dataset=dataset_ref, format="peft-lora")
    for key in ("final_train_loss", "final_eval_loss", "tokens_per_s", "wall_time_s"):
        if summary[key] is not None:
            training_metrics.log_metric(key, float(summary[key]))
    training_metrics.metadata["summary"] = summary


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_base(
    workspace: str,
    base_model: str,
    dataset_ref: str,
    split: str,
    limit: int,
    max_new_tokens: int,
    batch_size: int,
    metrics: Output[Metrics],
) -> None:
    """Score the base model on the held-out split (the bar the tuned one must clear)."""
    from llmline.pipelines import steps

    scores = steps.evaluate(
        workspace,
        base_model=base_model,
        dataset=dataset_ref,
        split=split,
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        result_path=metrics.path,
    )
    for name, value in scores.items():
        metrics.log_metric(name, value)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_tuned(
    workspace: str,
    base_model: str,
    dataset_ref: str,
    split: str,
    limit: int,
    max_new_tokens: int,
    batch_size: int,
    adapter: Input[Model],
    metrics: Output[Metrics],
) -> None:
    """Score the base model with the tuned adapter on the same split."""
    from llmline.pipelines import steps

    scores = steps.evaluate(
        workspace,
        base_model=base_model,
        dataset=dataset_ref,
        split=split,
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        result_path=metrics.path,
        adapter_dir=adapter.path,
    )
    for name, value in scores.items():
        metrics.log_metric(name, value)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    workspace: str,
    model_name: str,
    base_model: str,
    dataset_ref: str,
    gates: str,
    promote: bool,
    job_name: str,
    adapter: Input[Model],
    training_metrics: Input[Metrics],
    tuned_metrics: Input[Metrics],
    base_metrics: Input[Metrics],
    registration: Output[Artifact],
) -> NamedTuple("RegisterOutputs", model_ref=str, promoted=bool):  # type: ignore[misc]
    """Register the adapter with its lineage; promote it if the gates pass.

    ``base_metrics`` is an input so that this step runs after the base
    evaluation has been stored, which the relative gates read.
    """
    from typing import NamedTuple

    from llmline.pipelines import steps

    outcome = steps.register(
        workspace,
        model_name=model_name,
        base_model=base_model,
        dataset=dataset_ref,
        adapter_dir=adapter.path,
        training=training_metrics.metadata.get("summary") or {},
        tuned_result_path=tuned_metrics.path,
        gates=[g.strip() for g in gates.split(";") if g.strip()],
        promote=promote,
        run=steps.run_id(job_name),
    )
    steps.write_json(registration.path, outcome)
    registration.metadata.update(outcome)
    outputs = NamedTuple("RegisterOutputs", model_ref=str, promoted=bool)  # type: ignore[misc]
    return outputs(outcome["model_ref"], bool(outcome["promoted"]))
