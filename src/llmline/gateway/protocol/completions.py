"""``POST /v1/completions`` (text in, text out; no chat template)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from llmline.gateway.protocol.chat import _Extensions
from llmline.gateway.protocol.common import SamplingFields, Usage
from llmline.gateway.protocol.extensions import RequestOptions

__all__ = ["Completion", "CompletionChoice", "CompletionChunk", "CompletionRequest"]


class CompletionRequest(SamplingFields):
    prompt: str | list[str] = Field(description="One prompt (a list of one is accepted)")
    max_tokens: int | None = Field(default=16, ge=1)
    echo: bool = False
    llmline: RequestOptions | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        text = value if isinstance(value, str) else value[0]
        if not text:
            raise ValueError("prompt must not be empty")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: None = None


class Completion(_Extensions):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


CompletionChunk = Completion
