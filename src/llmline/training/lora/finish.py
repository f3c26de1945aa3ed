"""The outputs of a finished run: ``adapter/``, ``metrics.json``, ``training_curve.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import PeftModel

from llmline.training.data import EncodedSplit
from llmline.training.errors import CheckpointError
from llmline.training.lora.checkpoint import publish_dir, save_adapter, staging
from llmline.training.lora.config import LoraTuneConfig
from llmline.training.lora.report import TrainResult, plot_curve, summarize, write_metrics

__all__ = ["finish_run"]


def finish_run(
    model: PeftModel,
    output_dir: Path,
    *,
    config: LoraTuneConfig,
    history: list[dict[str, Any]],
    wall_time_s: float,
    device: str,
    inputs: dict[str, Any],
) -> TrainResult:
    """Publish the adapter, then the metrics and the curve that describe it."""
    adapter_dir = output_dir / "adapter"
    metrics_path = output_dir / "metrics.json"
    curve_path = output_dir / "training_curve.png"
    summary = summarize(history, wall_time_s=wall_time_s, device=device)
    try:
        with staging(output_dir) as folder:
            save_adapter(model, folder)
            publish_dir(folder, adapter_dir)
        write_metrics(metrics_path, _document(model, config, summary, history, inputs))
        plot_curve(curve_path, history, title=f"LoRA r={config.lora_rank} on {inputs['dataset']}")
    except OSError as exc:
        error = CheckpointError(f"could not write the results into {output_dir}: {exc}")
        error.errno = exc.errno
        raise error from exc
    return TrainResult(
        output_dir=output_dir,
        adapter_dir=adapter_dir,
        metrics_path=metrics_path,
        curve_path=curve_path,
        steps=summary["steps"],
        final_train_loss=summary["final_train_loss"],
        final_eval_loss=summary["final_eval_loss"],
        tokens_per_s=summary["tokens_per_s"],
        wall_time_s=wall_time_s,
        device=device,
        resumed_from_step=inputs["resumed_from_step"],
    )


def _document(
    model: PeftModel,
    config: LoraTuneConfig,
    summary: dict[str, Any],
    history: list[dict[str, Any]],
    inputs: dict[str, Any],
) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    trainable, total = model.get_nb_trainable_parameters()
    train: EncodedSplit = inputs["train"]
    evaluation: EncodedSplit = inputs["eval"]
    return {
        "format": 1,
        "summary": summary,
        "config": config.model_dump(mode="json"),
        "model": inputs["model"],
        "dataset": inputs["dataset"],
        "resumed_from_step": inputs["resumed_from_step"],
        "data": {
            "train_examples": len(train.examples),
            "eval_examples": len(evaluation.examples),
            "truncated_examples": train.truncated + evaluation.truncated,
            "dropped_examples": train.dropped + evaluation.dropped,
        },
        "parameters": {"trainable": trainable, "total": total},
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        "history": history,
    }
