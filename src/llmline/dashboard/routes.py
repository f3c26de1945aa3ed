"""Routes of the ``/ui`` dashboard (being written)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["dashboard"], include_in_schema=False)
