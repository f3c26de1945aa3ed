"""Versioned prompt templates in the metadata store, with movable aliases.

A version is immutable once created; an alias (``production``, ``staging``)
points at one version and can be moved.  References look like ``name``
(latest), ``name@3`` (version 3) or ``name@production`` (alias).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmline.errors import NotFoundError, TemplateError
from llmline.prompts.template import Template
from llmline.storage.db import MetadataStore
from llmline.storage.models import PromptAlias, PromptTemplate, PromptVersion, utcnow

__all__ = ["PromptInfo", "PromptRef", "PromptRegistry"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class PromptRef:
    name: str
    selector: str | None = None  # None = latest, digits = version, else alias

    @classmethod
    def parse(cls, text: str) -> PromptRef:
        name, _, selector = text.partition("@")
        if not _NAME.match(name):
            raise TemplateError(f"invalid prompt template name {name!r}")
        return cls(name, selector or None)

    def __str__(self) -> str:
        return f"{self.name}@{self.selector}" if self.selector else self.name


@dataclass(frozen=True)
class PromptInfo:
    name: str
    version: int
    text: str
    variables: list[str]
    sha256: str
    description: str
    created_at: datetime
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def template(self) -> Template:
        return Template.parse(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "text": self.text,
            "variables": self.variables,
            "sha256": self.sha256,
            "description": self.description,
            "aliases": self.aliases,
            "created_at": self.created_at.isoformat(),
        }


class PromptRegistry:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def create(self, name: str, text: str, *, description: str = "") -> tuple[PromptInfo, bool]:
        """Add a version (or return the latest if its text is identical).

        Returns the version and whether it was newly created.
        """
        PromptRef.parse(name)
        template = Template.parse(text)
        with self.store.session() as session:
            row = session.scalar(select(PromptTemplate).where(PromptTemplate.name == name))
            if row is None:
                row = PromptTemplate(name=name, created_at=utcnow())
                session.add(row)
                session.flush()
            latest = _latest(session, row.id)
            if latest is not None and latest.text == text:
                return _info(session, latest), False
            version = PromptVersion(
                template_id=row.id,
                version=(latest.version + 1) if latest else 1,
                text=text,
                variables=template.variables,
                content_hash=template.sha256,
                description=description,
                created_at=utcnow(),
            )
            session.add(version)
            session.flush()
            return _info(session, version), True

    def get(self, ref: str | PromptRef) -> PromptInfo:
        ref = PromptRef.parse(ref) if isinstance(ref, str) else ref
        with self.store.read_session() as session:
            return _info(session, _resolve(session, ref))

    def versions(self, name: str) -> list[PromptInfo]:
        with self.store.read_session() as session:
            row = _template(session, name)
            return [_info(session, v) for v in row.versions]

    def list(self) -> list[PromptInfo]:
        """The latest version of every template."""
        with self.store.read_session() as session:
            out = []
            for row in session.scalars(select(PromptTemplate).order_by(PromptTemplate.name)):
                latest = _latest(session, row.id)
                if latest is not None:
                    out.append(_info(session, latest))
            return out

    def set_alias(self, ref: str, alias: str) -> PromptInfo:
        """Point ``alias`` of the template at the version ``ref`` names."""
        if not _ALIAS.match(alias) or alias.isdigit():
            raise TemplateError(f"invalid alias {alias!r}: letters, digits, '-' and '_'")
        with self.store.session() as session:
            version = _resolve(session, PromptRef.parse(ref))
            existing = session.scalar(
                select(PromptAlias).where(
                    PromptAlias.template_id == version.template_id, PromptAlias.alias == alias
                )
            )
            if existing is None:
                session.add(
                    PromptAlias(
                        template_id=version.template_id,
                        alias=alias,
                        version_id=version.id,
                        updated_at=utcnow(),
                    )
                )
            else:
                existing.version_id = version.id
                existing.updated_at = utcnow()
            session.flush()
            return _info(session, version)


def _template(session: Session, name: str) -> PromptTemplate:
    row = session.scalar(select(PromptTemplate).where(PromptTemplate.name == name))
    if row is None:
        raise NotFoundError(f"no prompt template named {name!r}")
    return row


def _latest(session: Session, template_id: int) -> PromptVersion | None:
    top = session.scalar(
        select(func.max(PromptVersion.version)).where(PromptVersion.template_id == template_id)
    )
    if top is None:
        return None
    return session.scalar(
        select(PromptVersion).where(
            PromptVersion.template_id == template_id, PromptVersion.version == top
        )
    )


def _resolve(session: Session, ref: PromptRef) -> PromptVersion:
    row = _template(session, ref.name)
    if ref.selector is None or ref.selector == "latest":
        version = _latest(session, row.id)
    elif ref.selector.isdigit():
        version = session.scalar(
            select(PromptVersion).where(
                PromptVersion.template_id == row.id, PromptVersion.version == int(ref.selector)
            )
        )
    else:
        alias = session.scalar(
            select(PromptAlias).where(
                PromptAlias.template_id == row.id, PromptAlias.alias == ref.selector
            )
        )
        if alias is None:
            raise NotFoundError(f"prompt template {ref.name!r} has no alias {ref.selector!r}")
        version = alias.target
    if version is None:
        raise NotFoundError(f"prompt template {ref.name!r} has no version {ref.selector!r}")
    return version


def _info(session: Session, version: PromptVersion) -> PromptInfo:
    aliases = session.scalars(
        select(PromptAlias.alias)
        .where(PromptAlias.version_id == version.id)
        .order_by(PromptAlias.alias)
    ).all()
    return PromptInfo(
        name=version.template.name,
        version=version.version,
        text=version.text,
        variables=list(version.variables),
        sha256=version.content_hash,
        description=version.description,
        created_at=version.created_at,
        aliases=list(aliases),
    )
