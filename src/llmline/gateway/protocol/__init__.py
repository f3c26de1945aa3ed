"""Request and response bodies of the OpenAI-compatible API (pydantic).

One module per endpoint family, as in vLLM's entrypoint; the extension
fields llmline adds to responses live in :mod:`.extensions`.
"""

from __future__ import annotations

from llmline.gateway.protocol.chat import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ChunkChoice,
    DeltaMessage,
)
from llmline.gateway.protocol.common import ErrorBody, ErrorResponse, StreamOptions, Usage
from llmline.gateway.protocol.completions import (
    Completion,
    CompletionChoice,
    CompletionRequest,
)
from llmline.gateway.protocol.embeddings import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
)
from llmline.gateway.protocol.extensions import (
    Citation,
    CitationMetadata,
    LlmlineInfo,
    RequestOptions,
    SafetyAttributes,
)
from llmline.gateway.protocol.models import ModelCard, ModelList

__all__ = [
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChunkChoice",
    "Citation",
    "CitationMetadata",
    "Completion",
    "CompletionChoice",
    "CompletionRequest",
    "DeltaMessage",
    "EmbeddingData",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorBody",
    "ErrorResponse",
    "LlmlineInfo",
    "ModelCard",
    "ModelList",
    "RequestOptions",
    "SafetyAttributes",
    "StreamOptions",
    "Usage",
]
