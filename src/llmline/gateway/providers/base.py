"""The provider interface: what every backend (embedded model, upstream
OpenAI-compatible server, test fake) implements.

A provider serves one *target*: a model reference such as
``python-faq-lora@2`` (embedded), ``upstream:vllm-a`` (an upstream named in
``llmline.yaml``) or ``fake:echo`` (tests).  The part before ``:`` picks the
provider factory from the ``llmline.providers`` entry-point group; a bare
registry reference means ``embedded``.  Adding a backend is one module with
a factory and one entry point.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from llmline.workspace import Workspace

__all__ = [
    "BackendHealth",
    "FinishReason",
    "GenerationChunk",
    "GenerationOutput",
    "GenerationRequest",
    "Message",
    "Provider",
    "ProviderContext",
    "ProviderFactory",
    "split_target",
]

FinishReason = Literal["stop", "length", "content_filter", "cancelled", "tool_calls"]
Message = Mapping[str, Any]  # {"role": ..., "content": ...} as in OpenAI's API


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, already past validation, templating and routing.

    Chat requests carry ``messages``; completion requests carry ``prompt``
    (exactly one of the two is set).  ``model`` is the provider's own model
    name (an upstream's served model), not the deployment name.
    """

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    user: str | None = None
    request_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a GenerationRequest has either messages or a prompt")


@dataclass(frozen=True)
class GenerationOutput:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None = None  # time to first token, when the backend knows it
    # OpenAI-format tool calls ({"id", "type": "function", "function": {...}}),
    # when the model answered a request with ``extra["tools"]`` by calling some.
    tool_calls: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of a streamed answer.  The last chunk has ``finish_reason``
    and the token counts; earlier ones have ``text`` only."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class BackendHealth:
    state: Literal["loading", "ready", "failed", "open"]  # "open": circuit breaker open
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@runtime_checkable
class Provider(Protocol):
    """A backend serving one target.

    ``generate`` and ``stream`` raise :class:`~llmline.gateway.errors.BackendError`
    (or its subclasses ``BackendTimeout`` / ``BackendUnavailable``) when the
    backend fails; the router then tries the deployment's fallbacks.
    Cancelling the task that iterates ``stream`` must stop generation.
    """

    target: str

    async def start(self) -> None:
        """Load weights / open connection pools.  Failures are reported by
        :meth:`health`, not raised: one broken backend must not stop the
        gateway serving the others."""
        ...

    async def close(self) -> None: ...

    def health(self) -> BackendHealth: ...

    async def generate(self, request: GenerationRequest) -> GenerationOutput: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]: ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as this backend counts them (an estimate for
        upstreams), used for prompt-size caps."""
        ...


@dataclass(frozen=True)
class ProviderContext:
    """What a provider factory may use: the workspace (registry, artifacts,
    settings) and the provider's options from ``llmline.yaml``."""

    workspace: Workspace | None
    options: Mapping[str, Any] = field(default_factory=dict)


class ProviderFactory(Protocol):
    def __call__(self, target: str, context: ProviderContext) -> Provider: ...


def split_target(target: str) -> tuple[str, str]:
    """``("upstream", "vllm-a")`` for ``upstream:vllm-a``; a bare registry
    reference (``name@3``) is served by the ``embedded`` provider."""
    scheme, sep, rest = target.partition(":")
    if not sep:
        return "embedded", target
    return scheme, rest
