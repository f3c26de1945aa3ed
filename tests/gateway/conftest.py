"""Fixtures for gateway tests: a workspace, the gateway on a real loopback
port, and the official openai client pointed at it.

Backends are ``fake:NAME`` providers (deterministic text, one word per
token) wherever the test is about the gateway rather than a model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.testing.server import ServerThread
from llmline.testing.upstream import StubBehaviour, stub_upstream_app
from llmline.workspace import Workspace, init_workspace


@pytest.fixture
def gateway_ws(tmp_path: Path) -> Workspace:
    """An empty workspace (no sample data: the gateway needs only the store)."""
    return init_workspace(tmp_path / "ws", load_sample_data=False)


class Running:
    """A gateway serving on loopback, with clients to call it."""

    def __init__(self, server: ServerThread, app: Any) -> None:
        self.server = server
        self.app = app
        self.url = server.url

    @property
    def service(self) -> Any:
        return self.app.state.service

    def openai(self, **kwargs: Any) -> Any:
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key="test-key", max_retries=0, **kwargs)

    def http(self) -> Any:
        import httpx

        return httpx.Client(base_url=self.url, timeout=30)


@pytest.fixture
def start_gateway(gateway_ws: Workspace) -> Iterator[Callable[..., Running]]:
    """``start_gateway(DeploymentSpec(...), ...)`` → a running gateway."""
    servers: list[ServerThread] = []

    def start(*specs: DeploymentSpec, workspace: Workspace | None = None, **kwargs: Any) -> Running:
        from llmline.gateway import build_app
        from llmline.gateway.deployments.api import create_deployment

        ws = workspace or gateway_ws
        for spec in specs:
            create_deployment(ws, spec)
        app = build_app(ws, **kwargs)
        server = ServerThread(app).start()
        servers.append(server)
        return Running(server, app)

    yield start
    for server in servers:
        server.stop()


def spec(name: str, *models: str, **options: Any) -> DeploymentSpec:
    return DeploymentSpec(name=name, models=list(models), **options)


@pytest.fixture
def stubs():
    running: dict[str, tuple[StubBehaviour, ServerThread]] = {}

    def start(name: str, **behaviour: object) -> tuple[StubBehaviour, str]:
        state = StubBehaviour(**behaviour)
        server = ServerThread(stub_upstream_app(state)).start()
        running[name] = (state, server)
        return state, server.url + "/v1"

    yield start
    for _, server in running.values():
        server.stop()
