"""One request through the gateway: template, input safety, cache, route,
call (with fallbacks), output safety, citations, cost and metrics.

The HTTP endpoints only translate between OpenAI's bodies and
:class:`Prepared` / :class:`Answer`; everything here is plain Python.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from llmline.gateway import observe, rag
from llmline.gateway.caching import ExactCache, SemanticCache, request_key
from llmline.gateway.engine import Engine, LiveDeployment
from llmline.gateway.errors import BackendError, InvalidRequestError, RateLimitError
from llmline.gateway.protocol.extensions import Citation, LlmlineInfo, SafetyAttributes
from llmline.gateway.providers import GenerationChunk, GenerationOutput, GenerationRequest
from llmline.gateway.shadow import compare_shadow

if TYPE_CHECKING:
    from llmline.gateway.config import GatewaySettings
    from llmline.gateway.metrics import GatewayMetrics
    from llmline.gateway.safety import ScanContext
    from llmline.guard.guardrails import DirectionGuard, Guardrails
    from llmline.guard.keys import ApiKeyInfo
    from llmline.guard.quota import Lease, Quota
    from llmline.monitoring.requestlog import RequestLog
    from llmline.settings import Settings

__all__ = ["Answer", "Caller", "Prepared", "Service", "aclose", "new_request_id"]

log = logging.getLogger("llmline.gateway")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the API key's scope (a hash, never the key) and the
    ``user`` field; caches and sticky routing never mix two scopes."""

    key_scope: str | None = None
    user: str | None = None
    key: ApiKeyInfo | None = None  # the verified API key, when auth is on

    @classmethod
    def from_authorization(cls, header: str | None, user: str | None = None) -> Caller:
        token = (header or "").removeprefix("Bearer ").strip()
        scope = hashlib.sha256(token.encode()).hexdigest()[:16] if token else None
        return cls(scope, user)


@dataclass
class Prepared:
    live: LiveDeployment
    request: GenerationRequest
    question: str
    prompt_version: str | None
    caller: Caller
    cache_payload: dict[str, Any] | None  # None: not cacheable
    use_cache: bool = True
    started: float = field(default_factory=time.perf_counter)
    input_safety: SafetyAttributes = field(default_factory=SafetyAttributes)
    shadow_target: str | None = None  # set by routing (shadow strategy)
    vector: Any = None  # the question's embedding, once the semantic cache computed it
    endpoint: str = "chat"
    stream: bool = False
    lease: Lease | None = None
    # What a stream has sent so far: accounted even when the stream fails.
    partial: GenerationOutput | None = None
    partial_target: str | None = None
    accounted: bool = False
    grounding: rag.Grounding | None = None  # what a kind: rag deployment retrieved
    trace: observe.RequestTrace = field(default_factory=observe.current_trace)  # its spans

    @property
    def request_id(self) -> str:
        return self.request.request_id


@dataclass
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    target: str | None
    route_reason: str
    cache: str = "miss"
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    safety: SafetyAttributes = field(default_factory=SafetyAttributes)
    citations: list[Citation] = field(default_factory=list)
    tool_calls: tuple[Any, ...] = ()  # OpenAI-format calls the model made (tools requests)

    def info(self, prepared: Prepared) -> LlmlineInfo:
        return LlmlineInfo(
            deployment=prepared.live.name,
            model_version=self.target,
            route_reason=self.route_reason,
            prompt_version=prepared.prompt_version,
            cache=self.cache,
            latency_ms=round(self.latency_ms, 3),
            ttft_ms=None if self.ttft_ms is None else round(self.ttft_ms, 3),
            usage=self.usage(),
            cost_usd=self.cost_usd,
            request_id=prepared.request_id,
            grounding=prepared.grounding.info() if prepared.grounding else None,
        )

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def new_request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class Service:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        metrics: GatewayMetrics,
        guard: Guardrails,
        cache: ExactCache,
        semantic: SemanticCache | None,
        quota: Quota | None = None,
        requestlog: RequestLog | None = None,
        observer: observe.Observer | None = None,
    ) -> None:
        from llmline.guard.limits import MemoryLedger, MemoryRateLimiter
        from llmline.guard.quota import Quota

        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.guard = guard
        self.cache = cache
        self.semantic = semantic
        self.quota = quota or Quota(MemoryRateLimiter(), MemoryLedger())
        self.requestlog = requestlog
        self.observer = observer or observe.Observer(metrics=metrics, requestlog=requestlog)
        self._background: set[asyncio.Task[None]] = set()

    @property
    def gateway(self) -> GatewaySettings:
        return self.settings.gateway

    def max_tokens(self, requested: int | None) -> int:
        cap = self.gateway.max_tokens_cap
        if requested is not None and requested > cap:
            raise InvalidRequestError(
                f"max_tokens is {requested}; this gateway allows at most {cap}",
                param="max_tokens",
                code="max_tokens_exceeded",
            )
        return requested or min(self.gateway.default_max_tokens, cap)

    # -- the non-streaming path ------------------------------------------------

    async def answer(self, prepared: Prepared) -> Answer:
        live = prepared.live
        self.metrics.in_flight.labels(live.name).inc()
        try:
            await self._admit(prepared)
            answer = await self._answer(prepared)
            await self._account(prepared, answer)
            return answer
        except BaseException as exc:
            await self._account(prepared, None, exc)
            raise
        finally:
            self.metrics.in_flight.labels(live.name).dec()

    async def _answer(self, prepared: Prepared) -> Answer:
        prepared.input_safety = await self._check_input(prepared)
        if prepared.input_safety.blocked:
            return self._finish(prepared, _blocked_input(prepared))
        cached = await self._lookup(prepared)
        if cached is not None:
            return self._finish(prepared, cached)
        refusal = await rag.ground(prepared)  # kind: rag: retrieve, or refuse ungrounded
        if refusal is not None:
            return self._finish(prepared, refusal)
        output, target, reason = await self._call(prepared)
        answer = await self._post_process(prepared, output, target, reason)
        await self._store(prepared, answer)
        return self._finish(prepared, answer)

    # -- quotas and accounting -------------------------------------------------

    async def _admit(self, prepared: Prepared) -> None:
        from llmline.guard.quota import Limits, estimate_tokens

        parties = [Limits.of_deployment(prepared.live.name, prepared.live.spec.limits)]
        if prepared.caller.key is not None:
            parties.insert(0, Limits.of_key(prepared.caller.key))
        request = prepared.request
        text = request.prompt or "".join(str(m["content"]) for m in request.messages or ())
        tokens = estimate_tokens(text) + request.max_tokens
        prepared.lease = await self.quota.admit(
            parties, request_id=prepared.request_id, tokens=tokens, stream=prepared.stream
        )

    async def _account(
        self, prepared: Prepared, answer: Answer | None, error: BaseException | None = None
    ) -> None:
        """Log the request (journal first) and settle its quotas: once."""
        if prepared.accounted:
            return
        prepared.accounted = True
        record = self._record(prepared, answer, error)
        self.observer.finish(prepared, record)  # trace id, JSON log line, request log
        if prepared.lease is not None:
            tokens = record.prompt_tokens + record.completion_tokens
            try:
                await prepared.lease.settle(tokens=tokens, cost_usd=record.cost_usd)
            except Exception:  # the journal has it: replayed into the ledger at restart
                log.exception("request %s: settling quotas failed", prepared.request_id)

    def _record(
        self, prepared: Prepared, answer: Answer | None, error: BaseException | None
    ) -> Any:
        from llmline.monitoring.requestlog import RequestRecord

        caller, lease = prepared.caller, prepared.lease
        record = RequestRecord(
            request_id=prepared.request_id,
            endpoint=prepared.endpoint,
            status=200 if error is None else getattr(error, "status", 500),
            key_id=caller.key.key_id if caller.key is not None else None,
            user=caller.user,
            deployment=prepared.live.name,
            prompt_version=prepared.prompt_version,
            stream=prepared.stream,
            input_text=prepared.question,
            charges=[scope for _, scope, _ in lease.budgets] if lease is not None else [],
            error=None if error is None else (str(error) or type(error).__name__)[:500],
            latency_ms=(time.perf_counter() - prepared.started) * 1000,
        )
        safety: dict[str, Any] = {"input": prepared.input_safety.model_dump(exclude_defaults=True)}
        if answer is not None:
            record.model_version, record.route_reason = answer.target, answer.route_reason
            record.finish_reason, record.cache = answer.finish_reason, answer.cache
            record.prompt_tokens = answer.prompt_tokens
            record.completion_tokens = answer.completion_tokens
            record.cost_usd, record.ttft_ms = answer.cost_usd, answer.ttft_ms
            record.output_text = answer.text
            safety["output"] = answer.safety.model_dump(exclude_defaults=True)
        elif prepared.partial is not None:  # a stream cut short: what it sent counts
            partial = prepared.partial
            record.model_version = prepared.partial_target
            record.completion_tokens = partial.completion_tokens
            record.prompt_tokens = partial.prompt_tokens
            record.output_text = partial.text
            record.cost_usd = self._cost(
                prepared.partial_target or "",
                partial.prompt_tokens,
                partial.completion_tokens,
                record.latency_ms / 1000,
            )
        if prepared.grounding is not None:
            safety["grounding"] = prepared.grounding.info()
        record.safety = safety
        return record

    async def _call(self, prepared: Prepared) -> tuple[GenerationOutput, str, str]:
        error: tuple[str, BackendError] | None = None
        for target, planned in self._plan(prepared):
            reason = _reason(planned, error)
            started = await self._begin(prepared, target)
            try:
                with self.engine.using(target) as provider, observe.backend(prepared, target):
                    self._check_prompt_size(provider, prepared)
                    output = await provider.generate(prepared.request)
                    observe.output(prepared, output, target)
            except BackendError as exc:
                error = await self._failed(prepared, target, started, exc)
                continue
            except BaseException:
                await self._observe(prepared.live, target, started, ok=True)
                raise
            await self._observe(prepared.live, target, started, ok=True)
            self._shadow(prepared, target, output.text)
            return output, target, reason
        assert error is not None
        raise error[1]

    def _plan(self, prepared: Prepared) -> list[tuple[str, str]]:
        """``(target, reason)``: the routed target, then fallbacks in order."""
        from llmline.gateway.routing import RouteContext

        live = prepared.live
        span = prepared.trace.start("routing")
        context = RouteContext(prepared.request_id, self._sticky_key(prepared))
        decision = live.router.choose(context, self.engine.healthy)
        observe.routed(prepared, span, decision)
        prepared.shadow_target = decision.shadow
        rest = live.router.fallbacks(decision.target, self.engine.healthy)
        return [(decision.target, decision.reason)] + [(t, "fallback") for t in rest]

    async def _begin(self, prepared: Prepared, target: str) -> float:
        """Wait for a loading target, count it in flight; the start time."""
        await self.engine.ready(target, self.gateway.load_timeout_s)
        prepared.live.router.started(target)
        return time.perf_counter()

    async def _failed(
        self, prepared: Prepared, target: str, started: float, exc: BackendError
    ) -> tuple[str, BackendError]:
        await self._observe(prepared.live, target, started, ok=False)
        self.metrics.errors.labels(type(exc).__name__).inc()
        return target, exc

    def _sticky_key(self, prepared: Prepared) -> str | None:
        sticky = prepared.live.spec.sticky
        if sticky == "user":
            return prepared.caller.user
        if sticky == "key":
            return prepared.caller.key_scope
        return None

    def _check_prompt_size(self, provider: Any, prepared: Prepared) -> None:
        request = prepared.request
        text = request.prompt or "\n".join(str(m["content"]) for m in request.messages or ())
        limit = self.gateway.max_prompt_tokens
        # Cheap upper bound first: counting a huge text with a tokenizer is itself costly.
        if len(text) > limit * 16 or provider.count_tokens(text) > limit:
            raise InvalidRequestError(
                f"the prompt is longer than this gateway's limit of {limit} tokens",
                param="messages" if request.messages is not None else "prompt",
                code="context_length_exceeded",
            )

    async def _observe(
        self, live: LiveDeployment, target: str, started: float, *, ok: bool
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        transition = live.router.finished(target, latency_ms=latency_ms, ok=ok)
        if transition is None:
            return
        from llmline.gateway.deployments.spec import DeploymentState

        state = DeploymentState(
            live=transition.live,
            phase=transition.phase,
            previous=live.state.live,
            reason=transition.reason,
        )
        log.warning("deployment %s: %s", live.name, transition.reason)
        action = "auto-promote" if transition.phase == "promoted" else "auto-rollback"
        await self.engine.persist(live, state, action)

    # -- shadow traffic ----------------------------------------------------------

    def _shadow(self, prepared: Prepared, served_by: str, served_text: str) -> None:
        target = prepared.shadow_target
        if not target or target == served_by:
            return
        task = asyncio.get_running_loop().create_task(
            compare_shadow(
                self.engine,
                self.metrics,
                prepared.live,
                prepared.request,
                target=target,
                served_text=served_text,
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for shadow calls still running (shutdown, tests)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- safety, citations, cost -------------------------------------------------

    def _guards(self, prepared: Prepared) -> tuple[DirectionGuard, DirectionGuard]:
        return self.guard.for_deployment(prepared.live.spec.guard)

    async def _check_input(self, prepared: Prepared) -> SafetyAttributes:
        guard = self._guards(prepared)[0]
        span = prepared.trace.start("guardrails.input")
        verdict, attributes = await guard.check(prepared.question, _context(prepared, "input"))
        observe.safety(prepared, span, attributes)
        if verdict.redacted:
            _redact_request(prepared, verdict.text)
        return attributes

    async def _post_process(
        self, prepared: Prepared, output: GenerationOutput, target: str, reason: str
    ) -> Answer:
        guard = self._guards(prepared)[1]
        span = prepared.trace.start("guardrails.output")
        verdict, safety = await guard.check(output.text, _context(prepared, "output"))
        observe.safety(prepared, span, safety)
        text, finish = verdict.text, output.finish_reason
        if safety.blocked:
            text, finish = "", "content_filter"
        answer = Answer(
            text=text,
            finish_reason=finish,
            prompt_tokens=output.prompt_tokens,
            completion_tokens=output.completion_tokens,
            target=target,
            route_reason=reason,
            ttft_ms=output.ttft_ms,
            safety=safety,
            tool_calls=() if safety.blocked else output.tool_calls,
        )
        span = prepared.trace.start("postprocess")
        answer.citations = self._citations(prepared, text)
        seconds = time.perf_counter() - prepared.started
        answer.cost_usd = self._cost(
            target, answer.prompt_tokens, answer.completion_tokens, seconds
        )
        observe.postprocessed(prepared, span, answer)
        return answer

    def _citations(self, prepared: Prepared, text: str) -> list[Citation]:
        grounded = rag.citations(prepared, text)
        if grounded is not None:
            return grounded
        index = prepared.live.citations
        if index is None or not text:
            return []
        return index.find(text)

    def _cost(
        self, target: str, prompt_tokens: int, completion_tokens: int, seconds: float
    ) -> float:
        from llmline.gateway.providers import split_target

        if not target:
            return 0.0
        scheme, name = split_target(target)
        if scheme == "upstream" and name in self.settings.upstreams:
            up = self.settings.upstreams[name]
            usd = prompt_tokens * up.input_usd_per_1k + completion_tokens * up.output_usd_per_1k
            return round(usd / 1000, 8)
        if scheme == "embedded":
            # Self-hosted: the request's share of the machine-hour while it ran.
            share = seconds / max(1, self.engine.in_flight(target) + 1)
            return round(self.gateway.embedded.usd_per_hour * share / 3600, 8)
        return 0.0

    # -- caching -------------------------------------------------------------------

    def _cache_scope(self, prepared: Prepared) -> str:
        return f"{prepared.live.scope}:{prepared.caller.key_scope or '-'}"

    async def _lookup(self, prepared: Prepared) -> Answer | None:
        policy = prepared.live.spec.cache
        if prepared.cache_payload is None or not prepared.use_cache:
            return None
        hit: dict[str, Any] | None = None
        kind = "hit"
        span = prepared.trace.start("cache.lookup")
        if policy.exact:
            hit = await self.cache.get(
                request_key(self._cache_scope(prepared), prepared.cache_payload)
            )
        if hit is None and policy.semantic and self.semantic is not None:
            vector = await asyncio.to_thread(self.semantic.embed, prepared.question)
            found = self.semantic.lookup(self._cache_scope(prepared), vector, policy.similarity)
            hit, kind = (found.value, "semantic") if found is not None else (None, kind)
            prepared.vector = vector
        self.metrics.cache.labels(prepared.live.name, kind if hit else "miss").inc()
        prepared.trace.end(span, {"llmline.cache.result": kind if hit else "miss"})
        if hit is None:
            return None
        return Answer(
            text=hit["text"],
            finish_reason=hit["finish_reason"],
            prompt_tokens=hit["prompt_tokens"],
            completion_tokens=hit["completion_tokens"],
            target=hit["target"],
            route_reason=f"cache {kind}: answered earlier by {hit['target']}",
            cache=kind,
            safety=SafetyAttributes.model_validate(hit["safety"]),
            citations=[Citation.model_validate(c) for c in hit["citations"]],
        )

    async def _store(self, prepared: Prepared, answer: Answer) -> None:
        policy = prepared.live.spec.cache
        if prepared.cache_payload is None or answer.finish_reason == "content_filter":
            return
        value = {
            "text": answer.text,
            "finish_reason": answer.finish_reason,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "target": answer.target,
            "safety": answer.safety.model_dump(),
            "citations": [c.model_dump() for c in answer.citations],
        }
        scope = self._cache_scope(prepared)
        if policy.exact:
            await self.cache.set(request_key(scope, prepared.cache_payload), value, policy.ttl_s)
        if policy.semantic and self.semantic is not None:
            vector = prepared.vector
            if vector is None:
                vector = await asyncio.to_thread(self.semantic.embed, prepared.question)
            self.semantic.store(scope, vector, value, policy.ttl_s)

    # -- accounting ------------------------------------------------------------------

    def _finish(self, prepared: Prepared, answer: Answer) -> Answer:
        answer.latency_ms = (time.perf_counter() - prepared.started) * 1000
        live, version = prepared.live.name, answer.target or "none"
        route = answer.route_reason.split(":")[0]
        m = self.metrics
        m.requests.labels(live, version, route, answer.finish_reason).inc()
        m.latency.labels(live, version, route).observe(answer.latency_ms / 1000)
        if answer.ttft_ms is not None:
            m.ttft.labels(live, version).observe(answer.ttft_ms / 1000)
        m.tokens.labels(live, version, "in").inc(answer.prompt_tokens)
        m.tokens.labels(live, version, "out").inc(answer.completion_tokens)
        m.cost.labels(live, version).inc(answer.cost_usd)
        for stage, attrs in (("input", prepared.input_safety), ("output", answer.safety)):
            if attrs.blocked:
                for category in attrs.categories or ["unknown"]:
                    m.blocked.labels(live, stage, category).inc()
        return answer

    # -- the streaming path ------------------------------------------------------------

    async def answer_stream(self, prepared: Prepared) -> AsyncIterator[str | Answer]:
        """Text deltas as they are generated, then the final :class:`Answer`."""
        live = prepared.live
        prepared.stream = True
        self.metrics.in_flight.labels(live.name).inc()
        error: BaseException | None = None
        try:
            await self._admit(prepared)
            prepared.input_safety = await self._check_input(prepared)
            if prepared.input_safety.blocked:
                yield await self._accounted(prepared, _blocked_input(prepared))
                return
            cached = await self._lookup(prepared)
            if cached is not None:
                yield cached.text
                yield await self._accounted(prepared, cached)
                return
            refusal = await rag.ground(prepared)
            if refusal is not None:
                yield refusal.text
                yield await self._accounted(prepared, refusal)
                return
            async for item in self._stream_call(prepared):
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.metrics.in_flight.labels(live.name).dec()
            # A stream that failed or that the client left: what it sent is accounted.
            await self._account(prepared, None, error or ConnectionAbortedError("client left"))

    async def _accounted(self, prepared: Prepared, answer: Answer) -> Answer:
        """Finish and account ``answer`` before the client gets its end."""
        answer = self._finish(prepared, answer)
        await self._account(prepared, answer)
        return answer

    async def _stream_call(self, prepared: Prepared) -> AsyncIterator[str | Answer]:
        error: tuple[str, BackendError] | None = None
        for target, planned in self._plan(prepared):
            reason = _reason(planned, error)
            started = await self._begin(prepared, target)
            sent = False
            try:
                with self.engine.using(target) as provider, observe.backend(prepared, target):
                    self._check_prompt_size(provider, prepared)
                    chunks = provider.stream(prepared.request)
                    try:
                        async for item in self._relay(prepared, chunks, target, reason, started):
                            sent = sent or isinstance(item, str)
                            yield item
                    finally:
                        await aclose(chunks)
            except BackendError as exc:
                error = await self._failed(prepared, target, started, exc)
                if sent:  # the client already has part of this answer: no fallback now
                    raise
                continue
            except BaseException:
                await self._observe(prepared.live, target, started, ok=True)
                raise
            await self._observe(prepared.live, target, started, ok=True)
            return
        assert error is not None
        raise error[1]

    async def _relay(
        self,
        prepared: Prepared,
        chunks: AsyncIterator[GenerationChunk],
        target: str,
        reason: str,
        started: float,
    ) -> AsyncIterator[str | Answer]:
        guard = self._guards(prepared)[1]
        # With redacting output scanners, the last HOLDBACK characters are
        # held back (a finding may still be growing there) and what is sent
        # is the redacted text; otherwise text is sent as it comes.
        relay = _StreamRelay(prepared, target, started, buffered=guard.redacts)
        prepared.partial_target = target
        generation = prepared.trace.start("generation", parent=prepared.trace.backend)
        async for chunk in chunks:
            if chunk.text:
                relay.add(chunk.text)
                if relay.due(chunk.text):
                    self._check_budget(prepared, relay)
                    verdict, _ = await guard.check(relay.text, _context(prepared, "output"))
                    if verdict.blocked:
                        relay.final = GenerationChunk("", "content_filter", None, None)
                        break
                    relay.checked(verdict.text)
                piece = relay.ready()
                if piece:
                    yield piece
            if chunk.finish_reason is not None:
                relay.final = chunk
        output = relay.output()
        observe.generated(prepared, generation, output, target, started)
        answer = await self._post_process(prepared, output, target, reason)
        if output.finish_reason == "content_filter":
            answer = replace(answer, finish_reason="content_filter")
        elif relay.buffered and answer.text.startswith(relay.sent):
            rest = answer.text[len(relay.sent) :]
            if rest:
                yield rest
        self._shadow(prepared, target, output.text)
        await self._store(prepared, answer)
        yield await self._accounted(prepared, answer)

    def _check_budget(self, prepared: Prepared, relay: _StreamRelay) -> None:
        """End a stream whose cost so far exhausts a budget (an error event)."""
        lease = prepared.lease
        if lease is None or not lease.budgets:
            return
        output = relay.output()
        prepared.partial = output
        seconds = time.perf_counter() - prepared.started
        running = self._cost(relay.target, output.prompt_tokens, output.completion_tokens, seconds)
        from llmline.guard.quota import BUDGET_ADJECTIVE

        exhausted = lease.budget_left(running)
        if exhausted is not None:
            limits, budget = exhausted
            raise RateLimitError(
                f"{limits.label} reached its {BUDGET_ADJECTIVE[limits.budget_period]} budget of "
                f"${budget:g} "
                "during this response; the stream ends here",
                retry_after_s=60.0,
                code="budget_exceeded",
            )


#: Characters of a redacted stream held back: longer than an e-mail address,
#: a spaced card number or an IBAN, so a finding is whole before it is sent.
HOLDBACK = 64


class _StreamRelay:
    """A stream's text: what was generated, checked and sent."""

    def __init__(self, prepared: Prepared, target: str, started: float, *, buffered: bool):
        self.prepared = prepared
        self.target = target
        self.started = started
        self.buffered = buffered
        self.text = ""
        self.sent = ""
        self.safe = ""  # the checked (possibly redacted) text, when buffered
        self.checked_len = 0
        self.pieces = 0
        self.ttft_ms: float | None = None
        self.final: GenerationChunk | None = None

    def add(self, piece: str) -> None:
        self.ttft_ms = self.ttft_ms or (time.perf_counter() - self.started) * 1000
        self.text += piece
        self.pieces += 1
        self.prepared.partial = self.output()

    def due(self, piece: str) -> bool:
        """Scan now: at a sentence end, or when enough text waits unsent."""
        backlog = len(self.text) - self.checked_len
        return backlog > 0 and (_sentence_end(piece) or (self.buffered and backlog >= 32))

    def checked(self, safe_text: str) -> None:
        self.checked_len = len(self.text)
        self.safe = safe_text

    def ready(self) -> str:
        """Text that may be sent now."""
        if not self.buffered:
            piece, self.sent = self.text[len(self.sent) :], self.text
            return piece
        source = self.safe
        # Up to a word boundary before the held-back tail.
        cut = source.rfind(" ", 0, max(0, len(source) - HOLDBACK)) + 1
        if cut <= len(self.sent) or not source.startswith(self.sent):
            return ""  # nothing new, or a redaction changed sent text: the rest goes at the end
        piece, self.sent = source[len(self.sent) : cut], source[:cut]
        return piece

    def output(self) -> GenerationOutput:
        final = self.final
        completion = (final.completion_tokens if final else None) or self.pieces
        return GenerationOutput(
            text=self.text,
            finish_reason=(final.finish_reason if final else "stop") or "stop",
            prompt_tokens=(final.prompt_tokens if final else None) or 0,
            completion_tokens=completion,
            ttft_ms=self.ttft_ms,
        )


def _redact_request(prepared: Prepared, redacted_question: str) -> None:
    """Send the model the redacted question, wherever the template put it."""
    question, request = prepared.question, prepared.request
    if request.prompt is not None:
        request = replace(request, prompt=request.prompt.replace(question, redacted_question))
    if request.messages is not None:
        messages = tuple(
            {**m, "content": str(m["content"]).replace(question, redacted_question)}
            if isinstance(m.get("content"), str)
            else m
            for m in request.messages
        )
        request = replace(request, messages=messages)
    prepared.request = request
    prepared.question = redacted_question


def _reason(planned: str, error: tuple[str, BackendError] | None) -> str:
    return planned if error is None else f"fallback after {error[0]} failed ({error[1]})"


async def aclose(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator early (cancels generation in the provider)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _context(prepared: Prepared, direction: Literal["input", "output"]) -> ScanContext:
    from llmline.gateway.safety import ScanContext

    return ScanContext(
        direction=direction,
        deployment=prepared.live.name,
        request_id=prepared.request_id,
        prompt=prepared.question if direction == "output" else None,
    )


def _sentence_end(piece: str) -> bool:
    return any(ch in piece for ch in ".!?\n")


def _blocked_input(prepared: Prepared) -> Answer:
    return Answer(
        text="",
        finish_reason="content_filter",
        prompt_tokens=0,
        completion_tokens=0,
        target=None,
        route_reason="input blocked by safety policy",
        cache="off",
        safety=SafetyAttributes(),
    )
