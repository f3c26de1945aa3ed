"""Shared pytest fixtures.

PostgreSQL: one throwaway server per test session (``postgres_server``,
started on first use, so a run that selects no PostgreSQL test never starts
one) and a fresh, empty database per test (``postgres_url``).  Tests that use
them carry ``@pytest.mark.postgres``; ``pytest -m "not postgres"`` skips them
where PostgreSQL is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from llmline.testing import PostgresServer
from llmline.testing.redis import RedisServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server private to this test session (fsync off, trust auth)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """``postgresql://...`` URL of a new empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server private to this test session (persistence off)."""
    with RedisServer() as server:
        yield server
