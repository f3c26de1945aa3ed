"""``llmline monitor cost | slo | alerts``: what serving costs, whether it
meets its objectives, and which alert rules fire (over the request log)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, authorize, console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.monitoring.alerts import AlertState
    from llmline.monitoring.config import SloSpec
    from llmline.monitoring.cost import CostReport
    from llmline.monitoring.slo import SloStatus

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``llmline monitor``."""
    app.command("cost")(cost)
    app.command("slo")(slo)
    app.command("alerts")(alerts)


# -- cost ------------------------------------------------------------------------------


def _usd(value: float) -> str:
    return f"${value:,.6f}" if value < 1 else f"${value:,.2f}"


def cost(
    ctx: typer.Context,
    by: Annotated[
        str, typer.Option("--by", help="Group by key, deployment, model (version) or day (UTC).")
    ] = "deployment",
    window: Annotated[
        str, typer.Option("--window", "--since", help="How far back, e.g. 30d, 7d, 24h.")
    ] = "30d",
    as_json: bool = JSON_OPTION,
) -> None:
    """Requests, tokens and USD spent per key, deployment, model or day."""
    from llmline.monitoring.cost import GROUPINGS, cost_report

    if by not in GROUPINGS:
        raise UserError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    authorize(ctx, "metrics.read")
    report = cost_report(workspace_from(ctx), by=by, since=window)
    if as_json:
        print_json(report.to_dict())
        return
    _print_cost(report, window)


def _print_cost(report: CostReport, window: str) -> None:
    since = report.since.isoformat(timespec="seconds")
    console.print(f"cost by {report.by} over {window} (since {since})", markup=False)
    if not report.rows:
        console.print("no requests in this window", markup=False)
        return
    table = Table(report.by, "requests", "errors", "prompt tok", "completion tok", "USD")
    for row in [*report.rows, report.total]:
        label = "total" if row is report.total else (row.group or "(none)")
        table.add_row(
            label,
            str(row.requests),
            str(row.errors),
            str(row.prompt_tokens),
            str(row.completion_tokens),
            _usd(row.cost_usd),
            end_section=row is report.rows[-1],
        )
    console.print(table)


# -- slo -------------------------------------------------------------------------------


def _pct(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def slo(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Attainment, error budget left and burn rates of each SLO (monitoring.slos)."""
    from llmline.monitoring.slo import slo_report

    authorize(ctx, "metrics.read")
    workspace = workspace_from(ctx)
    statuses = slo_report(workspace)
    if as_json:
        print_json([s.to_dict() for s in statuses])
        return
    if not statuses:
        console.print(
            "no SLOs configured: add them under monitoring.slos in llmline.yaml "
            "(see docs/monitoring.md)",
            markup=False,
        )
        return
    _print_slos(statuses)


def _print_slos(statuses: list[SloStatus]) -> None:
    # One block per SLO: readable at any terminal width (a 10-column table is not).
    for s in statuses:
        scope = f" of {s.deployment}" if s.deployment else ""
        what = f"{s.kind} under {s.threshold_ms:g} ms" if s.threshold_ms else s.kind
        rates = "  ".join(f"{w} {_rate(v)}" for w, v in s.burn_rates.items())
        lines = [
            f"{s.name}: {what}{scope}, objective {s.objective * 100:g}% over {s.window}: "
            f"{s.status}",
            f"  requests {s.total}, good {_pct(s.attainment)}, "
            f"error budget left {_pct(s.error_budget_remaining, 1)}",
            f"  burn rate  {rates}",
            *(f"  {line}" for line in s.firing),
        ]
        console.print("\n".join(lines), markup=False)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# -- alerts ----------------------------------------------------------------------------


def alerts(
    ctx: typer.Context,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Rules file (default: monitoring.alert_rules)."),
    ] = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="Only validate this rules file.")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Evaluate the alert rules once and print their states (or --check a file)."""
    from llmline.monitoring.alert_rules import load_rules

    if check is not None:
        slos = _slos_if_any(ctx)
        checked = load_rules(check, slos=slos)
        if as_json:
            print_json({"file": str(check), "rules": [r.name for r in checked], "valid": True})
        else:
            console.print(f"{check}: {len(checked)} valid rule(s)", markup=False)
        return
    authorize(ctx, "metrics.read")
    states = _evaluate(ctx, rules)
    if as_json:
        print_json([s.to_dict() for s in states])
        return
    _print_alerts(states)


def _slos_if_any(ctx: typer.Context) -> list[SloSpec] | None:
    """The workspace's SLOs when there is one (``--check`` works outside one too)."""
    from llmline.errors import WorkspaceNotFoundError

    try:
        return list(workspace_from(ctx).settings.monitoring.slos)
    except WorkspaceNotFoundError:
        return None


def _evaluate(ctx: typer.Context, rules: Path | None) -> list[AlertState]:
    from llmline.monitoring.alert_rules import load_rules
    from llmline.monitoring.alerts import AlertEvaluator, load_snapshot, snapshot_path

    workspace = workspace_from(ctx)
    monitoring = workspace.settings.monitoring
    path = rules or (Path(monitoring.alert_rules) if monitoring.alert_rules else None)
    if path is None:
        raise UserError(
            "no alert rules: set monitoring.alert_rules in llmline.yaml or pass --rules FILE"
        )
    if not path.is_absolute() and rules is None:
        path = workspace.root / path
    loaded = load_rules(path, slos=monitoring.slos)
    # Start from the gateway's last evaluation so `for:` durations carry over;
    # the CLI only looks: it notifies nobody and saves nothing.
    previous = load_snapshot(snapshot_path(workspace))
    evaluator = AlertEvaluator(workspace, loaded, previous=previous, notify=False)
    return evaluator.evaluate_once()


def _print_alerts(states: list[AlertState]) -> None:
    if not states:
        console.print("the rules file has no rules", markup=False)
        return
    width = max(len(s.name) for s in states)
    for s in states:
        line = f"{s.state:<8}  {s.name:<{width}}  [{s.severity}] {s.expr}: {s.detail}"
        console.print(line, markup=False)
