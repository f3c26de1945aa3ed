"""Fields llmline adds to OpenAI's bodies.

Responses carry ``safety_attributes`` (of the output),
``input_safety_attributes`` (of the prompt), ``citation_metadata`` and
``llmline`` (which deployment and model version answered, and why).
Requests may carry an ``llmline`` object of :class:`RequestOptions`
(``extra_body={"llmline": {...}}`` with the openai SDK).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Citation", "CitationMetadata", "LlmlineInfo", "RequestOptions", "SafetyAttributes"]

Severity = Literal["negligible", "low", "medium", "high"]


class SafetyAttributes(BaseModel):
    blocked: bool = False
    categories: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict, description="Probability per category")
    severity: dict[str, Severity] = Field(default_factory=dict)
    # Scanners that did not report in time or failed: "clean" vs "not fully checked".
    skipped: list[str] = Field(default_factory=list, exclude_if=lambda v: not v)
    # The text was changed (PII, secrets, invisible characters replaced) before use.
    redacted: bool = Field(default=False, exclude_if=lambda v: not v)
    # Each guardrail that fired: {scanner, category, score, action}.
    decisions: list[dict[str, Any]] = Field(default_factory=list, exclude_if=lambda v: not v)


class Citation(BaseModel):
    start_index: int
    end_index: int
    uri: str
    title: str | None = None
    license: str | None = None
    # A RAG deployment's citations also name the chunk and its span in the source.
    chunk_id: str | None = Field(default=None, exclude_if=lambda v: v is None)
    source_start: int | None = Field(default=None, exclude_if=lambda v: v is None)
    source_end: int | None = Field(default=None, exclude_if=lambda v: v is None)


class CitationMetadata(BaseModel):
    citations: list[Citation] = Field(default_factory=list)


class LlmlineInfo(BaseModel):
    deployment: str
    model_version: str | None
    route_reason: str
    prompt_version: str | None
    cache: Literal["hit", "miss", "semantic", "off"]
    latency_ms: float
    ttft_ms: float | None
    usage: dict[str, int]
    cost_usd: float
    request_id: str
    # A RAG deployment's retrieval: knowledge base, chunks used, refused or not.
    grounding: dict[str, Any] | None = Field(default=None, exclude_if=lambda v: v is None)


class RequestOptions(BaseModel):
    """``"llmline": {...}`` in a request body."""

    model_config = ConfigDict(extra="forbid")

    raw: bool = Field(
        default=False, description="Send the messages as they are, without the tuning template"
    )
    variables: dict[str, Any] | None = Field(
        default=None, description="Values of a template with several variables"
    )
    cache: bool = Field(default=True, description="false: skip the cache for this request")
