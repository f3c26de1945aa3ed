"""The embedded provider: a registry model served in-process, with dynamic
batching (see :mod:`llmline.gateway.providers._batching`).

The target is a registry reference, bare (``python-faq-lora@2``) or with
its scheme (``embedded:python-faq-lora@2``).  ``start()`` loads the weights
in a worker thread, so the gateway keeps serving its other backends
meanwhile; a load failure shows in :meth:`EmbeddedProvider.health` and is
not raised.  Options (``device``, ``max_batch_size``, ``batch_wait_ms``)
come from the provider's options, with defaults from the workspace's
``gateway.embedded`` settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llmline.errors import ConfigError
from llmline.gateway.config import EmbeddedSettings
from llmline.gateway.errors import BackendUnavailable, InvalidRequestError
from llmline.gateway.providers._batching import (
    BatchEngine,
    BatchStats,
    Row,
    RowDone,
    RowEvent,
    SamplingParams,
)
from llmline.gateway.providers.base import (
    BackendHealth,
    GenerationChunk,
    GenerationOutput,
    GenerationRequest,
    ProviderContext,
    split_target,
)
from llmline.gateway.providers.tool_prompting import (
    offered_tools,
    parse_tool_calls,
    render_tool_prompt,
)

if TYPE_CHECKING:
    from llmline.models import LoadedModel
    from llmline.workspace import Workspace

__all__ = ["EmbeddedProvider", "create"]


class EmbeddedProvider:
    """Serves one registry model version from this process."""

    def __init__(self, target: str, workspace: Workspace, settings: EmbeddedSettings) -> None:
        self.target = target
        self.ref = split_target(target)[1]
        self.settings = settings
        self._workspace = workspace
        self._health = BackendHealth("loading", f"{self.ref} not started")
        self._loaded: LoadedModel | None = None
        self._engine: BatchEngine | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self._engine is not None or self._closed:
            return
        self._health = BackendHealth("loading", f"loading {self.ref}")
        try:
            loaded, engine = await asyncio.to_thread(self._load)
        except Exception as exc:  # reported, not raised: other backends keep serving
            self._health = BackendHealth("failed", f"{self.ref}: {_one_line(exc)}")
            return
        if self._closed:  # close() ran while the weights were loading
            await asyncio.to_thread(engine.close)
            return
        self._loaded, self._engine = loaded, engine
        self._health = BackendHealth("ready", f"{loaded.info.ref} on {loaded.device}")

    def _load(self) -> tuple[LoadedModel, BatchEngine]:
        from llmline.models import load_model

        loaded = load_model(self._workspace, self.ref, device=self.settings.device)
        engine = BatchEngine(
            loaded.model,
            loaded.tokenizer,
            max_batch_size=self.settings.max_batch_size,
            batch_wait_s=self.settings.batch_wait_ms / 1000,
            name=self.target,
        )
        return loaded, engine

    async def close(self) -> None:
        """Stop the decode thread (waiting for it) and release the weights."""
        self._closed = True
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.close)
        self._loaded = None
        self._health = BackendHealth("failed", f"{self.ref}: closed")

    def health(self) -> BackendHealth:
        return self._health

    # -- introspection (tests, metrics) ----------------------------------------------
    @property
    def active_requests(self) -> int:
        """Requests queued or being decoded."""
        return self._engine.active_requests if self._engine is not None else 0

    @property
    def stats(self) -> BatchStats:
        return self._engine.stats if self._engine is not None else BatchStats()

    @property
    def decode_thread_alive(self) -> bool:
        return self._engine is not None and self._engine.thread.is_alive()

    # -- serving -----------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        engine, loaded = self._ready()
        with engine.tokenizer_lock:
            return len(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        # Tools are prompt-based here (see tool_prompting): offered in the prompt,
        # read back from the text; an answer that is no valid call stays text.
        tools = offered_tools(request.extra)
        async for event in self._events(request, tools):
            if isinstance(event, RowDone):
                names = [str(t["function"]["name"]) for t in tools]
                answer = parse_tool_calls(event.text, names) if tools else None
                return GenerationOutput(
                    answer.text if answer else event.text,
                    "tool_calls" if answer and answer.tool_calls else event.finish_reason,
                    event.prompt_tokens,
                    event.completion_tokens,
                    event.ttft_ms,
                    tool_calls=answer.tool_calls if answer else (),
                )
        raise AssertionError("unreachable: _events ends with RowDone or raises")

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        # The gateway refuses stream+tools: a streamed answer is never read for calls.
        async for event in self._events(request, ()):
            if isinstance(event, RowDone):
                yield GenerationChunk(
                    "", event.finish_reason, event.prompt_tokens, event.completion_tokens
                )
            else:
                yield GenerationChunk(event)

    async def _events(
        self, request: GenerationRequest, tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[str | RowDone]:
        """The row's events as they are decoded; leaving early (a cancelled
        task, a closed generator) takes the row out of the decode loop."""
        engine, loaded = self._ready()
        prompt_ids, params = self._encode(request, engine, loaded, tools)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[RowEvent] = asyncio.Queue()
        row = Row(prompt_ids, params, sink=lambda event: None)
        row.sink = _threadsafe_sink(loop, events, row)
        engine.submit(row)
        finished = False
        try:
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    finished = True
                    raise event
                if isinstance(event, RowDone):
                    finished = True
                yield event
                if finished:
                    return
        finally:
            if not finished:
                engine.cancel(row)

    def _ready(self) -> tuple[BatchEngine, LoadedModel]:
        if self._engine is None or self._loaded is None:
            raise BackendUnavailable(f"{self.target} is not ready: {self._health.detail}")
        return self._engine, self._loaded

    def _encode(
        self,
        request: GenerationRequest,
        engine: BatchEngine,
        loaded: LoadedModel,
        tools: Sequence[dict[str, Any]] = (),
    ) -> tuple[list[int], SamplingParams]:
        _check_sampling(request)
        tokenizer = loaded.tokenizer
        templated = request.messages is not None and _has_template(tokenizer)
        with engine.tokenizer_lock:
            text = _prompt_text(tokenizer, request, tools)
            # A chat template already wrote the special tokens (BOS, turn markers).
            ids = list(tokenizer(text, add_special_tokens=not templated)["input_ids"])
        if not ids:
            bos = getattr(tokenizer, "bos_token_id", None)
            if bos is None:
                raise InvalidRequestError("the prompt is empty", param="prompt")
            ids = [int(bos)]
        max_tokens = request.max_tokens
        limit = getattr(loaded.model.config, "max_position_embeddings", None)
        if isinstance(limit, int):
            if len(ids) >= limit:
                raise InvalidRequestError(
                    f"the prompt is {len(ids)} tokens; {self.ref} takes at most {limit - 1}",
                    param="messages" if request.messages is not None else "prompt",
                    code="context_length_exceeded",
                )
            # Past the model's context the answer ends as if max_tokens were reached.
            max_tokens = min(max_tokens, limit - len(ids))
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop,
            seed=request.seed,
        )
        return ids, params


def _threadsafe_sink(
    loop: asyncio.AbstractEventLoop, events: asyncio.Queue[RowEvent], row: Row
) -> Callable[[RowEvent], None]:
    def sink(event: RowEvent) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            row.cancelled = True

    return sink


def _check_sampling(request: GenerationRequest) -> None:
    if request.max_tokens < 1:
        raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
    if request.temperature < 0:
        raise InvalidRequestError("temperature must be at least 0", param="temperature")
    if not 0 < request.top_p <= 1:
        raise InvalidRequestError("top_p must be in (0, 1]", param="top_p")


def _has_template(tokenizer: Any) -> bool:
    return getattr(tokenizer, "chat_template", None) is not None


def _prompt_text(
    tokenizer: Any, request: GenerationRequest, tools: Sequence[dict[str, Any]] = ()
) -> str:
    if request.prompt is not None:
        return request.prompt
    messages = [
        {**dict(m), "content": _content_text(m.get("content"))} for m in request.messages or ()
    ]
    if not _has_template(tokenizer) and not tools:
        return "\n".join(m["content"] for m in messages)
    try:
        if tools:
            template = _template(tokenizer) if _has_template(tokenizer) else None
            choice = request.extra.get("tool_choice")
            return render_tool_prompt(template, messages, tools, choice)
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
    except Exception as exc:  # jinja templates raise on roles they do not accept
        raise InvalidRequestError(
            f"the model's chat template rejected the messages: {_one_line(exc)}",
            param="messages",
        ) from exc


def _template(tokenizer: Any) -> Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], str]:
    def render(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return str(
            tokenizer.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=True
            )
        )

    return render


def _content_text(content: Any) -> str:
    """OpenAI content: a string, or a list of parts of which text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return str(content)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _settings(context: ProviderContext) -> EmbeddedSettings:
    """The workspace's ``gateway.embedded`` settings overridden by the options."""
    defaults = EmbeddedSettings()
    if context.workspace is not None:
        gateway = getattr(context.workspace.settings, "gateway", None)
        configured = getattr(gateway, "embedded", None)
        if isinstance(configured, EmbeddedSettings):
            defaults = configured
    try:
        return EmbeddedSettings.model_validate({**defaults.model_dump(), **context.options})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "options"
        raise ConfigError(f"embedded provider option {where}: {first['msg']}") from exc


def create(target: str, context: ProviderContext) -> EmbeddedProvider:
    """The provider for ``target`` (not started: call ``start()``)."""
    scheme, ref = split_target(target)
    if scheme != "embedded":
        raise ConfigError(f"the embedded provider cannot serve {target!r}")
    if not ref:
        raise ConfigError(f"{target!r} names no model: use NAME[@VERSION]")
    if context.workspace is None:
        raise ConfigError(f"{target}: the embedded provider needs a workspace (its registry)")
    return EmbeddedProvider(target, context.workspace, _settings(context))
