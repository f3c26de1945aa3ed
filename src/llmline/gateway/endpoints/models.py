"""``GET /v1/models``: deployments, registry models with a champion, and
the embedding model."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request

from llmline.gateway.endpoints.embeddings import EMBEDDING_MODEL
from llmline.gateway.engine import Engine
from llmline.gateway.protocol.models import ModelCard, ModelList

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    await request.app.state.auth.caller(request.headers.get("authorization"), None)
    engine: Engine = request.app.state.service.engine
    now = int(time.time())
    cards = [
        ModelCard(
            id=live.name,
            created=now,
            kind="deployment",
            details={
                "strategy": live.spec.strategy,
                "models": live.spec.models,
                "phase": live.state.phase,
                "prompt_version": live.prompt.ref,
                "healthy": {t: engine.health(t).state for t in live.spec.models},
            },
        )
        for live in sorted(engine.deployments.values(), key=lambda d: d.name)
        if not live.implicit
    ]
    taken = {card.id for card in cards}
    for name, ref in await asyncio.to_thread(_champions, engine):
        if name not in taken:
            cards.append(ModelCard(id=name, created=now, kind="model", details={"version": ref}))
    cards.append(ModelCard(id=EMBEDDING_MODEL, created=now, kind="embedding"))
    return ModelList(data=cards)


def _champions(engine: Engine) -> list[tuple[str, Any]]:
    if engine.workspace is None:
        return []
    from llmline.models import ModelRegistry

    return [
        (info.name, info.ref)
        for info in ModelRegistry(engine.workspace.metadata).list()
        if "champion" in info.aliases
    ]
