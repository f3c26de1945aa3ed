"""``POST /v1/embeddings`` with the shipped all-MiniLM-L6-v2 model."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from opentelemetry.trace import SpanKind

from llmline.gateway.endpoints.chat import ERROR_RESPONSES
from llmline.gateway.errors import InvalidRequestError, NotFoundError
from llmline.gateway.observe import current_trace
from llmline.gateway.protocol.common import Usage
from llmline.gateway.protocol.embeddings import EmbeddingData, EmbeddingRequest, EmbeddingResponse

__all__ = ["EMBEDDING_MODEL", "router"]

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_ALIASES = {EMBEDDING_MODEL, f"sentence-transformers/{EMBEDDING_MODEL}", "minilm"}
_DIMENSIONS = 384

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=ERROR_RESPONSES)
async def create_embeddings(body: EmbeddingRequest, request: Request) -> EmbeddingResponse:
    auth = request.app.state.auth
    auth.require_caller(await auth.caller(request.headers.get("authorization"), body.user))
    if body.model not in _ALIASES:
        raise NotFoundError(
            f"the embedding model {body.model!r} does not exist; this gateway serves "
            f"{EMBEDDING_MODEL}",
            param="model",
        )
    if body.dimensions is not None and body.dimensions != _DIMENSIONS:
        raise InvalidRequestError(
            f"{EMBEDDING_MODEL} has {_DIMENSIONS} dimensions", param="dimensions"
        )
    embedder = request.app.state.embedder
    texts = body.texts()
    trace = current_trace()
    span = trace.start("embeddings", _span_attributes(len(texts)), kind=SpanKind.CLIENT)
    vectors, tokens = await asyncio.to_thread(_encode, embedder, texts)
    trace.end(span, {"gen_ai.usage.input_tokens": tokens})
    trace.model_version, trace.prompt_tokens = EMBEDDING_MODEL, tokens  # its request record
    data = [
        EmbeddingData(index=i, embedding=_encoded(v, body.encoding_format))
        for i, v in enumerate(vectors)
    ]
    return EmbeddingResponse(
        data=data,
        model=EMBEDDING_MODEL,
        usage=Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens),
    )


def _span_attributes(inputs: int) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.request.model": EMBEDDING_MODEL,
        "llmline.inputs": inputs,
    }


def _encode(embedder: Any, texts: list[str]) -> tuple[np.ndarray[Any, Any], int]:
    model = embedder.model()
    vectors = np.asarray(
        model.encode(
            texts, convert_to_numpy=True, show_progress_bar=False, normalize_embeddings=True
        ),
        dtype=np.float32,
    )
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return vectors, sum(len(t.split()) for t in texts)
    ids = tokenizer(texts, add_special_tokens=True, truncation=True)["input_ids"]
    return vectors, sum(len(row) for row in ids)


def _encoded(vector: np.ndarray[Any, Any], encoding: str) -> list[float] | str:
    if encoding == "base64":  # what the openai SDK asks for by default
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]
