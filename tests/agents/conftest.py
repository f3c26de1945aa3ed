"""Agents and chains run against a real gateway on loopback whose backend
is the ``fake:`` provider with scripted replies (only the model is fake)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.cli.conftest import cli
from tests.gateway.conftest import Running, gateway_ws, spec, start_gateway, stubs

__all__ = ["Running", "call", "cli", "gateway_ws", "scripted", "spec", "start_gateway", "stubs"]


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


def scripted(name: str, *replies: Any) -> str:
    """A ``fake:`` target answering turn ``n`` (its ``n`` assistant messages
    so far) with ``replies[n]``; the last reply repeats."""
    return f"fake:{name}?script={quote(json.dumps(list(replies)), safe='')}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
