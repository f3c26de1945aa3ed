"""From dataset rows to training batches.

Each ``{"input_text", "output_text"}`` row becomes one chat turn rendered
with the tokenizer's own chat template (user = input, assistant = output).
Only the answer is learnt: prompt tokens get the label ``-100``.

Two collators build a step's batch from the same examples in the same order:

* :func:`collate_packed` concatenates them into rows of at most
  ``max_seq_length`` tokens (first-fit decreasing), padding only the rows'
  ends.  Position ids restart at 0 for every example, and the attention mask
  is left out: transformers then derives a block-diagonal causal mask from
  the position ids, so no example attends to another (``use_cache=False`` is
  required, see :mod:`llmline.training.lora.trainer`).
* :func:`collate_padded` pads to the longest example of the batch; the
  order then groups similar lengths to waste little on padding.

Every batch carries ``keep`` (positions whose next token is a target) and
``targets`` (those next tokens), so the loss is computed only where it
counts and the LM head never projects a prompt position onto the vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from llmline.errors import ConfigError
from llmline.training.errors import TrainingDataError, TrainingInputMissingError

__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "BatchSchedule",
    "EncodedSplit",
    "Example",
    "collate",
    "collate_packed",
    "collate_padded",
    "encode_rows",
    "eval_batches",
    "read_split",
    "split_fingerprint",
]

IGNORE_INDEX = -100
#: Padding is grouped by length within windows of this many batches: wide
#: enough to find similar lengths, narrow enough to keep the order random.
_LENGTH_GROUP_BATCHES = 50


@dataclass(frozen=True)
class Example:
    """One tokenized conversation; ``labels[i]`` is ``IGNORE_INDEX`` or ``input_ids[i]``."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class EncodedSplit:
    """A split ready for batching, and what truncation did to it."""

    examples: list[Example]
    truncated: int = 0  # examples cut to max_seq_length (part of the answer lost)
    dropped: int = 0  # examples whose answer fell entirely beyond max_seq_length


@dataclass(frozen=True)
class Batch:
    """Model inputs of one step plus what the loss needs."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    keep: torch.Tensor  # bool, same shape as input_ids: positions whose next token is a target
    targets: torch.Tensor  # the next token at each kept position, flattened in row-major order
    num_tokens: int = field(default=0)  # real (non-padding) tokens

    def to(self, device: torch.device) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            input_ids=self.input_ids.to(device, non_blocking=True),
            attention_mask=move(self.attention_mask),
            position_ids=move(self.position_ids),
            keep=self.keep.to(device, non_blocking=True),
            targets=self.targets.to(device, non_blocking=True),
            num_tokens=self.num_tokens,
        )


# -- reading -----------------------------------------------------------------
def read_split(path: Path) -> list[tuple[str, str]]:
    """``(input_text, output_text)`` pairs of a JSONL split, with clear errors."""
    if not path.is_file():
        raise TrainingInputMissingError(
            f"{path} does not exist (a dataset folder holds train.jsonl and eval.jsonl)"
        )
    rows: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                rows.append(_parse_row(path, number, line))
    return rows


def _parse_row(path: Path, number: int, line: str) -> tuple[str, str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise TrainingDataError(f"{path}:{number}: expected a JSON object")
    values = []
    for key in ("input_text", "output_text"):
        value = row.get(key)
        if not isinstance(value, str):
            raise TrainingDataError(f"{path}:{number}: {key!r} is missing or not a string")
        values.append(value)
    return values[0], values[1]


def split_fingerprint(paths: Iterable[Path]) -> str:
    """sha256 over the given files, so a resumed run can tell its data changed."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# -- tokenizing --------------------------------------------------------------
def encode_rows(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[tuple[str, str]],
    max_seq_length: int,
) -> EncodedSplit:
    """Tokenize rows with the chat template; labels only on the answer."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the model's tokenizer has no chat template; LoRA SFT needs one")
    prompts, answers = [], []
    for input_text, output_text in rows:
        prompt, answer = _render(tokenizer, input_text, output_text)
        prompts.append(prompt)
        answers.append(answer)
    # The template already holds every special token, so add none; the two
    # halves are tokenized apart so the prompt is exactly what inference sees.
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
    examples: list[Example] = []
    truncated = dropped = 0
    for p_ids, a_ids in zip(prompt_ids, answer_ids, strict=True):
        ids = (list(p_ids) + list(a_ids))[:max_seq_length]
        labels = ([IGNORE_INDEX] * len(p_ids) + list(a_ids))[:max_seq_length]
        # A sequence's first token is never a target of that sequence; masking
        # it also keeps a packed row's previous example from predicting it.
        labels[0] = IGNORE_INDEX
        if all(label == IGNORE_INDEX for label in labels):
            dropped += 1
            continue
        truncated += len(p_ids) + len(a_ids) > max_seq_length
        examples.append(Example(ids, labels))
    return EncodedSplit(examples, truncated=truncated, dropped=dropped)


def _render(
    tokenizer: PreTrainedTokenizerBase, input_text: str, output_text: str
) -> tuple[str, str]:
    user = {"role": "user", "content": input_text}
    turn = [user, {"role": "assistant", "content": output_text}]
    prompt = _as_text(
        tokenizer.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    )
    full = _as_text(tokenizer.apply_chat_template(turn, tokenize=False))
    if not full.startswith(prompt) or len(full) == len(prompt):
        raise ConfigError(
            "the tokenizer's chat template does not render the prompt as a prefix of the "
            "conversation, so the answer tokens cannot be told apart"
        )
    return prompt, full[len(prompt) :]


def _as_text(rendered: Any) -> str:
    if not isinstance(rendered, str):  # tokenize=False always gives text; be sure
        raise TypeError(f"chat template rendered {type(rendered).__name__}, expected str")
    return rendered


# -- ordering ----------------------------------------------------------------
class BatchSchedule:
    """Which examples form the batch of each step: a pure function of the seed.

    Epoch ``e`` is a permutation drawn from ``(seed, e)``, so a resumed run
    finds the batch of any step without replaying the ones before it.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, *, group_by_length: bool
    ) -> None:
        if not lengths:
            raise TrainingDataError("the training split has no usable example")
        self._lengths = np.asarray(lengths)
        self._batch_size = batch_size
        self._seed = seed
        self._group = group_by_length
        self.batches_per_epoch = math.ceil(len(lengths) / batch_size)
        self._cache: tuple[int, list[list[int]]] | None = None

    def batch(self, step: int) -> list[int]:
        """Example indices of 1-based ``step``."""
        epoch, index = divmod(step - 1, self.batches_per_epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._epoch(epoch))
        return self._cache[1][index]

    def _epoch(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self._seed, epoch])
        order = rng.permutation(len(self._lengths))
        size = self._batch_size
        if not self._group:
            return [order[i : i + size].tolist() for i in range(0, len(order), size)]
        window = size * _LENGTH_GROUP_BATCHES
        batches: list[list[int]] = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            # stable sort: ties keep their random order
            chunk = chunk[np.argsort(-self._lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + size].tolist() for i in range(0, len(chunk), size))
        return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(
    split: EncodedSplit, batch_size: int, *, packing: bool, max_seq_length: int
) -> list[Batch]:
    """The eval split in fixed batches (sorted by length when padding)."""
    examples = split.examples
    if not packing:
        examples = sorted(examples, key=len)
    return [
        collate(examples[start : start + batch_size], packing, max_seq_length)
        for start in range(0, len(examples), batch_size)
    ]


# -- collating ---------------------------------------------------------------
def collate(examples: Sequence[Example], packing: bool, max_seq_length: int) -> Batch:
    return collate_packed(examples, max_seq_length) if packing else collate_padded(examples)


def collate_packed(examples: Sequence[Example], row_length: int) -> Batch:
    """Examples back to back in as few rows of ``row_length`` tokens as fit.

    Position ids restart at 0 for every example and for a row's padding, so
    each is its own segment of the block-diagonal mask.  Rows are bounded
    because attention costs the square of a row's length: one row for a
    whole large batch would cost more than the padding it saves.
    """
    rows = _first_fit(examples, row_length)
    width = max(sum(len(ex) for ex in row) for row in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        used = sum(len(ex) for ex in row)
        ids[r, :used] = torch.tensor([t for ex in row for t in ex.input_ids])
        labels[r, :used] = torch.tensor([t for ex in row for t in ex.labels])
        segments = [torch.arange(len(ex)) for ex in row] + [torch.arange(width - used)]
        positions[r] = torch.cat(segments)
    keep, targets = _targets(labels)
    return Batch(
        input_ids=ids,
        attention_mask=None,
        position_ids=positions,
        keep=keep,
        targets=targets,
        num_tokens=sum(len(ex) for ex in examples),
    )


def _first_fit(examples: Sequence[Example], row_length: int) -> list[list[Example]]:
    """First-fit decreasing bin packing (every example is at most ``row_length``)."""
    rows: list[list[Example]] = []
    free: list[int] = []
    for example in sorted(examples, key=len, reverse=True):
        for r, space in enumerate(free):
            if len(example) <= space:
                rows[r].append(example)
                free[r] -= len(example)
                break
        else:
            rows.append([example])
            free.append(row_length - len(example))
    return rows


def collate_padded(examples: Sequence[Example]) -> Batch:
    """Rows padded on the right to the longest example of this batch."""
    width = max(len(ex) for ex in examples)
    # padding is masked out and never a target, so its token id does not matter
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        ids[row, : len(ex)] = torch.tensor(ex.input_ids)
        labels[row, : len(ex)] = torch.tensor(ex.labels)
        mask[row, : len(ex)] = 1
    keep, targets = _targets(labels)
    return Batch(
        input_ids=ids,
        attention_mask=mask,
        position_ids=None,
        keep=keep,
        targets=targets,
        num_tokens=int(mask.sum()),
    )


def _targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Position ``t`` predicts token ``t + 1``: keep ``t`` where that token is labelled."""
    following = torch.full_like(labels, IGNORE_INDEX)
    following[:, :-1] = labels[:, 1:]
    keep = following != IGNORE_INDEX
    return keep, following[keep]
