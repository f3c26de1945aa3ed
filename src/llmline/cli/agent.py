"""``llmline agent``: Tool-calling agents against any deployment."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="Tool-calling agents against any deployment.", no_args_is_help=True)
