"""The topics scanner, with the shipped MiniLM: texts on a banned topic
score above the threshold, others below; keywords settle it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from llmline.errors import ConfigError
from llmline.gateway.safety import ScanContext
from llmline.guard.scanners import create_scanner
from llmline.guard.scanners.topics import CHUNK_CHARS, TopicScanner, create
from tests.guard.scanners._inputs import random_text, zero_width_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CTX = ScanContext(direction="input")
CATEGORY = "banned_topic"
MEDICAL: dict[str, Any] = {
    "name": "medical advice",
    "description": "Asking for medical advice: diagnosing symptoms, choosing treatments, "
    "medication and dosage.",
    "examples": [
        "What dose of ibuprofen should I take for a headache?",
        "Do these symptoms mean I have diabetes?",
        "Should I stop taking my blood pressure medication?",
        "Is this rash on my arm something serious?",
    ],
}
COMPETITORS: dict[str, Any] = {
    "name": "competitor products",
    "description": "Questions about products and pricing of our competitors, Acme Cloud and "
    "Globex.",
    "examples": ["Is Acme Cloud cheaper than your service?", "How does Globex storage compare?"],
    "keywords": ["Acme Cloud", "Globex"],
}
ON_TOPIC = [
    "How much ibuprofen can I take for a bad migraine?",
    "Can I take paracetamol together with my blood pressure pills?",
    "My child has a red rash on her legs, is it serious?",
]
OFF_TOPIC = [
    "How do I reset my password?",
    "Write a haiku about autumn leaves.",
    "What's the capital of Australia?",
    "Summarise this quarterly sales report for me.",
    "How do I configure nginx as a reverse proxy?",
    "What's the best way to store patient records in PostgreSQL?",
]


class CountingEmbedder:
    """The real MiniLM embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        from llmline.gateway.embedder import MiniLMEmbedder

        self._inner = MiniLMEmbedder()
        self.calls: list[int] = []

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        return self._inner.embed(texts)


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture(scope="module")
def scanner(embedder: CountingEmbedder) -> TopicScanner:
    scanner = create({"topics": [MEDICAL, COMPETITORS]}, embedder=embedder)
    scanner.warm_up()
    return scanner


@pytest.mark.parametrize("text", ON_TOPIC)
def test_on_topic_texts_pass_the_threshold(scanner: TopicScanner, text: str) -> None:
    result = scanner.scan(text, CTX)
    assert result.scores[CATEGORY] >= 0.55
    assert result.severity == {CATEGORY: "medium"}
    assert len(result.notes) == 1 and result.notes[0].startswith("topic:medical advice (")


@pytest.mark.parametrize("text", OFF_TOPIC)
def test_off_topic_texts_stay_below(scanner: TopicScanner, text: str) -> None:
    result = scanner.scan(text, CTX)
    assert 0.0 <= result.scores[CATEGORY] < 0.55
    assert result.severity == {} and result.notes == ()


def test_every_on_topic_text_is_closer_than_every_off_topic_one(scanner: TopicScanner) -> None:
    on = [scanner.similarities(text)[0] for text in ON_TOPIC]
    off = [scanner.similarities(text)[0] for text in OFF_TOPIC]
    assert min(on) > max(off)


def test_keywords_settle_it_as_whole_words(scanner: TopicScanner) -> None:
    result = scanner.scan("Honestly, is GLOBEX any good for backups?", CTX)
    assert result.scores == {CATEGORY: 1.0}
    assert result.notes == ("topic:competitor products (keyword)",)
    # "Globexample" is not the word Globex; nor is this text about competitors.
    other = scanner.scan("Rename the variable globexample to something clearer.", CTX)
    assert other.scores[CATEGORY] < 0.55


def test_topic_texts_are_embedded_once(embedder: CountingEmbedder) -> None:
    scanner = create({"topics": [MEDICAL]}, embedder=embedder)
    before = len(embedder.calls)
    scanner.scan(ON_TOPIC[0], CTX)
    scanner.scan(OFF_TOPIC[0], CTX)
    topic_rows = 1 + len(MEDICAL["examples"])
    assert embedder.calls[before:] == [topic_rows, 1, 1]


def test_a_topic_late_in_a_long_text_is_found(scanner: TopicScanner) -> None:
    filler = "The quarterly report covers revenue, hiring and office moves. " * 80
    assert len(filler) > 3 * CHUNK_CHARS
    result = scanner.scan(filler + ON_TOPIC[0], CTX)
    assert result.severity == {CATEGORY: "medium"}
    # In the middle of a paragraph, between unrelated sentences, too.
    middle = f"We went over the Q3 numbers yesterday. {ON_TOPIC[0]} Also, send me the slides."
    assert scanner.scan(middle, CTX).severity == {CATEGORY: "medium"}


def test_threshold_and_severity_options(embedder: CountingEmbedder) -> None:
    strict = create({"topics": [MEDICAL], "threshold": 0.95, "severity": "high"}, embedder=embedder)
    assert strict.scan(ON_TOPIC[1], CTX).severity == {}
    loose = create({"topics": [MEDICAL], "threshold": 0.5, "severity": "high"}, embedder=embedder)
    assert loose.scan(ON_TOPIC[1], CTX).severity == {CATEGORY: "high"}


def test_no_topics_no_result() -> None:
    scanner = create({}, embedder=None)
    result = scanner.scan("Anything at all", CTX)
    assert result.scores == {} and result.notes == ()


def test_keyword_only_topics_need_no_embedder() -> None:
    def refuse(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise AssertionError("keyword-only topics must not embed")

    scanner = create({"topics": [{"name": "x", "keywords": ["globex"]}]}, embedder=refuse)
    assert scanner.inline_chars > 0
    assert scanner.scan("globex pricing", CTX).scores == {CATEGORY: 1.0}
    assert scanner.scan("our pricing", CTX).scores == {CATEGORY: 0.0}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"topics": [MEDICAL, MEDICAL]}, "topics"),
        ({"topics": [{"name": "empty"}]}, "topics.0"),
        ({"topics": [{"name": "", "keywords": ["x"]}]}, "topics.0.name"),
        ({"topics": [{"name": "x", "keywords": [" "]}]}, "topics.0.keywords"),
        ({"threshold": 1.5}, "threshold"),
        ({"severity": "extreme"}, "severity"),
        ({"topic": []}, "topic"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"guard scanner topics: {field}"):
        create(options, embedder=None)


def test_entry_point_builds_the_scanner(embedder: CountingEmbedder) -> None:
    scanner = create_scanner("topics", {"topics": [COMPETITORS]}, embedder=embedder)
    assert isinstance(scanner, TopicScanner) and scanner.name == "topics"


def test_megabyte_inputs_return(scanner: TopicScanner) -> None:
    for text in (zero_width_text(), random_text()):
        score = scanner.scan(text, CTX).scores[CATEGORY]
        assert 0.0 <= score <= 1.0
