"""Helpers for testing code that uses llmline (and for llmline's own tests):
throwaway PostgreSQL and Redis servers, ASGI apps on a real loopback port,
and (in submodules) a fake provider and a stub OpenAI-compatible upstream."""

from __future__ import annotations

from llmline.testing.postgres import PostgresNotFoundError, PostgresServer, PostgresServerError
from llmline.testing.redis import RedisNotFoundError, RedisServer
from llmline.testing.server import ServerThread, free_port

__all__ = [
    "PostgresNotFoundError",
    "PostgresServer",
    "PostgresServerError",
    "RedisNotFoundError",
    "RedisServer",
    "ServerThread",
    "free_port",
]
