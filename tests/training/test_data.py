"""From rows to batches: chat template, answer-only labels, padding, packing, order."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from llmline.errors import ConfigError, UserError
from llmline.training.data import (
    IGNORE_INDEX,
    BatchSchedule,
    Example,
    collate_packed,
    collate_padded,
    encode_rows,
    eval_batches,
    read_split,
)
from llmline.training.errors import TrainingDataError, TrainingInputMissingError

Rows = Callable[..., list[dict[str, str]]]


def pairs(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(row["input_text"], row["output_text"]) for row in rows]


ROWS = [("What is a list?", "An ordered, mutable sequence."), ("Hi", "Hello!")]


def test_labels_cover_exactly_the_answer(tokenizer: Any) -> None:
    split = encode_rows(tokenizer, ROWS, max_seq_length=256)
    assert (split.truncated, split.dropped) == (0, 0)
    for (question, answer), example in zip(ROWS, split.examples, strict=True):
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        # the prompt is tokenized exactly as inference will see it, and is not learnt
        assert example.input_ids[: len(prompt_ids)] == prompt_ids
        assert set(example.labels[: len(prompt_ids)]) == {IGNORE_INDEX}
        learnt = [t for t in example.labels if t != IGNORE_INDEX]
        assert example.labels[len(prompt_ids) :] == learnt
        assert tokenizer.decode(learnt) == f"{answer}<|im_end|>\n"  # learns to stop, too
        assert len(example.labels) == len(example.input_ids)


def test_truncation_keeps_partial_answers_and_drops_answerless_examples(tokenizer: Any) -> None:
    long_prompt = ("word " * 300, "short answer")
    long_answer = ("q", "word " * 300)
    split = encode_rows(tokenizer, [long_prompt, long_answer, ROWS[1]], max_seq_length=64)
    assert (split.truncated, split.dropped) == (1, 1)
    assert len(split.examples[0]) == 64
    assert all(len(ex) <= 64 for ex in split.examples)
    assert any(label != IGNORE_INDEX for label in split.examples[0].labels)


def test_a_tokenizer_without_chat_template_is_refused(tokenizer: Any) -> None:
    template = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        with pytest.raises(ConfigError, match="no chat template"):
            encode_rows(tokenizer, ROWS, max_seq_length=64)
    finally:
        tokenizer.chat_template = template


def _examples() -> list[Example]:
    return [
        Example([5, 6, 7, 8, 9], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 8, 9]),
        Example([5, 6, 10], [IGNORE_INDEX, IGNORE_INDEX, 10]),
        Example([5, 11, 12, 13], [IGNORE_INDEX, IGNORE_INDEX, 12, 13]),
    ]


def test_padding_goes_to_the_longest_in_the_batch() -> None:
    batch = collate_padded(_examples())
    assert batch.input_ids.shape == (3, 5)
    assert batch.attention_mask is not None
    assert batch.attention_mask.sum(dim=1).tolist() == [5, 3, 4]
    assert batch.num_tokens == 12
    assert batch.targets.tolist() == [8, 9, 10, 12, 13]
    # position t is kept when token t + 1 is a target
    assert batch.keep[0].tolist() == [False, False, True, True, False]


def test_packing_fills_rows_with_restarting_positions() -> None:
    batch = collate_packed(_examples(), row_length=64)
    assert batch.input_ids.shape == (1, 12)
    assert batch.attention_mask is None
    assert batch.position_ids is not None
    # longest first (first-fit decreasing): lengths 5, 4, 3
    assert batch.position_ids[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2]
    assert batch.targets.tolist() == [8, 9, 12, 13, 10]
    # the last token of one example never predicts the first of the next
    assert not batch.keep[0, 4] and not batch.keep[0, 8]


def test_packed_rows_never_exceed_the_row_length() -> None:
    batch = collate_packed(_examples(), row_length=8)  # lengths 5, 3, 4: first fit decreasing
    assert batch.input_ids.shape == (2, 8)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, 5, 6, 10], [5, 11, 12, 13, 0, 0, 0, 0]]
    assert batch.position_ids is not None
    # the padding is a segment of its own too
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 0, 1, 2, 3]]
    assert batch.num_tokens == 12
    assert sorted(batch.targets.tolist()) == [8, 9, 10, 12, 13]


def test_packed_examples_do_not_see_each_other(
    tokenizer: Any, tiny_model: Path, rows: Rows
) -> None:
    """Packed loss == padded loss == the sum of each example's own loss."""
    from transformers import AutoModelForCausalLM

    from llmline.training.lora.trainer import _loss_sum

    model: Any = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    model.eval()
    examples = encode_rows(tokenizer, pairs(rows(5)), 256).examples
    with torch.no_grad():
        one_row = _loss_sum(model, collate_packed(examples, 1024)).item()
        bins = collate_packed(examples, 2 * max(len(ex) for ex in examples))
        assert bins.input_ids.shape[0] > 1
        packed = _loss_sum(model, bins).item()
        padded = _loss_sum(model, collate_padded(examples)).item()
        alone = sum(_loss_sum(model, collate_padded([ex])).item() for ex in examples)
    assert one_row == pytest.approx(alone, rel=1e-5)
    assert packed == pytest.approx(alone, rel=1e-5)
    assert padded == pytest.approx(alone, rel=1e-5)


def test_batch_order_is_a_function_of_seed_and_step() -> None:
    lengths = [10 + (i * 7) % 50 for i in range(37)]
    first = BatchSchedule(lengths, 4, seed=1, group_by_length=False)
    again = BatchSchedule(lengths, 4, seed=1, group_by_length=False)
    other = BatchSchedule(lengths, 4, seed=2, group_by_length=False)
    steps = range(1, 3 * first.batches_per_epoch + 1)
    assert [first.batch(s) for s in steps] == [again.batch(s) for s in reversed(steps)][::-1]
    assert [first.batch(s) for s in steps] != [other.batch(s) for s in steps]
    epoch = [i for s in range(1, first.batches_per_epoch + 1) for i in first.batch(s)]
    assert sorted(epoch) == list(range(37))  # every example once per epoch
    second = [i for s in range(11, 21) for i in first.batch(s)]
    assert second != epoch  # reshuffled every epoch


def test_length_grouping_cuts_padding() -> None:
    lengths = [(i * 37) % 200 + 1 for i in range(400)]

    def padding(schedule: BatchSchedule) -> int:
        total = 0
        for step in range(1, schedule.batches_per_epoch + 1):
            sizes = [lengths[i] for i in schedule.batch(step)]
            total += max(sizes) * len(sizes) - sum(sizes)
        return total

    grouped = BatchSchedule(lengths, 8, seed=0, group_by_length=True)
    plain = BatchSchedule(lengths, 8, seed=0, group_by_length=False)
    assert padding(grouped) * 10 < padding(plain)
    epoch = sorted(i for s in range(1, grouped.batches_per_epoch + 1) for i in grouped.batch(s))
    assert epoch == list(range(400))


def test_eval_batches_cover_the_split_in_a_fixed_order(tokenizer: Any, rows: Rows) -> None:
    split = encode_rows(tokenizer, pairs(rows(7)), 256)
    for packing in (True, False):
        batches = eval_batches(split, 3, packing=packing, max_seq_length=256)
        assert len(batches) == 3
        assert sum(b.num_tokens for b in batches) == sum(len(e) for e in split.examples)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "expected a JSON object"),
        ('{"input_text": "q"}', "'output_text' is missing"),
        ('{"input_text": "q", "output_text": 3}', "'output_text' is missing or not a string"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "train.jsonl"
    good = json.dumps({"input_text": "q", "output_text": "a"})
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=f"train.jsonl:3: {problem}") as info:
        read_split(path)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_a_missing_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingInputMissingError, match=r"train\.jsonl does not exist") as info:
        read_split(tmp_path / "train.jsonl")
    assert isinstance(info.value, FileNotFoundError)
