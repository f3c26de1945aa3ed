"""``GET /v1/models``: deployments and directly callable models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["ModelCard", "ModelList"]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmline"
    # llmline: what this name is ("deployment", "model", "embedding") and its details.
    kind: str
    details: dict[str, Any] = {}


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
