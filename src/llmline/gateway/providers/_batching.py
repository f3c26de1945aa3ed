"""Dynamic batching for the embedded provider.

One decode thread owns the model.  Requests arrive as :class:`Row` objects
on a queue; the thread takes up to ``max_batch_size`` of them (waiting up to
``batch_wait_s`` after the oldest arrived, so a lone request is not held
long), left-pads their prompts, runs one prefill forward, then one forward
per generated token with the KV cache.  Rows that finish or are cancelled
leave the batch (their KV-cache rows are dropped), so the remaining rows
stop paying for them; a batch whose rows are all gone ends early.  Requests
that arrive while a batch runs wait for the next one.

The thread never touches asyncio: each row carries a ``sink`` callable that
the provider binds to its event loop (``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from llmline.evaluation.generate import _as_list, _generation_config
from llmline.gateway.errors import BackendError, BackendUnavailable
from llmline.gateway.providers.base import FinishReason

__all__ = [
    "BatchEngine",
    "BatchStats",
    "Row",
    "RowDone",
    "RowEvent",
    "SamplingParams",
    "TextStream",
]


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class BatchStats:
    """Counters since the engine started (a snapshot; the engine keeps its own)."""

    batches_run: int = 0
    max_batch_seen: int = 0
    rows_finished: int = 0
    rows_cancelled: int = 0
    tokens_generated: int = 0


@dataclass(frozen=True)
class RowDone:
    """The last event of a row: its whole text and counts."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None


# What a row's sink receives: a text delta, the end, or the failure that ended it.
RowEvent = str | RowDone | BaseException


@dataclass(eq=False)  # identity semantics: rows are found in the queue by identity
class Row:
    prompt_ids: list[int]
    params: SamplingParams
    sink: Callable[[RowEvent], None]
    submitted: float = field(default_factory=time.perf_counter)
    # Set by any thread, read by the decode thread between steps.
    cancelled: bool = False


class TextStream:
    """The text of a growing list of token ids, released in pieces that are
    safe to send: never half a multi-byte character (the decoder shows it as
    U+FFFD until its last byte arrives) and never the start of a possible
    stop string (it may still turn out to be one, and stops are not sent)."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.text = ""
        self.stopped = False  # a stop string was found; ``text`` is cut before it
        self._sent = 0

    def add(self, token: int) -> str:
        """Append ``token``; returns the newly safe text (often "")."""
        self.ids.append(token)
        text = self._decode(self.ids)
        cut = _first_stop(text, self._stop)
        if cut is not None:
            self.text = text[:cut]
            self.stopped = True
            return ""
        self.text = text
        end = _safe_end(text, self._stop)
        if end <= self._sent:
            return ""
        delta = text[self._sent : end]
        self._sent = end
        return delta

    def rest(self) -> str:
        """Whatever of the final text has not been released yet."""
        delta = self.text[self._sent :]
        self._sent = len(self.text)
        return delta


def _first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(found) if found else None


def _safe_end(text: str, stop: tuple[str, ...]) -> int:
    end = len(text)
    while end > 0 and text[end - 1] == "\ufffd":
        end -= 1
    for s in stop:
        for k in range(min(len(s) - 1, end), 0, -1):
            if text.endswith(s[:k], 0, end):
                end -= k
                break
    return end


@dataclass(eq=False)
class _Live:
    """A row being decoded (decode thread only)."""

    row: Row
    text: TextStream
    generator: Any  # torch.Generator for sampled rows, None for greedy ones
    first_token_at: float | None = None

    def done(self, reason: FinishReason, completion_tokens: int) -> RowDone:
        ttft = None
        if self.first_token_at is not None:
            ttft = (self.first_token_at - self.row.submitted) * 1000
        return RowDone(self.text.text, reason, len(self.row.prompt_ids), completion_tokens, ttft)


class BatchEngine:
    """Owns the model and its decode thread; see the module docstring."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int,
        batch_wait_s: float,
        name: str = "embedded",
    ) -> None:
        import torch

        self._torch = torch
        self._model = model
        self._tokenizer = tokenizer
        self._device = torch.device(getattr(model, "device", "cpu"))
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.name = name
        config = _generation_config(model, tokenizer, 1)
        self.eos_ids = frozenset(_as_list(config.eos_token_id))
        self.pad_id = int(config.pad_token_id)
        self._cache_arg, self._keep_logits = _forward_arguments(model)
        # Finished rows leave the KV cache; cleared if this model's cache cannot drop rows
        # (they then stay in the batch, fed with padding, until it ends).
        self.drop_finished_rows = True
        # Tokenizers are shared with the event loop thread (count_tokens).
        self.tokenizer_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: deque[Row] = deque()
        self._running: list[_Live] = []
        self._closing = False
        self._stats = BatchStats()
        self._thread = threading.Thread(
            target=self._loop, name=f"llmline-decode-{name}", daemon=True
        )
        self._thread.start()

    # -- any thread ------------------------------------------------------------
    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def active_requests(self) -> int:
        """Rows queued or being decoded."""
        with self._cond:
            return len(self._queue) + len(self._running)

    @property
    def stats(self) -> BatchStats:
        with self._cond:
            return self._stats

    def submit(self, row: Row) -> None:
        with self._cond:
            if self._closing:
                raise BackendUnavailable(f"{self.name} is shut down")
            self._queue.append(row)
            self._cond.notify_all()

    def cancel(self, row: Row) -> None:
        """Stop working on ``row``: a queued row leaves now, a running one
        before the next decode step."""
        with self._cond:
            row.cancelled = True
            if row in self._queue:
                self._queue.remove(row)
                self._count(rows_cancelled=1)
            self._cond.notify_all()

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the decode thread; queued and running rows fail as unavailable."""
        with self._cond:
            self._closing = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for row in pending:
            row.sink(BackendUnavailable(f"{self.name} shut down before this request ran"))
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _count(self, **deltas: int) -> None:
        # Callers hold self._cond.
        values = {k: getattr(self._stats, k) + v for k, v in deltas.items()}
        self._stats = replace(self._stats, **values)

    # -- the decode thread -------------------------------------------------------
    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._run(batch)
            except Exception as exc:  # one bad batch must not stop the engine
                self._fail_running(BackendError(f"{self.name}: generation failed: {_line(exc)}"))
            # Rows still running here were stopped by close() mid-batch.
            self._fail_running(BackendUnavailable(f"{self.name} shut down during generation"))

    def _next_batch(self) -> list[_Live] | None:
        with self._cond:
            while True:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return None
                # Wait for company, counted from when the oldest row arrived.
                deadline = self._queue[0].submitted + self.batch_wait_s
                while 0 < len(self._queue) < self.max_batch_size and not self._closing:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closing:
                    return None
                take = min(self.max_batch_size, len(self._queue))
                if take == 0:  # every queued row was cancelled while waiting
                    continue
                self._running = [self._live(self._queue.popleft()) for _ in range(take)]
                self._count(batches_run=1)
                if take > self._stats.max_batch_seen:
                    self._stats = replace(self._stats, max_batch_seen=take)
                return list(self._running)

    def _live(self, row: Row) -> _Live:
        generator = None
        if row.params.temperature > 0:
            generator = self._torch.Generator(device=self._device)
            if row.params.seed is None:
                generator.seed()
            else:
                generator.manual_seed(row.params.seed)
        return _Live(row, TextStream(self._decode, row.params.stop), generator)

    def _decode(self, ids: list[int]) -> str:
        with self.tokenizer_lock:
            return str(self._tokenizer.decode(ids, skip_special_tokens=True))

    def _fail_running(self, error: BaseException) -> None:
        with self._cond:
            running, self._running = self._running, []
        for live in running:
            if not live.row.cancelled:
                live.row.sink(error)

    def _run(self, batch: list[_Live]) -> None:
        torch = self._torch
        with torch.inference_mode():
            ids, mask, positions = self._left_padded([live.row.prompt_ids for live in batch])
            logits, cache = self._forward(ids, mask, positions, None)
            positions = positions[:, -1:]  # from here on, one new position per row
            slots: list[_Live | None] = list(batch)
            while True:
                if self._closing:
                    return  # _loop fails the rows still running
                tokens = self._choose(logits, slots)
                slots = [
                    self._advance(s, t) if s else None for s, t in zip(slots, tokens, strict=True)
                ]
                if not any(slots):
                    return
                keep = [i for i, s in enumerate(slots) if s is not None]
                if len(keep) < len(slots) and self.drop_finished_rows:
                    cache, mask, positions, tokens = self._drop_rows(
                        cache, mask, positions, tokens, keep
                    )
                    if self.drop_finished_rows:
                        slots = [slots[i] for i in keep]
                step = torch.tensor(tokens, dtype=torch.long, device=self._device).unsqueeze(1)
                positions = positions + 1
                mask = torch.cat([mask, torch.ones_like(step)], dim=1)
                logits, cache = self._forward(step, mask, positions, cache)

    def _left_padded(self, rows: list[list[int]]) -> tuple[Any, Any, Any]:
        torch = self._torch
        width = max(len(row) for row in rows)
        ids = [[self.pad_id] * (width - len(row)) + row for row in rows]
        mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
        ids_t = torch.tensor(ids, dtype=torch.long, device=self._device)
        mask_t = torch.tensor(mask, dtype=torch.long, device=self._device)
        # Positions count real tokens only, so a padded row sees the positions
        # it would see alone (and a seeded row samples the same tokens).
        positions = (mask_t.cumsum(dim=1) - 1).clamp(min=0)
        return ids_t, mask_t, positions

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any) -> tuple[Any, Any]:
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
            "use_cache": True,
            self._cache_arg: cache,
        }
        if self._keep_logits:
            kwargs["logits_to_keep"] = 1  # the LM head on the last position only
        out = self._model(**kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1, :], new_cache

    def _choose(self, logits: Any, slots: list[_Live | None]) -> list[int]:
        tokens: list[int] = logits.argmax(dim=-1).tolist()
        for i, live in enumerate(slots):
            if live is None:
                tokens[i] = self.pad_id  # a finished row kept in the batch: feed padding
            elif live.generator is not None:
                tokens[i] = _sample(self._torch, logits[i], live.row.params, live.generator)
        return tokens

    def _advance(self, live: _Live, token: int) -> _Live | None:
        """Take ``token`` for ``live``; None when the row has left the batch."""
        if live.row.cancelled:
            self._leave(live, None)
            return None
        if live.first_token_at is None:
            live.first_token_at = time.perf_counter()
        with self._cond:
            self._count(tokens_generated=1)
        if token in self.eos_ids:
            self._leave(live, live.done("stop", len(live.text.ids) + 1))
            return None
        delta = live.text.add(token)
        if delta:
            live.row.sink(delta)
        if live.text.stopped:
            self._leave(live, live.done("stop", len(live.text.ids)))
            return None
        if len(live.text.ids) >= live.row.params.max_tokens:
            self._leave(live, live.done("length", len(live.text.ids)))
            return None
        return live

    def _leave(self, live: _Live, done: RowDone | None) -> None:
        if done is not None:
            rest = live.text.rest()
            if rest:
                live.row.sink(rest)
            live.row.sink(done)
        with self._cond:
            self._running = [r for r in self._running if r is not live]
            self._count(**({"rows_finished": 1} if done else {"rows_cancelled": 1}))

    def _drop_rows(
        self, cache: Any, mask: Any, positions: Any, tokens: list[int], keep: list[int]
    ) -> tuple[Any, Any, Any, list[int]]:
        index = self._torch.tensor(keep, dtype=self._torch.long, device=self._device)
        try:
            cache.batch_select_indices(index)
        except (AttributeError, NotImplementedError, TypeError):
            # This cache type cannot drop rows: keep them, fed with padding.
            self.drop_finished_rows = False
            return cache, mask, positions, tokens
        return cache, mask[index], positions[index], [tokens[i] for i in keep]


def _sample(torch: Any, logits: Any, params: SamplingParams, generator: Any) -> int:
    """One token from ``softmax(logits / T)`` cut to the top-p nucleus."""
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first always stays).
        outside = (sorted_probs.cumsum(dim=-1) - sorted_probs) > params.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        pick = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order[pick].item())
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _forward_arguments(model: Any) -> tuple[str, bool]:
    """The name of the forward's cache argument and whether it takes
    ``logits_to_keep``: transformers 5 renamed ``past_key_values`` to
    ``cache`` (the old name warns), and not every model slices its logits."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values", False
    cache = "cache" if "cache" in params else "past_key_values"
    return cache, "logits_to_keep" in params


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
