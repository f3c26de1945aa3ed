"""Metadata store table of user feedback on gateway responses.

Migration: ``0009_feedback``.  One row per distinct piece of feedback on a
logged response (``request_id`` names a row of ``requests``).
``fingerprint`` (a hash of the request id, who sent it and what was said)
is unique, so a client that retries the same feedback gets the existing
row back instead of a duplicate.  ``status`` is ``new`` until a reviewer
accepts or rejects it; accepted corrections feed the next dataset version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmline.storage.models import Base, UTCDateTime, utcnow

__all__ = ["FeedbackRow"]


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_request", "request_id"),
        Index("ix_feedback_created_at", "created_at"),
    )

    feedback_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_scale: Mapped[str | None] = mapped_column(String(16), nullable=True)  # thumbs | 5
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    correction: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="new")  # new|accepted|rejected
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
