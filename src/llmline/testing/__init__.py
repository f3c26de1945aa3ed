"""Helpers for testing code that uses llmline (and for llmline's own tests)."""

from __future__ import annotations

from llmline.testing.postgres import PostgresNotFoundError, PostgresServer, PostgresServerError

__all__ = ["PostgresNotFoundError", "PostgresServer", "PostgresServerError"]
