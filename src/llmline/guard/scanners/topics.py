"""Banned topics: texts about a subject the operator wants kept out
(medical advice, a competitor's products, politics ...).

Each topic is described in ``llmline.yaml`` by a description, example texts
and keywords.  A keyword (matched as a whole word, case-insensitively)
settles it: score 1.0.  Otherwise the score is the highest cosine
similarity between the text's MiniLM embedding and the embeddings of the
topic's description and examples, computed once, on first use, with the
injected embedder.  Examples do most of the work: a few realistic questions
on the topic are closer to new ones than any one-line description is.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmline.gateway.safety import ScanContext, ScanResult, Severity
from llmline.guard.scanners._text import parse_options

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = [
    "CATEGORY",
    "CHUNK_CHARS",
    "MAX_CHUNKS",
    "MIN_PIECE_CHARS",
    "Topic",
    "TopicOptions",
    "TopicScanner",
    "create",
]

CATEGORY = "banned_topic"
#: MiniLM reads about 1,000 characters of English (256 word pieces); a longer
#: sentence is cut into pieces of this size so that none is silently truncated.
CHUNK_CHARS = 1000
#: Sentences shorter than this ("Hi team.", "Thanks!") join the next one.
MIN_PIECE_CHARS = 25
#: At most this many pieces are embedded per text (the first, the last and
#: evenly spaced ones between): the cost of a long text stays bounded.
MAX_CHUNKS = 32
_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？])\s+|\n+")


class Topic(BaseModel):
    """One banned topic."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="what notes call the topic")
    description: str = Field(default="", description="a sentence saying what the topic is")
    examples: list[str] = Field(default_factory=list, description="texts on the topic")
    keywords: list[str] = Field(default_factory=list, description="words that settle it")

    @field_validator("examples", "keywords")
    @classmethod
    def _no_blank(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("must not contain blank entries")
        return values

    @model_validator(mode="after")
    def _described(self) -> Topic:
        if not (self.description.strip() or self.examples or self.keywords):
            raise ValueError(f"topic {self.name!r} needs a description, examples or keywords")
        return self

    def texts(self) -> list[str]:
        """What is embedded for this topic."""
        head = [self.description] if self.description.strip() else []
        return head + list(self.examples)


class TopicOptions(BaseModel):
    """Options of the ``topics`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    topics: list[Topic] = Field(default_factory=list)
    threshold: float = Field(
        default=0.55, ge=0.0, le=1.0, description="similarity from which a text is on a topic"
    )
    severity: Severity = Field(default="medium", description="severity of a text on a topic")

    @field_validator("topics")
    @classmethod
    def _unique(cls, topics: list[Topic]) -> list[Topic]:
        names = [topic.name for topic in topics]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"topic name(s) used twice: {', '.join(twice)}")
        return topics


def _chunks(text: str) -> list[str]:
    """The pieces of ``text`` that are embedded: its sentences, short ones
    joined to the next, plus the whole text when it is short enough.

    A mean-pooled embedding is an average: one medical question after four
    sentences about a sales report scores 0.35 against a medical topic,
    alone 0.85.  Embedding sentences keeps a banned question from being
    averaged away, at about the cost of embedding the text whole (the model's
    cost grows with the number of word pieces, not of texts).
    """
    pieces: list[str] = []
    current = ""
    for raw in _SENTENCE_BREAK.split(text):
        sentence = raw.strip()
        if not sentence:
            continue
        current = f"{current} {sentence}" if current else sentence
        if len(current) >= MIN_PIECE_CHARS:
            pieces.extend(current[i : i + CHUNK_CHARS] for i in range(0, len(current), CHUNK_CHARS))
            current = ""
    if current:
        pieces.append(current)
    if len(pieces) > 1 and len(text) <= CHUNK_CHARS:
        pieces.append(text)  # a topic spread over several sentences
    if len(pieces) <= MAX_CHUNKS:
        return pieces
    step = (len(pieces) - 1) / (MAX_CHUNKS - 1)
    return [pieces[round(i * step)] for i in range(MAX_CHUNKS)]


def _keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str] | None:
    if not keywords:
        return None
    # Longest first, so that "heart attack" is tried before "heart".
    words = sorted({k.strip() for k in keywords}, key=len, reverse=True)
    alternatives = "|".join(re.escape(word) for word in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class TopicScanner:
    """Texts on a banned topic: category ``banned_topic``, of the configured
    severity (``medium`` by default) from ``threshold`` on."""

    name = "topics"

    def __init__(self, options: TopicOptions | None = None, *, embedder: Embedder | None = None):
        self.options = options or TopicOptions()
        self._embedder = embedder
        self._keywords = [_keyword_pattern(topic.keywords) for topic in self.options.topics]
        self._owners = [i for i, t in enumerate(self.options.topics) for _ in t.texts()]
        self._rows: npt.NDArray[np.float32] | None = None
        self._lock = threading.Lock()
        # Keywords alone are a regex pass; embeddings are not cheap enough inline.
        self.inline_chars = -1 if self._owners else 20_000

    def _embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self._embedder is None:
            from llmline.gateway.embedder import MiniLMEmbedder

            self._embedder = MiniLMEmbedder().embed
        return np.asarray(self._embedder(texts), dtype=np.float32)

    def topic_vectors(self) -> npt.NDArray[np.float32]:
        """One row per description and example, embedded once."""
        with self._lock:
            if self._rows is None:
                texts = [text for topic in self.options.topics for text in topic.texts()]
                self._rows = self._embed(texts) if texts else np.zeros((0, 0), np.float32)
            return self._rows

    def warm_up(self) -> None:
        """Embed the topics now (loading the embedder)."""
        if self._owners:
            self.topic_vectors()

    def similarities(self, text: str) -> list[float]:
        """Per topic, the highest similarity of ``text`` to it (0.0 for a
        topic with keywords only)."""
        best = [0.0] * len(self.options.topics)
        pieces = _chunks(text) if self._owners else []
        if not pieces:
            return best
        rows = self.topic_vectors()
        sims = self._embed(pieces) @ rows.T
        for column, owner in enumerate(self._owners):
            best[owner] = max(best[owner], float(sims[:, column].max()))
        return best

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        topics = self.options.topics
        if not topics:
            return ScanResult()
        hits = [
            pattern is not None and pattern.search(text) is not None for pattern in self._keywords
        ]
        # A keyword already settles the score; the embedding is not needed.
        sims = [0.0] * len(topics) if any(hits) else self.similarities(text)
        scores = [
            1.0 if hit else min(1.0, max(0.0, sim)) for hit, sim in zip(hits, sims, strict=True)
        ]
        score = round(max(scores), 4)
        notes = tuple(
            f"topic:{topic.name}" + (" (keyword)" if hit else f" ({value:.2f})")
            for topic, hit, value in zip(topics, hits, scores, strict=True)
            if value >= self.options.threshold
        )
        severity: dict[str, Severity] = {}
        if score >= self.options.threshold:
            severity[CATEGORY] = self.options.severity
        return ScanResult(scores={CATEGORY: score}, severity=severity, notes=notes)


def create(options: Mapping[str, Any], *, embedder: Embedder | None = None) -> TopicScanner:
    """The ``topics`` entry point; without ``embedder``, the shipped MiniLM."""
    return TopicScanner(parse_options(TopicOptions, options, "topics"), embedder=embedder)
