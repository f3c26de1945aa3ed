"""``llmline keys``: API keys of the gateway (sent as ``Authorization: Bearer``).

A key's token is printed once, by ``create`` and ``rotate``; only its salted
hash is stored, so a lost token cannot be shown again, only rotated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, authorize, console, print_json, workspace_from

if TYPE_CHECKING:
    from llmline.guard.keys import ApiKeyInfo, KeyStore
    from llmline.guard.rbac import Permission

__all__ = ["app"]

app = typer.Typer(
    help="API keys: who may call the gateway, which deployments, how much.",
    no_args_is_help=True,
)

_KEY_ID = typer.Argument(help="The key's id (see: llmline keys list).")


def _store(ctx: typer.Context, permission: Permission = "keys.read") -> KeyStore:
    authorize(ctx, permission)
    from llmline.guard.keys import KeyStore

    return KeyStore(workspace_from(ctx).metadata)


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part for part in (p.strip() for p in text.split(",")) if part]


def _limits(info: ApiKeyInfo) -> str:
    parts = []
    if info.rpm is not None:
        parts.append(f"{info.rpm} rpm")
    if info.tpm is not None:
        parts.append(f"{info.tpm} tpm")
    if info.budget_usd is not None:
        parts.append(f"${info.budget_usd:g}/{info.budget_period}")
    if info.max_streams is not None:
        parts.append(f"{info.max_streams} streams")
    return ", ".join(parts) or "none"


def _print_token(token: str, info: ApiKeyInfo, as_json: bool, verb: str) -> None:
    if as_json:
        print_json({"key": token, **info.to_dict()})
        return
    console.print(f"{verb} API key {info.key_id} ({info.name}, role {info.role})", markup=False)
    console.print(token, markup=False)
    console.print("Store this key now: it will not be shown again.", markup=False)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the key is for, e.g. the app.")],
    role: Annotated[str, typer.Option("--role", help="admin, deployer, user or viewer.")],
    deployments: Annotated[
        str | None,
        typer.Option(help="Comma-separated deployments it may call (default: all)."),
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute allowed.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute allowed.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Spending limit in USD.")] = None,
    budget_period: Annotated[
        str, typer.Option(help="The budget's period: day or month (UTC).")
    ] = "month",
    max_streams: Annotated[
        int | None, typer.Option(help="Most streaming responses open at once.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 30d, 12h, 90m (default: never).")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key and print its token once."""
    from llmline.guard.keys import parse_duration

    expires_in = parse_duration(expires) if expires is not None else None
    token, info = _store(ctx, "keys.write").create(
        name,
        role,
        deployments=_split(deployments),
        rpm=rpm,
        tpm=tpm,
        budget_usd=budget_usd,
        budget_period=budget_period,
        max_streams=max_streams,
        expires_in=expires_in,
    )
    _print_token(token, info, as_json, "created")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every key with its role, scope, limits and status (never the secret)."""
    infos = _store(ctx).list()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table("name", "role", "deployments", "limits", "expires", "status")
    # The id is what every other command takes: never wrap it across lines.
    table.add_column("key id", no_wrap=True)
    for i in infos:
        table.add_row(
            i.name,
            i.role,
            ", ".join(i.deployments) if i.deployments is not None else "all",
            _limits(i),
            i.expires_at.isoformat(timespec="seconds") if i.expires_at else "never",
            i.status,
            i.key_id,
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    key_id: Annotated[str, _KEY_ID],
    as_json: bool = JSON_OPTION,
) -> None:
    """One key's settings and status."""
    info = _store(ctx).get(key_id)
    if as_json:
        print_json(info.to_dict())
        return
    scope = ", ".join(info.deployments) if info.deployments is not None else "all"
    lines = [
        f"API key {info.key_id} ({info.name})",
        f"  role         {info.role}",
        f"  deployments  {scope}",
        f"  limits       {_limits(info)}",
        f"  created      {info.created_at.isoformat(timespec='seconds')}",
        "  expires      "
        + (info.expires_at.isoformat(timespec="seconds") if info.expires_at else "never"),
        f"  status       {info.status}",
    ]
    console.print("\n".join(lines), markup=False)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, _KEY_ID],
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key for good (running gateways refuse it within seconds)."""
    info = _store(ctx, "keys.write").revoke(key_id)
    if as_json:
        print_json(info.to_dict())
        return
    console.print(f"revoked API key {info.key_id} ({info.name})", markup=False)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    key_id: Annotated[str, _KEY_ID],
    as_json: bool = JSON_OPTION,
) -> None:
    """A new token for the same key and settings; the old token stops working."""
    token, info = _store(ctx, "keys.write").rotate(key_id)
    _print_token(token, info, as_json, "rotated")
