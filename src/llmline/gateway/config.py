"""The ``gateway:`` and ``upstreams:`` sections of ``llmline.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EmbeddedSettings", "GatewaySettings", "UpstreamSettings"]


class UpstreamSettings(BaseModel):
    """An OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama, OpenAI)
    that deployments reach as ``upstream:NAME``."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="Base URL of its OpenAI API, e.g. http://host:8000/v1")
    model: str = Field(description="The model name the upstream serves")
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding its API key (never the key)"
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Whole-request timeout")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=2, ge=0, description="Retries after the first try")
    backoff_s: float = Field(default=0.2, ge=0, description="Base of jittered backoff")
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open the circuit"
    )
    breaker_reset_s: float = Field(
        default=30.0, gt=0, description="Open time before a trial request"
    )
    max_connections: int = Field(default=100, ge=1, description="Across all pools")
    pool_shards: int = Field(
        default=4, ge=1, description="Connection pools used in turn (less CPU per request)"
    )
    input_usd_per_1k: float = Field(default=0.0, ge=0, description="Price per 1k prompt tokens")
    output_usd_per_1k: float = Field(default=0.0, ge=0, description="Price per 1k output tokens")


class EmbeddedSettings(BaseModel):
    """How registry models are served in-process."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(default="auto", description="auto, cpu or cuda")
    max_batch_size: int = Field(default=8, ge=1, description="Requests decoded together")
    batch_wait_ms: float = Field(
        default=5.0, ge=0, description="How long a batch waits for more requests"
    )
    usd_per_hour: float = Field(
        default=0.0, ge=0, description="Machine cost, shared by the tokens it generates"
    )


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="API keys required: auto = on unless serving on a loopback address",
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Larger bodies get 413")
    max_tokens_cap: int = Field(default=1024, ge=1, description="Largest max_tokens accepted")
    default_max_tokens: int = Field(default=256, ge=1)
    max_prompt_tokens: int = Field(default=4096, ge=1)
    load_timeout_s: float = Field(
        default=300.0, gt=0, description="How long a request waits for a loading model"
    )
    reload_interval_s: float = Field(
        default=1.0, gt=0, description="How often deployment changes are picked up"
    )
    redis_url: str | None = Field(
        default=None, description="Redis for the shared exact cache (else in-process)"
    )
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
