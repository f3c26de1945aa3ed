"""``llmline feedback``: User feedback on gateway responses."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="User feedback on gateway responses.", no_args_is_help=True)
