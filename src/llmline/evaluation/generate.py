"""Batched greedy generation with a causal LM, timed per request.

Works with any object that has the Hugging Face interface: a model with
``generate``/``device``/``generation_config`` and a tokenizer with
``apply_chat_template``.  Prompts are the tokenizer's chat template with the
input as the user turn; batches are LEFT padded so that every row's prompt
ends where generation starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from llmline.evaluation._hf import require
from llmline.evaluation.errors import EvaluationError
from llmline.evaluation.metrics import summarize

__all__ = ["GenerationResult", "RequestStats", "build_prompts", "generate"]


@dataclass(frozen=True)
class RequestStats:
    """One request: ``latency_s`` is the wall time of the batch it ran in,
    which is what a client of a batching server waits; ``new_tokens``
    counts the generated tokens up to and including end-of-sequence."""

    latency_s: float
    new_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.latency_s if self.latency_s > 0 else 0.0


@dataclass(frozen=True)
class GenerationResult:
    texts: list[str]
    requests: list[RequestStats]
    total_s: float
    batch_size: int
    max_new_tokens: int

    @property
    def new_tokens(self) -> int:
        return sum(r.new_tokens for r in self.requests)

    @property
    def tokens_per_s(self) -> float:
        """Throughput: every generated token over the total wall time."""
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0

    def stats(self) -> dict[str, float]:
        latency = summarize([r.latency_s for r in self.requests], "latency_s")
        return {
            "latency_p50_s": latency["latency_s_p50"],
            "latency_p95_s": latency["latency_s_p95"],
            "tokens_per_s": self.tokens_per_s,
            "generated_tokens": float(self.new_tokens),
            "generation_s": self.total_s,
        }


def build_prompts(tokenizer: Any, inputs: Sequence[str]) -> list[str]:
    """The chat-formatted prompt of each input (the raw input when the
    tokenizer has no chat template, as base models do)."""
    if getattr(tokenizer, "chat_template", None) is None:
        return list(inputs)
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        for text in inputs
    ]


def generate(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[str],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
) -> GenerationResult:
    """Greedy answers to ``inputs``, in their order."""
    if not inputs:
        raise EvaluationError("nothing to generate: no inputs")
    if batch_size < 1 or max_new_tokens < 1:
        raise EvaluationError("batch_size and max_new_tokens must be at least 1")
    torch = require("torch")
    prompts = build_prompts(tokenizer, inputs)
    # Batching prompts of similar length wastes less compute on padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    stats: list[RequestStats | None] = [None] * len(prompts)
    config = _generation_config(model, tokenizer, max_new_tokens)
    started = time.perf_counter()
    with _eval_mode(model), torch.inference_mode():
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            outs, latency = _run_batch(model, tokenizer, [prompts[i] for i in batch], config)
            for i, (text, n_tokens) in zip(batch, outs, strict=True):
                texts[i] = text
                stats[i] = RequestStats(latency, n_tokens)
    total = time.perf_counter() - started
    return GenerationResult(
        texts=texts,
        requests=[s for s in stats if s is not None],
        total_s=total,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
    )


def _run_batch(
    model: Any, tokenizer: Any, prompts: list[str], config: Any
) -> tuple[list[tuple[str, int]], float]:
    input_ids, attention_mask = _left_padded(tokenizer, prompts, config.pad_token_id)
    started = time.perf_counter()
    output = model.generate(
        input_ids=input_ids.to(model.device),
        attention_mask=attention_mask.to(model.device),
        generation_config=config,
    )
    new = output[:, input_ids.shape[1] :].tolist()  # .tolist() also waits for the GPU
    latency = time.perf_counter() - started
    stop = set(_as_list(config.eos_token_id))
    results = []
    for ids in new:
        n_tokens = next((k + 1 for k, tok in enumerate(ids) if tok in stop), len(ids))
        text = tokenizer.decode(ids[:n_tokens], skip_special_tokens=True)
        results.append((text.strip(), n_tokens))
    return results, latency


def _left_padded(tokenizer: Any, prompts: list[str], pad_id: int) -> tuple[Any, Any]:
    """``input_ids`` and ``attention_mask`` with padding on the LEFT.

    Padded here rather than by the tokenizer: many tokenizers have no pad
    token (padding=True then fails), and the caller's tokenizer must not be
    changed to give it one.
    """
    torch = require("torch")
    # The chat template already holds the special tokens (BOS, turn markers).
    special = getattr(tokenizer, "chat_template", None) is None
    rows = tokenizer(prompts, add_special_tokens=special)["input_ids"]
    width = max(len(row) for row in rows)
    ids = [[pad_id] * (width - len(row)) + list(row) for row in rows]
    mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def _generation_config(model: Any, tokenizer: Any, max_new_tokens: int) -> Any:
    """A fresh greedy config: the model's own may carry sampling settings
    (temperature, top_p) that would warn or, worse, be used."""
    transformers = require("transformers")
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    if pad is None:
        if not _as_list(eos):
            raise EvaluationError("the tokenizer has neither a pad nor an end-of-sequence token")
        # Left padding needs a pad id; any id works since the mask hides it.
        pad = _as_list(eos)[0]
    return transformers.GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=pad
    )


def _as_list(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Dropout off while generating; a model lent mid-training gets its mode back."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()
