"""Citation metadata from a real dataset version: build the index from the
train split in the artifact store, find copied spans, persist, recover
from a corrupt file, and build it when a tuned model is registered."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from llmline import data
from llmline.errors import NotFoundError
from llmline.gateway.citations import (
    SHINGLE_WORDS,
    CitationIndex,
    Source,
    build_citation_index,
    index_path,
    load_citation_index,
)
from llmline.testing.workspace import synthetic_workspace
from llmline.workspace import Workspace

UNRELATED = (
    "To reverse a list in place call my_list.reverse(); to get a reversed copy use slicing "
    "with a negative step, my_list[::-1], which works for strings and tuples as well."
)


@dataclass(frozen=True)
class Built:
    ws: Workspace
    ref: str
    content_hash: str
    rows: list[dict[str, str]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """A workspace with one built dataset version (60 synthetic questions)."""
    ws = synthetic_workspace(tmp_path_factory.mktemp("citations") / "ws", 60)
    result = data.build("python-faq", workspace=ws)
    lines = (Path(result.uri) / "train.jsonl").read_text("utf-8").splitlines()
    yield Built(ws, result.ref, result.content_hash, [json.loads(line) for line in lines])
    ws.close()


def _stored(built: Built) -> Path:
    return Path(built.ws.artifacts.uri(index_path(built.content_hash))) / "index.npz"


def _sentence(answer: str) -> str:
    """The answer's longest sentence (the synthetic answers' random part)."""
    return max(re.split(r"(?<=\.)\s+", answer), key=len)


def _first_row_with(rows: list[dict[str, str]], text: str) -> int:
    return next(i for i, row in enumerate(rows) if text in row["output_text"])


def test_copied_training_sentence_is_cited_with_its_exact_span(built: Built) -> None:
    index = build_citation_index(built.ws, built.ref)
    sentence = _sentence(built.rows[5]["output_text"])
    assert len(sentence.split()) >= 2 * SHINGLE_WORDS
    output = f"Here is one way to do it. {sentence} Hope this helps!"

    citations = index.find(output)

    assert len(citations) == 1
    cited = citations[0]
    # Word to word: the sentence without its closing full stop.
    assert output[cited.start_index : cited.end_index] == sentence.rstrip(".")
    assert cited.start_index == output.index(sentence)
    row = _first_row_with(built.rows, sentence)
    assert cited.uri == f"llmline://datasets/{built.ref}/train#{row}"
    question = built.rows[row]["input_text"].split("Stackoverflow question:\n", 1)[1]
    assert cited.title == question.splitlines()[0]
    assert cited.title.startswith("How do I ")
    assert cited.license is None  # a local warehouse: no source licence is claimed


def test_unrelated_or_short_copies_are_not_cited(built: Built) -> None:
    index = load_citation_index(built.ws, built.ref)
    words = _sentence(built.rows[7]["output_text"]).split()

    assert index.find(UNRELATED) == []
    assert index.find("") == []
    assert index.find("In short: " + " ".join(words[: SHINGLE_WORDS - 1]) + ".") == []
    assert len(index.find("In short: " + " ".join(words[:SHINGLE_WORDS]) + ".")) == 1


def test_copies_from_two_answers_give_two_citations_in_order(built: Built) -> None:
    index = load_citation_index(built.ws, built.ref)
    first, second = (_sentence(built.rows[i]["output_text"]) for i in (2, 9))
    output = f"{first} {UNRELATED} {second}"

    citations = index.find(output)

    assert [output[c.start_index : c.end_index] for c in citations] == [
        first.rstrip("."),
        second.rstrip("."),
    ]
    rows = [_first_row_with(built.rows, s) for s in (first, second)]
    assert [c.uri.rsplit("#", 1)[1] for c in citations] == [str(r) for r in rows]


def test_a_recited_answer_is_one_citation(built: Built) -> None:
    index = load_citation_index(built.ws, built.ref)
    answer = built.rows[4]["output_text"]
    # The whole answer, with other spacing, case and punctuation.
    output = "Answer: " + " ".join(answer.upper().replace(".", " ;").split())

    citations = index.find(output)

    assert len(citations) == 1
    assert citations[0].start_index == len("Answer: ")
    assert citations[0].end_index == len(output) - len(" ;")
    assert citations[0].uri.endswith(f"#{_first_row_with(built.rows, answer)}")


def test_adjacent_copies_of_one_answer_merge(built: Built) -> None:
    index = load_citation_index(built.ws, built.ref)
    answer = built.rows[8]["output_text"]
    middle = _sentence(answer)
    last = answer.rsplit("\n\n", 1)[1]  # "See the docs for ...", after the code block
    assert last.startswith("See the docs for") and middle not in last
    output = f"{middle} {last}"  # the code between them left out

    citations = index.find(output)

    assert [(c.start_index, c.end_index) for c in citations] == [(0, len(output) - 1)]
    assert citations[0].uri.endswith(f"#{_first_row_with(built.rows, middle)}")


def test_offsets_are_python_string_indices_in_unicode_text() -> None:
    source = (
        "Le café crème coûte deux euros à Zürich, près de la gare: naïve façade, "
        "l'œuvre d'un architecte célèbre."
    )
    index = CitationIndex.from_rows(
        [("Sans rapport.", Source("s://0")), (source, Source("s://1", "Zürich", "CC0-1.0"))],
        dataset="unicode@1",
        content_hash="0" * 64,
    )
    # Decomposed accents, other case, emoji and CJK before the span.
    copied = unicodedata.normalize("NFD", "CAFÉ CRÈME coûte deux euros à ZÜRICH — près de la gare")
    output = f"🙂 日本語: « {copied} », voilà."

    [citation] = index.find(output)

    assert output[citation.start_index : citation.end_index] == copied
    assert (citation.uri, citation.title, citation.license) == ("s://1", "Zürich", "CC0-1.0")
    assert len(output.encode("utf-8")) != len(output)  # byte offsets would differ


def test_index_round_trips_through_the_artifact_store(built: Built) -> None:
    built_index = build_citation_index(built.ws, built.ref)
    path = _stored(built)
    before = path.stat()

    loaded = load_citation_index(built.ws, built.ref)

    assert path.stat().st_mtime_ns == before.st_mtime_ns  # read, not rebuilt
    assert path.stat().st_ino == before.st_ino
    assert loaded.content_hash == built.content_hash
    assert loaded.dataset == built.ref
    assert loaded.sources == built_index.sources
    for name in ("hashes", "rows", "positions"):
        assert np.array_equal(getattr(loaded, name), getattr(built_index, name))
    sentence = _sentence(built.rows[1]["output_text"])
    assert loaded.find(sentence) == built_index.find(sentence)
    assert len(loaded.find(sentence)) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"not an npz file",
        lambda b: b[: len(b) // 2],  # a truncated write
        lambda b: b[:-200] + bytes(200),  # a damaged tail
    ],
    ids=["garbage", "truncated", "damaged"],
)
def test_corrupt_index_is_rebuilt_with_a_warning(
    built: Built, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    build_citation_index(built.ws, built.ref)
    path = _stored(built)
    good = path.read_bytes()
    path.write_bytes(damage(good))  # type: ignore[operator]

    with caplog.at_level(logging.WARNING, logger="llmline.gateway.citations"):
        index = load_citation_index(built.ws, built.ref)

    assert "unreadable" in caplog.text and "rebuilding" in caplog.text
    sentence = _sentence(built.rows[3]["output_text"])
    assert len(index.find(sentence)) == 1
    assert CitationIndex.from_bytes(path.read_bytes()).content_hash == built.content_hash
    assert path.read_bytes() == good  # the same content gives the same index


def test_missing_index_is_built_on_load(built: Built) -> None:
    path = _stored(built)
    if path.exists():
        path.unlink()

    index = load_citation_index(built.ws, built.ref)

    assert path.exists()
    assert len(index.sources) == len(built.rows)


def test_licence_given_at_build_time_is_cited(built: Built) -> None:
    try:
        index = build_citation_index(built.ws, built.ref, license="CC-BY-SA-4.0", rebuild=True)
        sentence = _sentence(built.rows[6]["output_text"])
        assert [c.license for c in index.find(sentence)] == ["CC-BY-SA-4.0"]
        assert [c.license for c in load_citation_index(built.ws, built.ref).find(sentence)] == [
            "CC-BY-SA-4.0"
        ]
    finally:
        build_citation_index(built.ws, built.ref, rebuild=True)


def test_unknown_split_or_dataset_is_a_not_found_error(built: Built) -> None:
    with pytest.raises(NotFoundError, match="no validation split"):
        build_citation_index(built.ws, built.ref, split="validation", rebuild=True)
    with pytest.raises(NotFoundError):
        build_citation_index(built.ws, "no-such-dataset")


def test_registering_a_tuned_model_builds_the_index(tmp_path: Path) -> None:
    from llmline.models import ModelRegistry
    from llmline.pipelines.steps import _register_adapter

    ws = synthetic_workspace(tmp_path / "ws", 40)
    try:
        result = data.build("python-faq", workspace=ws)
        base_dir = tmp_path / "base"
        base_dir.mkdir()
        (base_dir / "config.json").write_text("{}")
        ModelRegistry(ws.metadata).register(
            "tiny", kind="base", uri=str(base_dir), format="hf-safetensors", source="test"
        )
        adapter = tmp_path / "adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text('{"r": 4}')
        path = Path(ws.artifacts.uri(index_path(result.content_hash))) / "index.npz"
        assert not path.exists()

        info = _register_adapter(
            ws,
            "faq-lora",
            base_model="tiny@1",
            dataset=result.ref,
            adapter=adapter,
            training={},
            run="run-1",
        )

        assert info.ref == "faq-lora@1"
        assert path.exists()
    finally:
        ws.close()


def test_a_failed_index_build_does_not_fail_registration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmline.models import ModelRegistry
    from llmline.pipelines.steps import _register_adapter

    ws = synthetic_workspace(tmp_path / "ws", 40)
    try:
        result = data.build("python-faq", workspace=ws)
        (Path(result.uri) / "train.jsonl").unlink()  # the index cannot be built
        base_dir = tmp_path / "base"
        base_dir.mkdir()
        ModelRegistry(ws.metadata).register(
            "tiny", kind="base", uri=str(base_dir), format="hf-safetensors", source="test"
        )
        adapter = tmp_path / "adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text('{"r": 4}')

        info = _register_adapter(
            ws,
            "faq-lora",
            base_model="tiny@1",
            dataset=result.ref,
            adapter=adapter,
            training={},
            run="run-1",
        )

        assert info.ref == "faq-lora@1"
        assert "no citation index for" in capsys.readouterr().out
        assert not ws.artifacts.exists(index_path(result.content_hash))
    finally:
        ws.close()
