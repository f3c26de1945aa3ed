"""``llmline monitor drift`` and ``llmline monitor reeval``: input, output
and model drift (thin over :mod:`llmline.monitoring.drift`)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from llmline.cli._common import JSON_OPTION, console, err_console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.monitoring.drift import DriftReport

__all__ = ["register"]

_STYLE = {"ok": "green", "warn": "yellow", "drift": "bold red", "insufficient data": "dim"}


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``llmline monitor``."""
    app.command("drift")(drift)
    app.command("reeval")(reeval)


def drift(
    ctx: typer.Context,
    deployment: Annotated[
        str | None,
        typer.Argument(help="Deployment to check (default: all traffic).", show_default=False),
    ] = None,
    window: Annotated[
        str, typer.Option("--window", help="How far back: e.g. 24h, 7d, 90m.")
    ] = "24h",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model version whose tuning data is the reference "
            "(default: the one that served most of the window).",
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Reference dataset NAME[@VERSION] instead."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write the PNG here (default: beside the saved report)."),
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", min=10, max=2000, help="Prompts embedded per side.")
    ] = 250,
    as_json: bool = JSON_OPTION,
) -> None:
    """Input, output and model drift of a window of the request log."""
    from llmline.monitoring.drift import DriftOptions, drift_report

    status = err_console.status(f"computing drift over the last {window}…")
    with nullcontext() if as_json else status:
        report = drift_report(
            workspace_from(ctx),
            deployment,
            window=window,
            model=model,
            reference=reference,
            options=DriftOptions(embed_sample=sample),
            plot=plot if plot is not None else True,
        )
    _show(report, as_json)


def reeval(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="Deployment (its live model) or model ref (NAME = champion).")
    ],
    eval_set: Annotated[
        str | None,
        typer.Option(
            "--eval-set", help="Canary dataset NAME[@VERSION] (default: the tuning dataset)."
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split of the eval set.")] = "eval",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N rows only.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 64,
    no_semantic: Annotated[
        bool, typer.Option("--no-semantic", help="Skip the embedding similarity metric.")
    ] = False,
    judge_url: Annotated[
        str | None, typer.Option("--judge-url", help="OpenAI-compatible judge (…/v1).")
    ] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model")] = None,
    judge_api_key: Annotated[
        str | None,
        typer.Option("--judge-api-key", envvar="LLMLINE_JUDGE_API_KEY", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")] = "auto",
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-evaluate a champion on its canary eval set; compare with its stored scores."""
    from llmline.monitoring.drift_reeval import reevaluate_champion

    if (judge_url is None) != (judge_model is None):
        raise UserError("give both --judge-url and --judge-model, or neither")
    judge = None
    if judge_url is not None and judge_model is not None:
        from llmline.evaluation import Judge

        judge = Judge(judge_url, judge_model, api_key=judge_api_key)
    status = err_console.status(f"re-evaluating {target}…")
    try:
        with nullcontext() if as_json else status:
            report = reevaluate_champion(
                workspace_from(ctx),
                target,
                eval_set=eval_set,
                split=split,
                limit=limit,
                max_new_tokens=max_new_tokens,
                semantic=not no_semantic,
                judge=judge,
                device=device,
            )
    finally:
        if judge is not None:
            judge.close()
    _show(report, as_json)


def _show(report: DriftReport, as_json: bool) -> None:
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    who = report.deployment or "all deployments"
    title = f"{who} · {report.model_version or '-'} vs {report.reference or '-'}"
    table = Table("test", "kind", "statistic", "p-value", "threshold", "status", title=title)
    for test in report.tests:
        table.add_row(
            test.name,
            test.kind,
            "-" if test.statistic is None else f"{test.statistic:.4g}",
            "-" if test.p_value is None else f"{test.p_value:.3g}",
            f"{test.threshold:g}",
            Text(test.status, style=_STYLE[test.status]),
        )
    console.print(table)
    for test in report.tests:
        console.print(f"{test.name}: {test.detail}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    summary = Text(f"status: {report.status}", style=_STYLE[report.status])
    console.print(summary, f"({report.n_current} current rows, {report.n_reference} reference)")
    if report.plot:
        console.print(f"plot: {report.plot}", markup=False)
