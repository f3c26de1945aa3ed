"""Metadata store tables of RAG knowledge bases and their versions.

Migration: ``0008_knowledge_bases``.  A version row is the commit point of
an ingest (its files are published to the artifact store first), and
``(knowledge_base, content_hash)`` is unique, so re-ingesting an unchanged
corpus finds the existing version instead of adding a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmline.storage.models import Base, UTCDateTime, utcnow

__all__ = ["KnowledgeBaseRow", "KnowledgeBaseVersionRow"]


class KnowledgeBaseRow(Base):
    __tablename__ = "knowledge_bases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    versions: Mapped[list[KnowledgeBaseVersionRow]] = relationship(
        back_populates="knowledge_base",
        order_by="KnowledgeBaseVersionRow.created_at",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class KnowledgeBaseVersionRow(Base):
    __tablename__ = "knowledge_base_versions"
    __table_args__ = (
        UniqueConstraint("knowledge_base_id", "version", name="uq_kb_version"),
        UniqueConstraint("knowledge_base_id", "content_hash", name="uq_kb_content"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    knowledge_base_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE")
    )
    version: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    # Also in the version's manifest.json; here so list/show need no file reads.
    embedding_model: Mapped[str] = mapped_column(String(200))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    chunks: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    knowledge_base: Mapped[KnowledgeBaseRow] = relationship(back_populates="versions")
