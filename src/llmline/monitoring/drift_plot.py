"""The drift report's PNG: length histograms, topic cluster shares, and the
MMD permutation null against the observed statistic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from llmline.monitoring.drift import DriftReport, PlotData

__all__ = ["write_plot"]

_TITLES = {"prompt_length_psi": "Prompt length", "answer_length_psi": "Answer length"}


def write_plot(report: DriftReport, data: PlotData, target: Path) -> Path:
    """Draw the panels that have data into ``target`` (atomically); its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display: servers and CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = iter(axes.flat)
    for name, (reference, current) in data.lengths.items():
        _lengths(next(panels), _TITLES.get(name, name), reference, current, report)
    if data.clusters is not None:
        _clusters(next(panels), *data.clusters)
    if data.mmd is not None:
        _mmd(next(panels), data.mmd.null, data.mmd.statistic, data.mmd.p_value)
    for unused in panels:
        unused.axis("off")
    who = report.deployment or "all deployments"
    fig.suptitle(f"Drift of {who}, last {report.window}: {report.status}")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, target)
    return target


def _status(report: DriftReport, name: str) -> str:
    found = next((t for t in report.tests if t.name == name), None)
    if found is None or found.statistic is None:
        return ""
    return f" (PSI {found.statistic:.3f}, {found.status})"


def _lengths(ax: Any, title: str, reference: Any, current: Any, report: DriftReport) -> None:
    both = np.concatenate([reference, current])
    top = float(np.quantile(both, 0.99)) if len(both) else 1.0
    bins = np.linspace(0, max(top, 1.0), 40)
    ax.hist(np.clip(reference, 0, top), bins=bins, density=True, alpha=0.5, label="reference")
    ax.hist(np.clip(current, 0, top), bins=bins, density=True, alpha=0.5, label="current")
    name = "prompt_length_psi" if title == "Prompt length" else "answer_length_psi"
    ax.set_title(title + _status(report, name))
    ax.set_xlabel("characters")
    ax.legend()


def _clusters(ax: Any, reference: Any, current: Any) -> None:
    positions = np.arange(len(reference))
    ax.bar(positions - 0.2, reference, width=0.4, label="reference")
    ax.bar(positions + 0.2, current, width=0.4, label="current")
    ax.set_title("Topic cluster shares")
    ax.set_xlabel("cluster")
    ax.set_xticks(positions)
    ax.legend()


def _mmd(ax: Any, null: Any, observed: float, p_value: float) -> None:
    ax.hist(null, bins=30, color="grey", alpha=0.7, label="permutation null")
    ax.axvline(observed, color="red", label=f"observed (p={p_value:.3g})")
    ax.set_title("Prompt embeddings: MMD²")
    ax.legend()
