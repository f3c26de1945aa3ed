"""Fixtures for the training stage: a tiny model and small JSONL datasets."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Nothing in these tests may reach a model hub; set before huggingface_hub
# is first imported, since it reads these once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

pytest.importorskip("peft")  # the ``tune`` extra

from llmline.testing.models import tiny_causal_lm

_WORDS = [
    *("python", "list", "dict", "tuple", "loop", "function", "class", "module", "import"),
    *("error", "string", "number", "file", "read", "write", "sort", "key", "value"),
    *("index", "slice", "generator", "iterator"),
]

DatasetFactory = Callable[..., Path]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy 2-core machine an
    op whose threads wait for a descheduled sibling costs a whole time slice
    (a 6-step run took 8 s with 2 threads, 2 s with 1)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama with SmolLM2's tokenizer (written once per session)."""
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def make_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Question/answer rows of varied length (about 20 to 60 tokens each)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        question = " ".join(rng.choices(_WORDS, k=rng.randint(3, 15)))
        answer = " ".join(rng.choices(_WORDS, k=rng.randint(3, 25)))
        rows.append({"input_text": f"How do I {question}?", "output_text": f"Use {answer}."})
    return rows


def write_dataset(
    folder: Path, train: list[dict[str, str]], evaluation: list[dict[str, str]]
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("eval", evaluation)):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / f"{name}.jsonl").write_text(text, encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"format": "jsonl"}), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def rows() -> Callable[..., list[dict[str, str]]]:
    """``rows(n, seed=0)``: synthetic question/answer rows."""
    return make_rows


@pytest.fixture(scope="session")
def write_rows() -> Callable[..., Path]:
    """``write_rows(folder, train_rows, eval_rows)``: a dataset folder."""
    return write_dataset


@pytest.fixture
def make_dataset(tmp_path: Path) -> DatasetFactory:
    """Write a dataset folder: ``make_dataset(n_train=16, n_eval=4)``."""

    def make(n_train: int = 16, n_eval: int = 4, name: str = "dataset") -> Path:
        return write_dataset(tmp_path / name, make_rows(n_train), make_rows(n_eval, seed=1))

    return make


@pytest.fixture
def dataset(make_dataset: DatasetFactory) -> Path:
    return make_dataset()
