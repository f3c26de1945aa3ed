"""The ``llmline`` command: a thin layer over the Python API.

Exit codes: 0 success, 1 user error (one line on stderr, no traceback),
2 internal error (traceback on stderr, please report it).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from llmline.cli import (
    agent,
    chain,
    data,
    deploy,
    evaluate,
    feedback,
    guard,
    keys,
    lineage,
    loadtest,
    models,
    monitor,
    pipeline,
    prompts,
    quickstart,
    rag,
    serve,
    traces,
    warehouse,
)
from llmline.cli._common import console, err_console
from llmline.errors import UserError

__all__ = ["app", "main", "run"]

app = typer.Typer(
    name="llmline",
    help="LLMOps from warehouse rows to a tuned, evaluated, served and monitored LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(warehouse.app, name="warehouse")
app.add_typer(data.app, name="data")
app.add_typer(prompts.app, name="prompts")
app.add_typer(models.app, name="models")
app.add_typer(evaluate.app, name="eval")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(deploy.app, name="deploy")
app.add_typer(keys.app, name="keys")
app.add_typer(rag.app, name="rag")
app.add_typer(guard.app, name="guard")
app.add_typer(monitor.app, name="monitor")
app.add_typer(traces.app, name="traces")
app.add_typer(feedback.app, name="feedback")
app.add_typer(chain.app, name="chain")
app.add_typer(agent.app, name="agent")
app.command("loadtest")(loadtest.loadtest)
app.command("serve")(serve.serve)
app.command("lineage")(lineage.lineage)
app.command("quickstart")(quickstart.quickstart)


def _version(value: bool) -> None:
    if value:
        from llmline import __version__

        console.print(f"llmline {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            envvar="LLMLINE_WORKSPACE",
            help="Workspace folder (default: nearest llmline.yaml upward).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    ctx.obj = {"workspace": workspace}


@app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to make a workspace.")] = Path("."),
    no_sample_data: Annotated[
        bool, typer.Option("--no-sample-data", help="Do not load the shipped CPython FAQ.")
    ] = False,
) -> None:
    """Create llmline.yaml and .llmline/ (safe to re-run)."""
    from llmline.workspace import init_workspace

    workspace = init_workspace(directory, load_sample_data=not no_sample_data)
    with workspace.warehouse(read_only=True) as wh:
        tables = {t.name: t.rows for t in wh.tables()}
    workspace.close()
    console.print(f"Initialised workspace in [bold]{workspace.root}[/]")
    for name, rows in tables.items():
        console.print(f"  warehouse table {name}: {rows} rows")
    console.print("Next: [bold]llmline data build python-faq[/]")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="llmline")
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err_console.print("aborted")
        return 1
    except TyperException as exc:
        # Usage errors (unknown option, missing argument): a user error, so 1.
        show = getattr(exc, "show", None)
        if callable(show) and getattr(exc, "ctx", None) is not None:
            show()
        else:
            err_console.print(f"error: {exc.format_message()}", markup=False)
        return 1
    except UserError as exc:
        err_console.print(f"error: {exc}", markup=False)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception:
        traceback.print_exc()
        err_console.print("internal error: this is a bug in llmline; please report it")
        return 2
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
