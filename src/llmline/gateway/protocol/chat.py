"""``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmline.gateway.protocol.common import SamplingFields, Usage
from llmline.gateway.protocol.extensions import (
    CitationMetadata,
    LlmlineInfo,
    RequestOptions,
    SafetyAttributes,
)

__all__ = [
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChunkChoice",
    "DeltaMessage",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    # A string, or OpenAI's list of content parts (only "text" parts are served).
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    # OpenAI's tool-call format: an assistant's calls, and a tool's answer to one.
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @field_validator("content")
    @classmethod
    def _text_parts_only(cls, value: str | list[dict[str, Any]] | None) -> Any:
        if isinstance(value, list):
            for part in value:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ValueError("only text content parts are supported")
        return value

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part["text"]) for part in self.content)
        return self.content or ""


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    llmline: RequestOptions | None = None
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="Functions the model may call (OpenAI's format)"
    )
    tool_choice: str | dict[str, Any] | None = None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class _Reply(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: _Reply
    finish_reason: str
    logprobs: None = None


class _Extensions(BaseModel):
    safety_attributes: SafetyAttributes | None = None
    input_safety_attributes: SafetyAttributes | None = None
    citation_metadata: CitationMetadata | None = None
    llmline: LlmlineInfo | None = None


class ChatCompletion(_Extensions):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(_Extensions):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
