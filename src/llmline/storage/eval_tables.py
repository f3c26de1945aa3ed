"""Metadata store table of model evaluations.

A module of its own so the evaluation stage adds its table without touching
the core models; ``migrations/env.py`` imports it so that Alembic (and the
schema test) see the table.  Migration: ``0003_evaluations``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from llmline.storage.models import Base, UTCDateTime, utcnow

__all__ = ["Evaluation"]


class Evaluation(Base):
    """One evaluation run: a model scored on one split of one dataset version.

    ``metrics`` is a flat name → number map; ``config`` holds what shaped the
    numbers (generation limits, judge endpoint and model); ``samples`` a few
    (input, reference, prediction) examples to eyeball.
    """

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_ref: Mapped[str] = mapped_column(String(500), index=True)
    dataset_ref: Mapped[str] = mapped_column(String(500))
    split: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    samples: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
