"""The agent loop: a model calling tools in OpenAI's tool-call format until
it answers, or until a quota stops it.

Each step sends the conversation and the tool schemas (``tools=[...]``);
an answer with ``tool_calls`` runs each call and appends its result as a
``role: tool`` message, an answer without them ends the run.  What goes
wrong in a tool is the model's to handle: an exception, a timeout, invalid
arguments or a guardrail block becomes the observation it reads next.
What the run may spend is bounded by :class:`AgentQuotas`; exceeding one
ends the run with its own ``finish_reason``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace

from llmline.agents.client import ChatClient, ChatReply, ToolCall
from llmline.agents.tools import ToolError, ToolRegistry, observation

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from llmline.guard.guardrails import DirectionGuard

__all__ = [
    "AgentQuotas",
    "AgentResult",
    "AgentStep",
    "FinishReason",
    "ToolInputGuard",
    "run_agent",
]

FinishReason = Literal[
    "stop", "length", "content_filter", "max_steps", "max_tool_calls", "timeout", "token_budget"
]
DEFAULT_SYSTEM = (
    "You are a helpful assistant. Use the tools when they help; "
    "when you know the answer, reply with it directly."
)


@dataclass(frozen=True)
class AgentQuotas:
    """What one run may spend.  ``timeout_s`` bounds the whole run (model
    calls and tools); ``tool_timeout_s`` each tool call."""

    max_steps: int = 8  # model calls
    max_tool_calls: int = 16
    timeout_s: float = 120.0
    token_budget: int | None = None  # prompt + completion tokens over all model calls
    tool_timeout_s: float = 30.0
    max_tokens: int = 512  # per model call (capped by what the budget leaves)

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_tool_calls < 0 or self.timeout_s <= 0:
            raise ValueError("max_steps ≥ 1, max_tool_calls ≥ 0 and timeout_s > 0 are needed")


@dataclass
class AgentStep:
    """One model call or one tool call of a run."""

    step: int
    kind: Literal["model", "tool"]
    ms: float
    content: str = ""  # the model's text, or the tool's observation
    tool: str | None = None
    arguments: str | None = None
    tool_calls: list[str] = field(default_factory=list)  # names the model called
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # the tool failed, timed out or was blocked

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v not in (None, [], "")}
        if self.kind == "tool":  # tokens are the model's
            del data["prompt_tokens"], data["completion_tokens"]
        data["ms"] = round(self.ms, 1)
        return data


@dataclass
class AgentResult:
    answer: str
    finish_reason: FinishReason
    steps: list[AgentStep]
    messages: list[dict[str, Any]]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0
    ms: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "finish_reason": self.finish_reason,
            "steps": [s.to_dict() for s in self.steps],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
            },
            "tool_calls": self.tool_calls,
            "ms": round(self.ms, 1),
        }


class ToolInputGuard:
    """The governance input scanners over tool arguments (every string in them)."""

    def __init__(self, guard: DirectionGuard) -> None:
        self.guard = guard

    @classmethod
    def default(cls, *, warm_up: bool = True) -> ToolInputGuard:
        """Prompt injections and secrets block; card numbers and other
        financial identifiers block; other PII is flagged only.  Scanners
        get 2 s each (a tool call is not latency-critical like a chat
        turn), and are loaded now unless ``warm_up`` is false."""
        from llmline.guard.guardrails import Guardrails
        from llmline.guard.policy import DEFAULT_INPUT, GuardPolicy, ScannerPolicy

        pii = DEFAULT_INPUT["pii"]
        policy = GuardPolicy(
            defaults=False,
            input={
                "injection": ScannerPolicy(action="block", threshold=0.5),
                "secrets": ScannerPolicy(action="block"),
                "pii": ScannerPolicy(action="flag", categories=dict(pii.categories)),
                "unicode": ScannerPolicy(action="redact"),
            },
            budget_ms=2000,
        )
        guard = Guardrails(policy).for_deployment(None)[0]
        if warm_up:
            guard.checker.warm_up()
        return cls(guard)

    async def blocked(self, tool: str, arguments: Any) -> list[str]:
        """The categories that block this call (empty: it may run)."""
        from llmline.gateway.safety import ScanContext

        categories: list[str] = []
        context = ScanContext(direction="input", deployment=f"tool:{tool}")
        for text in _strings(arguments):
            verdict, _ = await self.guard.check(text, context)
            if verdict.blocked:
                categories += [d.category for d in verdict.decisions if d.action == "block"]
        return list(dict.fromkeys(categories))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


class _Stop(Exception):
    def __init__(self, reason: FinishReason) -> None:
        self.reason = reason


class _Run:
    """The state of one run; :func:`run_agent` is its entry point."""

    def __init__(
        self,
        client: ChatClient,
        *,
        model: str | None,
        tools: ToolRegistry,
        quotas: AgentQuotas,
        guard: ToolInputGuard | None,
        tracer: Tracer,
    ) -> None:
        self.client, self.model, self.tools = client, model, tools
        self.quotas, self.guard, self.tracer = quotas, guard, tracer
        self.started = time.monotonic()
        self.steps: list[AgentStep] = []
        self.messages: list[dict[str, Any]] = []
        self.prompt_tokens = self.completion_tokens = self.tool_calls = 0

    def left_s(self) -> float:
        return self.quotas.timeout_s - (time.monotonic() - self.started)

    def tokens_left(self) -> int | None:
        budget = self.quotas.token_budget
        return None if budget is None else budget - self.prompt_tokens - self.completion_tokens

    async def loop(self) -> tuple[str, FinishReason]:
        for step in range(1, self.quotas.max_steps + 1):
            # One span per step: the model call and the tool calls it asked for.
            with self.tracer.start_as_current_span(
                "agent.step", record_exception=False, set_status_on_exception=False
            ) as span:
                span.set_attribute("agent.step", step)
                reply = await self.call_model(step, span)
                if not reply.tool_calls:
                    return reply.content, _final_reason(reply.finish_reason)
                await self.call_tools(step, reply)
        raise _Stop("max_steps")

    async def call_tools(self, step: int, reply: ChatReply) -> None:
        if len(reply.tool_calls) > self.quotas.max_tool_calls - self.tool_calls:
            raise _Stop("max_tool_calls")
        self.messages.append(
            {
                "role": "assistant",
                "content": reply.content or None,
                "tool_calls": [c.to_message() for c in reply.tool_calls],
            }
        )
        for call in reply.tool_calls:
            await self.call_tool(step, call)
        tokens_left = self.tokens_left()
        if tokens_left is not None and tokens_left <= 0:
            raise _Stop("token_budget")

    async def call_model(self, step: int, span: Span) -> ChatReply:
        tokens_left = self.tokens_left()
        max_tokens = self.quotas.max_tokens
        if tokens_left is not None:
            if tokens_left <= 0:
                raise _Stop("token_budget")
            max_tokens = min(max_tokens, tokens_left)
        if self.left_s() <= 0:
            raise _Stop("timeout")
        started = time.monotonic()
        try:
            reply = await asyncio.wait_for(
                self.client.complete(
                    self.messages,
                    model=self.model,
                    max_tokens=max_tokens,
                    temperature=0.0,
                    tools=self.tools.schemas() or None,
                ),
                self.left_s(),
            )
        except TimeoutError:
            raise _Stop("timeout") from None
        self._record_model(step, reply, started, span)
        return reply

    def _record_model(self, step: int, reply: ChatReply, started: float, span: Span) -> None:
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        names = [c.name for c in reply.tool_calls]
        span.set_attribute("gen_ai.usage.input_tokens", reply.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", reply.completion_tokens)
        span.set_attribute("agent.finish_reason", reply.finish_reason)
        if names:
            span.set_attribute("agent.tool_calls", names)
        self.steps.append(
            AgentStep(
                step,
                "model",
                (time.monotonic() - started) * 1000,
                content=reply.content,
                tool_calls=names,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
            )
        )

    async def call_tool(self, step: int, call: ToolCall) -> None:
        self.tool_calls += 1
        with self.tracer.start_as_current_span(f"agent.tool {call.name}") as span:
            span.set_attribute("agent.step", step)
            span.set_attribute("agent.tool.name", call.name)
            span.set_attribute("agent.tool.arguments", call.arguments[:1000])
            started = time.monotonic()
            text, error = await self._observe(call)
            if error is not None:
                span.set_attribute("agent.tool.error", error)
                span.set_status(trace.StatusCode.ERROR, error)
        ms = (time.monotonic() - started) * 1000
        self.steps.append(AgentStep(step, "tool", ms, text, call.name, call.arguments, error=error))
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})

    async def _observe(self, call: ToolCall) -> tuple[str, str | None]:
        """``(observation, error)``: the tool's result, or what went wrong with it."""
        try:
            tool = self.tools.get(call.name)
            arguments = _arguments(call)
            if self.guard is not None:
                blocked = await self.guard.blocked(call.name, arguments)
                if blocked:
                    message = f"blocked by guardrails: {', '.join(blocked)}"
                    return message, message
            timeout = min(tool.timeout_s, self.quotas.tool_timeout_s, max(0.0, self.left_s()))
            return observation(await tool.call(arguments, timeout_s=timeout)), None
        except ToolError as exc:
            return f"error: {exc}", str(exc)
        except Exception as exc:  # the tool's own failure: the model reads it and adapts
            message = f"{call.name} raised {type(exc).__name__}: {exc}"
            return f"error: {message}", message


def _arguments(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"arguments of {call.name} are not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ToolError(f"arguments of {call.name} must be a JSON object")
    return value


def _final_reason(reason: str) -> FinishReason:
    return reason if reason in ("length", "content_filter") else "stop"  # type: ignore[return-value]


async def run_agent(
    task: str,
    *,
    client: ChatClient,
    model: str | None = None,
    tools: ToolRegistry,
    quotas: AgentQuotas | None = None,
    guard: ToolInputGuard | None = None,
    system: str | None = DEFAULT_SYSTEM,
    tracer_provider: TracerProvider | None = None,
) -> AgentResult:
    """Run ``task`` with ``model`` (a deployment) and ``tools`` until it
    answers or a quota stops it; ``finish_reason`` says which.

    Spans (``agent.run``, ``agent.step``, ``agent.tool NAME``) go to
    ``tracer_provider`` (default: the global one, a no-op unless configured).
    """
    tracer = trace.get_tracer("llmline.agents", tracer_provider=tracer_provider)
    run = _Run(
        client, model=model, tools=tools, quotas=quotas or AgentQuotas(), guard=guard, tracer=tracer
    )
    if system:
        run.messages.append({"role": "system", "content": system})
    run.messages.append({"role": "user", "content": task})
    with tracer.start_as_current_span("agent.run") as span:
        span.set_attribute("agent.model", model or "")
        span.set_attribute("agent.tools", [t.name for t in tools])
        try:
            answer, reason = await run.loop()
        except _Stop as stop:
            answer, reason = "", stop.reason
        span.set_attribute("agent.finish_reason", reason)
        span.set_attribute("agent.steps", len([s for s in run.steps if s.kind == "model"]))
    if answer:
        run.messages.append({"role": "assistant", "content": answer})
    return AgentResult(
        answer=answer,
        finish_reason=reason,
        steps=run.steps,
        messages=run.messages,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
        tool_calls=run.tool_calls,
        ms=(time.monotonic() - run.started) * 1000,
    )
