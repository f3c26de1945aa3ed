"""``llmline monitor``: drift, cost and SLO reports of what the gateway served.

Each report's command lives with its kind (``monitor_drift``, ``monitor_ops``);
this module only groups them.
"""

from __future__ import annotations

import typer

from llmline.cli import monitor_drift, monitor_ops

__all__ = ["app"]

app = typer.Typer(
    help="Drift, cost and SLO reports of what the gateway served.", no_args_is_help=True
)
monitor_drift.register(app)
monitor_ops.register(app)
