"""Helpers shared by the command modules: workspace lookup, output, errors."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from llmline.errors import UserError
from llmline.workspace import Workspace, find_workspace

if TYPE_CHECKING:
    from llmline.guard.rbac import Permission

__all__ = [
    "JSON_OPTION",
    "authorize",
    "console",
    "err_console",
    "print_json",
    "workspace_from",
]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def workspace_from(ctx: typer.Context) -> Workspace:
    """The workspace named by ``--workspace``/``$LLMLINE_WORKSPACE``, or found upward."""
    obj: dict[str, Any] = ctx.find_root().obj or {}
    cached: Workspace | None = obj.get("workspace_obj")
    if cached is None:
        root: Path | None = obj.get("workspace")
        cached = find_workspace(root)
        obj["workspace_obj"] = cached
        ctx.find_root().obj = obj
        ctx.call_on_close(cached.close)
    return cached


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """Stable JSON: two-space indent, keys in the order the API gives them."""
    sys.stdout.write(json.dumps(data, indent=2, default=_default, ensure_ascii=False) + "\n")


def authorize(ctx: typer.Context, permission: Permission) -> None:
    """The CLI's side of the role checks the gateway's ``/admin`` makes.

    With ``$LLMLINE_API_KEY`` set, the command runs as that key and its
    role must grant ``permission``; without it, the command runs as the
    workspace's owner (whoever can write its files can do everything).
    """
    import os

    from llmline.gateway.errors import GatewayError
    from llmline.guard.keys import KeyStore
    from llmline.guard.rbac import require

    token = os.environ.get("LLMLINE_API_KEY")
    if not token:
        return
    try:
        key = KeyStore(workspace_from(ctx).metadata).verify(token)
        require(key.role, permission, who=f"API key {key.key_id} ($LLMLINE_API_KEY)")
    except GatewayError as exc:
        raise UserError(str(exc)) from None
