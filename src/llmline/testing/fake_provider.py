"""A fast, deterministic provider for tests: ``fake:NAME[?option=value&...]``.

It answers ``"<NAME> says: <words of the last user message>"`` cut to
``max_tokens`` words (one word = one token), so tests can tell which target
served a request.  Options: ``delay_ms`` (per token), ``fail_rate`` (0..1,
seeded by ``seed``), ``fail`` (``error``, ``timeout``, ``unavailable``),
``text`` (a fixed answer), ``load`` (``fail`` makes start() fail),
``script`` (a JSON list of replies, one per turn: the request's number of
assistant messages picks one, the last repeats; a string is a text answer,
``{"tool": NAME, "arguments": {...}}`` or a list of those are tool calls).
It goes through the same interface as real backends; only the model's
output is fake.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from llmline.gateway.errors import BackendError, BackendTimeout, BackendUnavailable
from llmline.gateway.providers.base import (
    BackendHealth,
    FinishReason,
    GenerationChunk,
    GenerationOutput,
    GenerationRequest,
    ProviderContext,
    split_target,
)

__all__ = ["FakeProvider", "create"]


class FakeProvider:
    def __init__(self, target: str, options: dict[str, str]) -> None:
        self.target = target
        self.name = split_target(target)[1].partition("?")[0]
        self.delay_s = float(options.get("delay_ms", "0")) / 1000
        self.fail_rate = float(options.get("fail_rate", "0"))
        self.fail = options.get("fail")
        self.text = options.get("text")
        self.script: list[Any] | None = (
            json.loads(options["script"]) if "script" in options else None
        )
        self._load_fails = options.get("load") == "fail"
        self._rng = random.Random(int(options.get("seed", "0")))
        self._health = BackendHealth("loading")
        self.calls = 0

    async def start(self) -> None:
        if self._load_fails:
            self._health = BackendHealth("failed", f"{self.name}: weights could not be loaded")
        else:
            self._health = BackendHealth("ready")

    async def close(self) -> None:
        self._health = BackendHealth("loading", "closed")

    def health(self) -> BackendHealth:
        return self._health

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _answer(self, request: GenerationRequest) -> list[str]:
        if self.text is not None:
            words = self.text.split()
        else:
            words = [f"{self.name}", "says:", *_question(request).split()]
        return words[: request.max_tokens]

    def _prompt_tokens(self, request: GenerationRequest) -> int:
        if request.prompt is not None:
            return self.count_tokens(request.prompt)
        return sum(self.count_tokens(str(m.get("content") or "")) for m in request.messages or ())

    async def _maybe_fail(self) -> None:
        self.calls += 1
        if not self._health.ready:
            raise BackendUnavailable(f"{self.target} is not ready: {self._health.detail}")
        failing = self.fail or ("error" if self._rng.random() < self.fail_rate else None)
        if failing == "timeout":
            raise BackendTimeout(f"{self.target} timed out")
        if failing == "unavailable":
            raise BackendUnavailable(f"{self.target} is unavailable")
        if failing:
            raise BackendError(f"{self.target} failed")

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        await self._maybe_fail()
        scripted = self._scripted(request)
        if isinstance(scripted, GenerationOutput):
            return scripted
        words = scripted if scripted is not None else self._answer(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s * len(words))
        reason: FinishReason = "length" if len(words) == request.max_tokens else "stop"
        return GenerationOutput(" ".join(words), reason, self._prompt_tokens(request), len(words))

    def _scripted(self, request: GenerationRequest) -> GenerationOutput | list[str] | None:
        """This turn's scripted reply: words of a text answer, or tool calls."""
        if not self.script:
            return None
        turn = sum(1 for m in request.messages or () if m.get("role") == "assistant")
        reply = self.script[min(turn, len(self.script) - 1)]
        if isinstance(reply, str):
            return reply.split()[: request.max_tokens]
        wanted = reply if isinstance(reply, list) else [reply]
        arguments = [json.dumps(c.get("arguments", {})) for c in wanted]
        calls = tuple(
            {
                "id": f"call_{turn}_{i}",
                "type": "function",
                "function": {"name": c["tool"], "arguments": arguments[i]},
            }
            for i, c in enumerate(wanted)
        )
        tokens = sum(len(a.split()) + 1 for a in arguments)
        prompt = self._prompt_tokens(request)
        return GenerationOutput("", "tool_calls", prompt, tokens, tool_calls=calls)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        await self._maybe_fail()
        words = self._answer(request)
        for i, word in enumerate(words):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield GenerationChunk(word if i == 0 else " " + word)
        reason: FinishReason = "length" if len(words) == request.max_tokens else "stop"
        yield GenerationChunk("", reason, self._prompt_tokens(request), len(words))


def _question(request: GenerationRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    users = [m for m in request.messages or () if m.get("role") == "user"]
    return str(users[-1].get("content") or "") if users else ""


def create(target: str, context: ProviderContext) -> FakeProvider:
    query = split_target(target)[1].partition("?")[2]
    return FakeProvider(target, dict(parse_qsl(query)))
