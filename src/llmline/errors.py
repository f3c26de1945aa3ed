"""Exceptions raised by llmline.

Every error a user can cause derives from :class:`UserError`; the CLI prints
its message on one line and exits with code 1.  Each also subclasses the
builtin that describes it best, so ``except ValueError`` still works for
callers of the Python API.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetError",
    "EmptyResultError",
    "ImportFileError",
    "IntegrityError",
    "LLMLineError",
    "MissingColumnsError",
    "NotFoundError",
    "SQLError",
    "TemplateError",
    "UserError",
    "WorkspaceNotFoundError",
]


class LLMLineError(Exception):
    """Base class of every llmline exception."""


class UserError(LLMLineError):
    """Something the user can fix: bad input, a missing object, a bad setting."""


class WorkspaceNotFoundError(UserError, FileNotFoundError):
    """No ``llmline.yaml`` was found from the given directory upward."""


class ConfigError(UserError, ValueError):
    """``llmline.yaml`` or an environment override is invalid."""


class NotFoundError(UserError, LookupError):
    """A named object (dataset, version, template, alias, table) does not exist."""


class SQLError(UserError, ValueError):
    """The warehouse rejected a query; the message carries the engine's own words."""


class MissingColumnsError(SQLError):
    """A query does not return the columns a dataset spec needs."""

    def __init__(self, missing: list[str], available: list[str]) -> None:
        self.missing = missing
        self.available = available
        super().__init__(
            f"query result is missing column(s) {', '.join(missing)} "
            f"(it returns: {', '.join(available) or 'nothing'})"
        )


class DatasetError(UserError, ValueError):
    """A dataset spec or build input is invalid."""


class EmptyResultError(DatasetError):
    """A dataset query returned no rows."""


class TemplateError(UserError, ValueError):
    """A prompt template is malformed or used with the wrong variables."""


class ImportFileError(UserError, ValueError):
    """An import file cannot be read; the message names the file and line."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class IntegrityError(UserError, ValueError):
    """A stored file no longer matches the hash recorded for it."""
