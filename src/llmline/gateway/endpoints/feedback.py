"""``POST /v1/feedback``: user feedback on a logged response (being written)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["feedback"])
