"""Bodies shared by several endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ErrorBody", "ErrorResponse", "SamplingFields", "StopField", "StreamOptions", "Usage"]

StopField = Annotated[
    str | list[str] | None,
    Field(default=None, description="Up to 4 strings; generation stops before any of them"),
]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class SamplingFields(BaseModel):
    """Sampling options common to chat and text completions.

    Unknown fields are ignored, as OpenAI-compatible servers do, so newer
    SDKs keep working; ``n`` > 1 and penalties are accepted by the schema
    but only ``n=1`` is served (400 otherwise).
    """

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="A deployment or model name")
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1, description="Only 1 is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: StopField
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    user: str | None = Field(default=None, max_length=256)
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
