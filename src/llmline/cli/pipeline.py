"""``llmline pipeline``: run pipelines locally, compile them for a cluster,
and inspect recorded runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, err_console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.pipelines import RunInfo, StepEvent

app = typer.Typer(
    help="Pipelines (Kubeflow Pipelines v2): run locally with caching, compile, inspect runs.",
    no_args_is_help=True,
)


def parse_parameters(items: list[str] | None) -> dict[str, str]:
    """``key=value`` pairs; the pipeline validates and converts the values."""
    parameters: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"invalid parameter {item!r}: expected KEY=VALUE")
        parameters[key.strip()] = value
    return parameters


def print_step(event: StepEvent) -> None:
    """One line per step as it starts and as it ends (on stderr)."""
    if not event.done:
        err_console.print(f"[bold]▶ {event.name}[/]")
        return
    how = "cache hit" if event.cached else f"{event.duration_s:.1f}s"
    mark = "[green]✓[/]" if event.status == "succeeded" else "[red]✗[/]"
    err_console.print(f"{mark} {event.name} ({how})")


@app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name (e.g. tune).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE pipeline parameter (repeatable)."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step even if cached.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show KFP's log.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a pipeline with kfp's local runner and record the run."""
    from llmline.pipelines import run_pipeline

    workspace = workspace_from(ctx)
    result = run_pipeline(
        workspace,
        name,
        parse_parameters(param),
        cache=not no_cache,
        on_step=print_step,
        echo=err_console.file,
        verbose=verbose,
    )
    if as_json:
        print_json(result.to_dict())
        return
    _print_run(result)


@app.command("compile")
def compile_(
    name: Annotated[str, typer.Argument(help="Pipeline name (e.g. tune).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="YAML file to write.")],
) -> None:
    """Write the pipeline as KFP pipeline-spec YAML (Kubeflow Pipelines, Vertex AI)."""
    from llmline.pipelines import compile_pipeline

    if output.is_dir():
        raise UserError(f"{output} is a folder; give a file name such as {output / 'tune.yaml'}")
    path = compile_pipeline(name, output)
    console.print(f"wrote {path}")


@app.command("list")
def list_pipelines(as_json: bool = JSON_OPTION) -> None:
    """The pipelines llmline ships."""
    from llmline.pipelines import PIPELINES

    if as_json:
        print_json([{"name": p.name, "description": p.description} for p in PIPELINES.values()])
        return
    table = Table("name", "description")
    for pipeline in PIPELINES.values():
        table.add_row(pipeline.name, pipeline.description)
    console.print(table)


@app.command("runs")
def runs(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Recorded runs, oldest first."""
    from llmline.pipelines import RunStore

    found = RunStore(workspace_from(ctx).metadata).list(pipeline)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        console.print("no pipeline runs yet; try `llmline pipeline run tune`")
        return
    table = Table("run", "pipeline", "status", "started", "duration", "steps", "cache hits")
    for r in found:
        table.add_row(
            r.run_id,
            r.pipeline,
            r.status,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            _seconds(r.duration_s),
            str(len(r.steps)),
            str(r.cache_hits),
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or 'latest').")],
    as_json: bool = JSON_OPTION,
) -> None:
    """One run: status, per-step timing, cache hits, outputs, artifact locations."""
    from llmline.pipelines import RunStore

    found = RunStore(workspace_from(ctx).metadata).get(run_id)
    if as_json:
        print_json(found.to_dict())
        return
    _print_run(found)


def _print_run(run: RunInfo) -> None:
    console.print(
        f"[bold]{run.run_id}[/]  {run.status}  {_seconds(run.duration_s)}  "
        f"({run.cache_hits}/{len(run.steps)} steps from cache)"
    )
    if run.error:
        console.print(f"error: {run.error}", markup=False)
    table = Table("step", "status", "time", "cached", "outputs")
    for step in run.steps:
        table.add_row(
            step.name,
            step.status,
            _seconds(step.duration_s),
            "yes" if step.cached else "no",
            _outputs_text(step.outputs),
        )
    console.print(table)
    for key, value in run.outputs.items():
        if value and not isinstance(value, dict):
            console.print(f"{key}: {value}", markup=False)


def _outputs_text(outputs: dict[str, Any]) -> str:
    lines = []
    for key, value in outputs.items():
        if isinstance(value, dict) and "uri" in value:
            lines.append(f"{key}: {value['uri']}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}m{seconds:04.1f}s" if minutes else f"{seconds:.1f}s"
