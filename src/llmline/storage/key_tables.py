"""Metadata store table of gateway API keys.

Migration: ``0006_api_keys``.  Only a per-key salt and the HMAC of the
secret are stored; the token itself is shown once, when it is created.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from llmline.storage.models import Base, UTCDateTime, utcnow

__all__ = ["ApiKey"]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin | deployer | user | viewer
    # None: every deployment; otherwise the names this key may call.
    deployments: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Migration 0007: the budget's period (day | month; None = month) and
    # the most streams the key may hold open at once.
    budget_period: Mapped[str | None] = mapped_column(String(8), nullable=True)
    max_streams: Mapped[int | None] = mapped_column(Integer, nullable=True)
    salt: Mapped[str] = mapped_column(String(64))  # hex
    secret_hash: Mapped[str] = mapped_column(String(64))  # hex HMAC-SHA256
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
