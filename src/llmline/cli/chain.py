"""``llmline chain``: Declarative chains of prompt, model, parse and tool steps."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Declarative chains of prompt, model, parse and tool steps.", no_args_is_help=True
)
