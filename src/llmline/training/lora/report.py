"""What a run tells its caller: progress events, the result, metrics.json, the curve."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmline.training.lora.checkpoint import write_file_atomically

__all__ = ["ProgressEvent", "TrainResult", "plot_curve", "summarize", "write_metrics"]


@dataclass(frozen=True)
class ProgressEvent:
    """Sent after every optimizer step.

    ``eval_loss`` is the latest eval loss (None before the first evaluation);
    ``tokens_per_s`` averages the steps this process has run.
    """

    step: int
    total: int
    loss: float
    eval_loss: float | None
    tokens_per_s: float
    eta_s: float
    learning_rate: float


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run put its outputs, and its headline figures."""

    output_dir: Path
    adapter_dir: Path
    metrics_path: Path
    curve_path: Path
    steps: int
    final_train_loss: float
    final_eval_loss: float
    tokens_per_s: float
    wall_time_s: float
    device: str
    resumed_from_step: int | None


def summarize(history: list[dict[str, Any]], *, wall_time_s: float, device: str) -> dict[str, Any]:
    """Headline figures over the per-step ``history``."""
    evals = [row["eval_loss"] for row in history if row.get("eval_loss") is not None]
    tokens = sum(row["tokens"] for row in history)
    compute_s = sum(row["step_time_s"] for row in history)
    return {
        "steps": len(history),
        "final_train_loss": history[-1]["train_loss"],
        "final_eval_loss": evals[-1] if evals else None,
        "train_tokens": tokens,
        # optimizer steps only: evaluation and checkpoint time are excluded
        "tokens_per_s": tokens / compute_s if compute_s > 0 else 0.0,
        "seconds_per_step": compute_s / len(history),
        "wall_time_s": wall_time_s,
        "device": device,
    }


def write_metrics(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=1)
    write_file_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def plot_curve(path: Path, history: list[dict[str, Any]], *, title: str) -> None:
    """Train and eval loss against the step, as a PNG."""
    # The object API with the Agg canvas: no pyplot global state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([r["step"] for r in history], [r["train_loss"] for r in history], label="train")
    evals = [r for r in history if r.get("eval_loss") is not None]
    axes.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats/token)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    write_file_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))
