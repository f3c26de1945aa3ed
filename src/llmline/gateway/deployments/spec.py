"""What a deployment is: a name clients call as ``model``, the targets
behind it, how traffic is split between them, and the prompt contract."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmline.guard.policy import GuardPolicy
from llmline.guard.quota import LimitsPolicy

__all__ = [
    "STRATEGIES",
    "CachePolicy",
    "CanaryPolicy",
    "DeploymentSpec",
    "DeploymentState",
    "Phase",
    "RagPolicy",
    "Strategy",
]

Strategy = Literal["random", "weighted", "least-busy", "latency", "canary", "shadow", "blue-green"]
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]
# Strategies that compare exactly two targets: [stable, challenger] or [blue, green].
_PAIRED = {"canary", "shadow", "blue-green"}
Phase = Literal["running", "promoted", "rolled-back"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class CanaryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: float = Field(default=10.0, gt=0, lt=100, description="Share sent to the challenger")
    promote_after: int = Field(
        default=100, ge=1, description="Challenger requests within SLO before auto-promotion"
    )
    min_requests: int = Field(
        default=20, ge=1, description="Challenger requests before a rollback can be judged"
    )
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_p95_ms: float | None = Field(default=None, gt=0, description="p95 latency SLO")
    window: int = Field(default=100, ge=5, description="Recent challenger requests judged")


class CachePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exact: bool = Field(default=True, description="Reuse answers to identical requests")
    semantic: bool = Field(default=False, description="Reuse answers to similar questions")
    similarity: float = Field(default=0.95, gt=0, le=1, description="Cosine threshold")
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=4096, ge=1)


class RagPolicy(BaseModel):
    """How a ``kind: rag`` deployment grounds its answers in a knowledge base."""

    model_config = ConfigDict(extra="forbid")

    knowledge_base: str = Field(description="Knowledge base name, or NAME@VERSION")
    top_k: int = Field(default=5, ge=1, le=50, description="Chunks retrieved per question")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    max_context_tokens: int = Field(
        default=1500, ge=64, description="Retrieved text put in the prompt, at most"
    )
    grounded_only: bool = Field(
        default=False, description="Refuse when nothing relevant enough was retrieved"
    )
    min_score: float | None = Field(
        default=None, description="Dense similarity a chunk needs to count as grounding"
    )
    mmr: bool = Field(default=False, description="Diversify the chunks (MMR)")
    rerank: bool = Field(default=False, description="Rerank the retrieved chunks")
    prompt: str | None = Field(
        default=None,
        description="Grounded prompt template ref, with {context} and {question} "
        "(default: the shipped rag-grounded)",
    )


class DeploymentSpec(BaseModel):
    """A deployment as created by ``llmline deploy create`` or declared in
    ``llmline.yaml``.  Paired strategies read ``models`` as
    ``[stable, challenger]`` (canary, shadow) or ``[blue, green]``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["model", "rag", "chain"] = Field(
        default="model",
        description="model: serve the models; rag: retrieve, then ground the answer; "
        "chain: run the chain file's steps",
    )
    models: list[str] = Field(min_length=1, description="Targets: registry refs or upstream:NAME")
    strategy: Strategy = "random"
    weights: list[float] | None = Field(default=None, description="One per model (weighted)")
    prompt: str | None = Field(
        default=None,
        description="Prompt template ref; default: the template the model was tuned with",
    )
    raw: bool = Field(default=False, description="Pass messages through without the template")
    citations: str | None = Field(
        default=None,
        description="Dataset ref whose training answers outputs are checked against "
        "(default: the dataset the model was tuned on)",
    )
    fallbacks: list[str] = Field(default_factory=list, description="Tried in order on failure")
    sticky: Literal["user", "key"] | None = Field(
        default=None, description="Route a user (or API key) to the same target"
    )
    seed: int | None = Field(default=None, description="Seed of random choices (reproducible)")
    latency_alpha: float = Field(default=0.2, gt=0, le=1, description="EWMA weight (latency)")
    canary: CanaryPolicy = Field(default_factory=CanaryPolicy)
    cache: CachePolicy = Field(default_factory=CachePolicy)
    limits: LimitsPolicy = Field(
        default_factory=LimitsPolicy, description="Rate limits and budget of all its traffic"
    )
    guard: GuardPolicy | None = Field(
        default=None, description="Guardrail overrides (per scanner) of the global guard policy"
    )
    rag: RagPolicy | None = Field(default=None, description="Retrieval of a kind: rag deployment")
    chain: str | None = Field(default=None, description="Chain YAML file of a kind: chain one")

    @model_validator(mode="after")
    def _check(self) -> DeploymentSpec:
        if not _NAME.match(self.name):
            raise ValueError(
                f"invalid deployment name {self.name!r}: letters, digits, '.', '_' and '-'"
            )
        if self.strategy in _PAIRED and len(self.models) != 2:
            raise ValueError(
                f"strategy {self.strategy} needs exactly 2 models "
                f"({_pair_names(self.strategy)}), got {len(self.models)}"
            )
        if self.weights is not None:
            if len(self.weights) != len(self.models):
                raise ValueError(
                    f"{len(self.weights)} weights for {len(self.models)} models: give one each"
                )
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative and not all zero")
        elif self.strategy == "weighted":
            raise ValueError("strategy weighted needs --weights, one per model")
        if len(set(self.models)) != len(self.models):
            raise ValueError("a model is listed twice")
        if (self.kind == "rag") != (self.rag is not None):
            raise ValueError("a rag deployment needs rag settings (knowledge_base), and only it")
        if (self.kind == "chain") != (self.chain is not None):
            raise ValueError("a chain deployment needs a chain file, and only it")
        return self


def _pair_names(strategy: str) -> str:
    return "blue then green" if strategy == "blue-green" else "stable then challenger"


class DeploymentState(BaseModel):
    """What rollouts change at run time, kept apart from the spec.

    ``live`` indexes ``spec.models``: the model serving the stable share
    (blue-green: the live colour).  ``phase`` is ``running`` while a canary
    or shadow is in progress, ``promoted`` once the challenger took over,
    ``rolled-back`` once it was sent away.  ``previous`` is what a rollback
    restores.
    """

    model_config = ConfigDict(extra="forbid")

    live: int = 0
    phase: Phase = "running"
    previous: int | None = None
    reason: str = "created"
