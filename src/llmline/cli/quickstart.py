"""``llmline quickstart``: the whole lifecycle on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, err_console, print_json
from llmline.cli.pipeline import parse_parameters, print_step

if TYPE_CHECKING:
    from llmline.quickstart import QuickstartResult


def quickstart(
    directory: Annotated[
        Path, typer.Argument(help="Workspace folder (created and initialised if needed).")
    ] = Path("."),
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE for the tune pipeline (repeatable)."),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Init → import the base model → build the FAQ dataset → tune → evaluate
    base vs tuned → register and promote; prints a summary."""
    from llmline.quickstart import quickstart as run_quickstart

    result = run_quickstart(
        directory,
        parse_parameters(param),
        on_step=print_step,
        echo=err_console.file,
        on_stage=lambda text: err_console.print(f"[bold cyan]==>[/] {text}"),
    )
    if as_json:
        print_json(result.to_dict())
        return
    _print_summary(result)


def _print_summary(result: QuickstartResult) -> None:
    run = result.run
    summary = result.to_dict()
    table = Table("metric", "base", "tuned", "Δ", title=f"{result.dataset_ref} (held-out split)")
    for name, row in summary["metrics"].items():
        delta = row["delta"]
        table.add_row(
            name,
            _number(row["base"]),
            _number(row["tuned"]),
            "-" if delta is None else f"{delta:+.4f}",
        )
    console.print(table)
    console.print(f"dataset version : {result.dataset_ref}")
    console.print(f"base model      : {result.base.ref}")
    console.print(f"pipeline run    : {run.run_id} ({_duration(run.duration_s)})")
    console.print(f"tuned model     : {result.model_ref}")
    if result.promoted:
        console.print(f"promoted        : yes, {result.model_ref} is the champion")
    else:
        reasons = "; ".join(str(f.get("message")) for f in result.gate_failures) or "not requested"
        console.print(f"promoted        : no ({reasons})", markup=False)
    if result.fully_cached:
        console.print(
            f"[green]every step came from the pipeline cache[/] "
            f"({run.cache_hits}/{len(run.steps)} steps); nothing was recomputed"
        )
    name = result.model_ref.partition("@")[0]
    console.print(
        f"next: [bold]llmline models show {name}@champion[/]   "
        f"[bold]llmline eval compare {result.base.ref} {result.model_ref}[/]"
    )
    console.print(
        f"serve it: [bold]cd {result.workspace} && llmline serve[/], then call model "
        f'"{name}" at http://127.0.0.1:8000/v1 with the openai SDK (docs/gateway.md)'
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:02.0f}s" if minutes else f"{rest:.1f}s"
