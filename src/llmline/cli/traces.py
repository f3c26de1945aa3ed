"""``llmline traces``: traces of gateway requests, stored locally."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Traces of gateway requests (stored locally; exported by OTLP when configured).",
    no_args_is_help=True,
)
