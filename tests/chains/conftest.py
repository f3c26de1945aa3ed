"""Chains run against a real gateway on loopback (``fake:`` backends)."""

from __future__ import annotations

import pytest

from tests.agents.conftest import call, scripted
from tests.cli.conftest import cli
from tests.gateway.conftest import Running, gateway_ws, spec, start_gateway, stubs

__all__ = ["Running", "call", "cli", "gateway_ws", "scripted", "spec", "start_gateway", "stubs"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
