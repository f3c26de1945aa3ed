"""Batched greedy generation with a tiny real model."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from llmline.evaluation import EvaluationError, generate
from llmline.evaluation.generate import build_prompts

QUESTIONS = [
    "How do I sort a dict by value?",
    "x",
    "What is a decorator and when would I write one myself instead of using functools?",
    "Why is my loop slow?",
    "Explain list comprehensions.",
]


def test_batched_equals_one_by_one(tiny_model: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_model
    batched = generate(model, tokenizer, QUESTIONS, max_new_tokens=12, batch_size=3)
    single = generate(model, tokenizer, QUESTIONS, max_new_tokens=12, batch_size=1)
    assert batched.texts == single.texts
    # Different prompts give different answers: padding bugs would show.
    assert len(set(batched.texts)) == len(QUESTIONS)


def test_tokenizer_without_pad_token_works_and_is_left_unchanged(
    tiny_model: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny_model
    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    expected = generate(model, tokenizer, QUESTIONS[:3], max_new_tokens=6, batch_size=3)
    got = generate(model, no_pad, QUESTIONS[:3], max_new_tokens=6, batch_size=3)
    assert got.texts == expected.texts
    assert no_pad.pad_token is None
    assert tokenizer.padding_side == "right"  # padded LEFT without touching the setting


def test_timings_and_token_counts(tiny_model: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_model
    result = generate(model, tokenizer, QUESTIONS[:3], max_new_tokens=8, batch_size=2)
    assert len(result.requests) == 3
    assert all(0 < r.new_tokens <= 8 and r.latency_s > 0 for r in result.requests)
    assert all(r.tokens_per_s > 0 for r in result.requests)
    stats = result.stats()
    assert 0 < stats["latency_p50_s"] <= stats["latency_p95_s"] <= result.total_s
    assert stats["tokens_per_s"] == pytest.approx(result.new_tokens / result.total_s)
    assert stats["generated_tokens"] == result.new_tokens


def test_prompts_use_the_chat_template(tiny_model: tuple[Any, Any]) -> None:
    _, tokenizer = tiny_model
    [prompt] = build_prompts(tokenizer, ["hello there"])
    assert "<|im_start|>user\nhello there<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_training_mode_is_restored(tiny_model: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_model
    model.train()
    try:
        generate(model, tokenizer, ["hi"], max_new_tokens=2)
        assert model.training
    finally:
        model.eval()


@pytest.mark.parametrize(
    ("inputs", "kwargs"), [([], {}), (["hi"], {"batch_size": 0}), (["hi"], {"max_new_tokens": 0})]
)
def test_bad_arguments_are_clear_errors(
    tiny_model: tuple[Any, Any], inputs: list[str], kwargs: dict[str, int]
) -> None:
    model, tokenizer = tiny_model
    with pytest.raises(EvaluationError):
        generate(model, tokenizer, inputs, **kwargs)
