"""How chains and agents call a model: an OpenAI-compatible chat client.

:class:`OpenAIChatClient` talks to any OpenAI-compatible server (a running
``llmline serve``, vLLM, OpenAI) with the official ``openai`` SDK;
:class:`ServiceChatClient` calls a gateway's :class:`~llmline.gateway.serving.Service`
in-process (what a ``kind: chain`` deployment uses).  Both give a
:class:`ChatReply`; tests and applications may pass any object with the
same ``complete`` method.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.gateway.serving import Caller, Service

__all__ = [
    "ChatClient",
    "ChatReply",
    "ModelCallError",
    "OpenAIChatClient",
    "ServiceChatClient",
    "ToolCall",
]

DEFAULT_URL = "http://127.0.0.1:8000/v1"


class ModelCallError(UserError, RuntimeError):
    """The model server refused or failed a call (its own message kept)."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_message(cls, call: Mapping[str, Any]) -> ToolCall:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments or {})
        return cls(str(call.get("id") or ""), str(function.get("name") or ""), arguments)


@dataclass(frozen=True)
class ChatReply:
    content: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: tuple[ToolCall, ...] = ()
    model: str | None = None  # what served it, when the server says
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatClient(Protocol):
    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> ChatReply: ...


class OpenAIChatClient:
    """A chat client over the official ``openai`` SDK (async)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        import openai

        self.model = model
        self.base_url = base_url
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=1
        )

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> ChatReply:
        import openai

        name = model or self.model
        if name is None:
            raise UserError("no model to call: give a deployment (--deployment)")
        options: dict[str, Any] = {"tools": list(tools)} if tools else {}
        try:
            completion = await self._client.chat.completions.create(
                model=name,
                messages=[dict(m) for m in messages],  # type: ignore[misc]
                max_tokens=max_tokens,
                temperature=temperature,
                **options,
            )
        except openai.APIStatusError as exc:
            raise ModelCallError(f"{name} at {self.base_url}: {_api_message(exc)}") from None
        except openai.APIConnectionError as exc:
            raise ModelCallError(f"cannot reach {self.base_url}: {exc}") from None
        choice = completion.choices[0]
        calls = tuple(
            ToolCall.from_message(c.model_dump()) for c in choice.message.tool_calls or ()
        )
        usage = completion.usage
        return ChatReply(
            content=choice.message.content or "",
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            tool_calls=calls,
            model=completion.model,
        )

    async def aclose(self) -> None:
        await self._client.close()


def _api_message(exc: Any) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    message = error.get("message") if isinstance(error, dict) else None
    return f"{exc.status_code} {message or exc.message}"


class ServiceChatClient:
    """Calls deployments through a gateway :class:`Service` in this process:
    routing, fallbacks, guardrails, quotas and the request log all apply.
    The messages are sent as given (no prompt template)."""

    def __init__(self, service: Service, *, model: str | None = None, caller: Caller | None = None):
        self.service = service
        self.model = model
        self.caller = caller

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> ChatReply:
        from llmline.gateway.endpoints.chat import cache_payload
        from llmline.gateway.providers import GenerationRequest
        from llmline.gateway.serving import Caller, Prepared, new_request_id

        name = model or self.model
        if name is None:
            raise UserError("no model to call: the chain step names no deployment")
        live = self.service.engine.resolve(name)
        request = GenerationRequest(
            messages=tuple(dict(m) for m in messages),
            max_tokens=self.service.max_tokens(max_tokens),
            temperature=temperature,
            request_id=new_request_id("chatcmpl"),
            extra={"tools": list(tools)} if tools else {},
        )
        users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
        prepared = Prepared(
            live=live,
            request=request,
            question=users[-1] if users else "",
            prompt_version=None,
            caller=self.caller or Caller(),
            cache_payload=cache_payload(request),
        )
        answer = await self.service.answer(prepared)
        return ChatReply(
            content=answer.text,
            finish_reason=answer.finish_reason,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            tool_calls=tuple(ToolCall.from_message(c) for c in answer.tool_calls),
            model=answer.target,
        )
