"""Plain values of the model registry: references, version and event
records, promotion outcomes, and the callables the registry accepts."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmline.models.errors import ModelError
from llmline.models.gates import GateFailure

if TYPE_CHECKING:
    from llmline.storage.artifacts import ArtifactStore

__all__ = [
    "CHAMPION",
    "GateCheck",
    "ModelEventInfo",
    "ModelKind",
    "ModelRef",
    "ModelVersionInfo",
    "Promotion",
    "Publisher",
    "check_model_name",
    "folder_publisher",
]

CHAMPION = "champion"
ModelKind = Literal["base", "tuned"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")

# Decides a promotion: the failing gates of a candidate (empty: it may pass).
GateCheck = Callable[["ModelVersionInfo"], Sequence[GateFailure]]
# Publishes a staged folder as the given version number and returns its URI,
# or None when that number's folder is taken (the registry tries the next).
Publisher = Callable[[int], str | None]


def check_model_name(name: str) -> str:
    """``name`` if it can name a model (it becomes a folder name and a
    ``name@selector`` reference, so no '/', ':' or '@')."""
    if not _NAME.match(name):
        raise ModelError(
            f"invalid model name {name!r}: letters, digits, '.', '_' and '-' (no '/' or '@')"
        )
    return name


def folder_publisher(artifacts: ArtifactStore, staging: Path, name: str) -> Publisher:
    """A :data:`Publisher` that moves ``staging`` to ``models/<name>/<version>``."""

    def publish(version: int) -> str | None:
        relpath = f"models/{name}/{version}"
        return artifacts.uri(relpath) if artifacts.publish(staging, relpath) else None

    return publish


@dataclass(frozen=True)
class ModelRef:
    name: str
    selector: str | None = None  # None/"latest" = newest, digits = version, else alias

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, _, selector = text.partition("@")
        return cls(check_model_name(name), selector or None)

    def __str__(self) -> str:
        return f"{self.name}@{self.selector}" if self.selector else self.name


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    kind: str
    format: str
    uri: str
    source: str
    base: str | None  # "name@version" of a tuned version's base
    content_hash: str | None
    metadata: dict[str, Any]
    created_at: datetime
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    # True only on the object returned by the call that created the version.
    created: bool = field(default=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "kind": self.kind,
            "format": self.format,
            "uri": self.uri,
            "source": self.source,
            "base": self.base,
            "content_hash": self.content_hash,
            "description": self.description,
            "aliases": self.aliases,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class ModelEventInfo:
    model: str
    action: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str | None
    actor: str
    details: dict[str, Any]
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "action": self.action,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reason": self.reason,
            "actor": self.actor,
            "details": self.details,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Promotion:
    """The outcome of a promotion or rollback of the ``champion`` alias."""

    version: ModelVersionInfo  # the champion now
    previous: int | None  # the champion before (None: there was none)
    action: str  # promote | force-promote | rollback
    changed: bool  # False: it already was the champion, nothing recorded
    failures: list[GateFailure] = field(default_factory=list)  # overridden by force

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.name,
            "champion": self.version.ref,
            "previous": self.previous,
            "action": self.action,
            "changed": self.changed,
            "failures": [f.to_dict() for f in self.failures],
        }
