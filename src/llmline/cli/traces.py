"""``llmline traces``: traces of gateway requests, stored locally."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from llmline.cli._common import JSON_OPTION, console, print_json, workspace_from

if TYPE_CHECKING:
    from llmline.monitoring.tracing import TraceSpan

__all__ = ["app"]

app = typer.Typer(
    help="Traces of gateway requests (stored locally; exported by OTLP when configured).",
    no_args_is_help=True,
)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most N traces.")] = 20,
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Only this deployment.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only the last 30m, 24h, 7d, ...")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Recent request traces, newest first."""
    from llmline.guard.keys import parse_duration
    from llmline.monitoring.tracing import list_traces

    start = datetime.now(UTC) - parse_duration(since) if since else None
    found = list_traces(workspace_from(ctx), limit=limit, deployment=deployment, since=start)
    if as_json:
        print_json([t.to_dict() for t in found])
        return
    if not found:
        console.print("no traces yet: they are recorded by `llmline serve` (monitoring.tracing)")
        return
    table = Table(box=box.SIMPLE, pad_edge=False, collapse_padding=True)
    table.add_column("trace id", no_wrap=True, min_width=32)  # whole: it is copied from here
    for column in ("name", "code", "ms", "spans", "started (UTC)"):
        table.add_column(column, no_wrap=True)
    for trace in found:
        status = str(trace.http_status or trace.status)
        table.add_row(
            trace.trace_id,
            trace.name,
            Text(status, style="red" if trace.status == "error" else ""),
            f"{trace.duration_ms:.1f}",
            str(trace.span_count),
            trace.started_at.strftime("%m-%d %H:%M:%S"),
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    trace_id: Annotated[str, typer.Argument(help="Trace id (or a unique prefix of 8+ digits).")],
    as_json: bool = JSON_OPTION,
) -> None:
    """One trace as a tree of spans, with durations and attributes."""
    from llmline.monitoring.tracing import get_trace

    trace = get_trace(workspace_from(ctx), trace_id)
    if as_json:
        print_json(trace.to_dict())
        return
    started = trace.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    tree = Tree(f"trace {trace.trace_id}  ({trace.span_count} spans, {started})")
    for root in trace.spans:
        _add(tree, root)
    console.print(tree)


def _add(parent: Tree, span: TraceSpan) -> None:
    label = Text()
    label.append(span.name, style="bold red" if span.status == "error" else "bold")
    label.append(f"  {span.duration_ms:.3f} ms")
    if span.status == "error":
        label.append(f"  error: {span.status_message or ''}", style="red")
    for key, value in span.attributes.items():
        label.append(f"\n{key} = {_value(value)}", style="dim")
    for event in span.events:
        label.append(f"\n• {event['name']} at {event['at_ms']:.3f} ms", style="cyan")
    node = parent.add(label)
    for child in span.children:
        _add(node, child)


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
