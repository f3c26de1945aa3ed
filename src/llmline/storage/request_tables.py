"""Metadata store table of the gateway's request log.

Migration: ``0007_request_log``.  One row per request the gateway answered
(or refused): who, what served it, tokens, cost, latency and the safety
decisions.  Texts are stored PII-redacted.  The row is the durable record
budgets are reconciled from after a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmline.storage.models import Base, UTCDateTime

__all__ = ["RequestRow"]


class RequestRow(Base):
    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_created_at", "created_at"),
        Index("ix_requests_key_created", "key_id", "created_at"),
        Index("ix_requests_deployment_created", "deployment", "created_at"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    endpoint: Mapped[str] = mapped_column(String(32))  # chat | completions | embeddings
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    deployment: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(300), nullable=True)
    route_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    prompt_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[int] = mapped_column(Integer)  # HTTP status of the answer
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean)
    cache: Mapped[str | None] = mapped_column(String(16), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    safety: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Migration 0010: the OpenTelemetry trace id (32 hex digits) of the request.
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
