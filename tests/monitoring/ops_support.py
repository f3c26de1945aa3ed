"""Shared by the cost, SLO, alert and load-test tests: request-log rows with
known figures, and a real gateway on loopback."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the gateway's guard models: local files only

from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.monitoring.requestlog import RequestRecord, insert_ignoring_duplicates
from llmline.testing import ServerThread
from llmline.workspace import Workspace

# Every report in these tests is computed "as of" this instant.
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def row(
    ago: timedelta = timedelta(minutes=1), *, now: datetime = NOW, **fields: Any
) -> dict[str, Any]:
    """One request ``ago`` before ``now`` (status 200, deployment ``faq`` unless given)."""
    values: dict[str, Any] = {"status": 200, "deployment": "faq", "latency_ms": 100.0, **fields}
    record = RequestRecord(
        request_id=f"req-{next(_ids)}", endpoint="chat", created_at=now - ago, **values
    )
    return record.row(None)


def seed(workspace: Workspace, rows: list[dict[str, Any]]) -> None:
    insert_ignoring_duplicates(workspace.metadata, rows)


def many(count: int, ago: timedelta = timedelta(minutes=1), **fields: Any) -> list[dict[str, Any]]:
    return [row(ago, **fields) for _ in range(count)]


@contextlib.contextmanager
def serve_gateway(workspace: Workspace, *specs: DeploymentSpec, **options: Any) -> Iterator[Any]:
    """A real gateway for ``workspace`` on loopback (``.url``, ``.app``,
    ``.server``); stopping it flushes the request log."""
    from llmline.gateway import build_app
    from llmline.gateway.deployments.api import create_deployment

    for spec in specs:
        create_deployment(workspace, spec)
    app = build_app(workspace, **options)
    server = ServerThread(app).start()
    try:
        yield SimpleNamespace(url=server.url, app=app, server=server)
    finally:
        server.stop()


def add_config(workspace: Workspace, text: str) -> Workspace:
    """``workspace`` with ``text`` appended to its llmline.yaml, reloaded."""
    with (workspace.root / "llmline.yaml").open("a", encoding="utf-8") as out:
        out.write("\n" + text)
    workspace.close()
    return Workspace(workspace.root)
