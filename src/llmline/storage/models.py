"""Metadata store tables (SQLAlchemy 2 declarative models).

The schema is owned by the Alembic migrations in ``migrations/versions``;
these models must match them (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Dataset",
    "DatasetVersion",
    "LineageEdge",
    "PromptAlias",
    "PromptTemplate",
    "PromptVersion",
    "UTCDateTime",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset",
        order_by="DatasetVersion.created_at",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_dataset_version"),
        UniqueConstraint("dataset_id", "content_hash", name="uq_dataset_content"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dataset: Mapped[Dataset] = relationship(back_populates="versions")


class PromptTemplate(Base):
    __tablename__ = "prompt_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    versions: Mapped[list[PromptVersion]] = relationship(
        back_populates="template",
        order_by="PromptVersion.version",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    aliases: Mapped[list[PromptAlias]] = relationship(
        back_populates="template", cascade="all, delete-orphan", passive_deletes=True
    )


class PromptVersion(Base):
    __tablename__ = "prompt_versions"
    __table_args__ = (UniqueConstraint("template_id", "version", name="uq_prompt_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("prompt_templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    variables: Mapped[list[Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    template: Mapped[PromptTemplate] = relationship(back_populates="versions")


class PromptAlias(Base):
    __tablename__ = "prompt_aliases"
    __table_args__ = (UniqueConstraint("template_id", "alias", name="uq_prompt_alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("prompt_templates.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    template: Mapped[PromptTemplate] = relationship(back_populates="aliases")
    target: Mapped[PromptVersion] = relationship()


class LineageEdge(Base):
    """A directed edge between two artifacts, named by kind and reference.

    Later stages (pipeline runs, models, deployments, responses) add their
    own kinds; the table does not change.
    """

    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint(
            "src_kind", "src_ref", "dst_kind", "dst_ref", "relation", name="uq_lineage_edge"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    src_kind: Mapped[str] = mapped_column(String(50), index=True)
    src_ref: Mapped[str] = mapped_column(String(500), index=True)
    dst_kind: Mapped[str] = mapped_column(String(50), index=True)
    dst_ref: Mapped[str] = mapped_column(String(500), index=True)
    relation: Mapped[str] = mapped_column(String(50))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
