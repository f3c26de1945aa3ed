"""``llmline serve``: the OpenAI-compatible gateway."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from llmline.cli._common import err_console, workspace_from
from llmline.errors import UserError

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require API keys (default: on unless HOST is loopback; gateway.auth).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate (chain): serve HTTPS.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")
    ] = None,
) -> None:
    """Serve deployments and champion models at http://HOST:PORT/v1 (OpenAI API)."""
    import uvicorn

    workspace = workspace_from(ctx)
    enabled = _auth_enabled(host, auth, workspace.settings.gateway.auth)
    tls = _tls_options(tls_cert, tls_key)
    _check_free(host, port)
    if workers > 1:
        # Each worker builds its own app from the workspace named here.
        os.environ["LLMLINE_WORKSPACE"] = str(workspace.root)
        os.environ["LLMLINE_GATEWAY__AUTH"] = "on" if enabled else "off"
        target: object = "llmline.gateway.app:app_from_env"
    else:
        from llmline.gateway import build_app

        target = build_app(workspace, auth=enabled)
    scheme = "https" if tls else "http"
    err_console.print(
        f"llmline gateway for {workspace.root} on {scheme}://{host}:{port}/v1 "
        f"({workers} worker{'s' if workers > 1 else ''}); docs at {scheme}://{host}:{port}/docs",
        markup=False,
    )
    try:
        uvicorn.run(
            target,  # type: ignore[arg-type]
            host=host,
            port=port,
            workers=workers,
            factory=workers > 1,
            log_level=log_level,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except SystemExit as exc:
        # uvicorn exits with 3 when it cannot start (the port was taken meanwhile).
        if exc.code == 3:
            raise UserError(f"the gateway could not start on {host}:{port} (see above)") from None
        raise


def _tls_options(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    """uvicorn's TLS options, after checking the files load as a pair."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UserError("give both --tls-cert and --tls-key to serve HTTPS")
    import ssl

    for path in (cert, key):
        if not path.is_file():
            raise UserError(f"TLS file not found: {path}")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise UserError(f"cannot use {cert} with {key} for TLS: {exc}") from None
    return str(cert), str(key)


def _auth_enabled(host: str, flag: bool | None, setting: str) -> bool:
    """API keys are required off loopback; turning them off is for loopback only."""
    from llmline.gateway.auth import is_loopback

    wanted = flag if flag is not None else {"on": True, "off": False}.get(setting)
    if wanted is None:
        return not is_loopback(host)
    if not wanted and not is_loopback(host):
        raise UserError(
            f"--no-auth is only allowed on a loopback address, not {host}: "
            "create keys with llmline keys create"
        )
    if not wanted:
        err_console.print(
            "warning: auth is off: anyone who can reach this port can call every model",
            markup=False,
        )
    return wanted


def _check_free(host: str, port: int) -> None:
    """Fail in one line before loading anything when the port is taken."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
