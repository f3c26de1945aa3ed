"""KnowledgeBase.search on small real knowledge bases: modes, fusion,
filters, spans, MMR, rerank, long queries and bad arguments."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from llmline.errors import UserError
from llmline.rag.catalog import get_version
from llmline.rag.chunking import ChunkingOptions
from llmline.rag.encoder import MiniLMEncoder
from llmline.rag.ingestion import ingest_knowledge_base
from llmline.rag.kb import KnowledgeBase, QueryTruncatedWarning, open_version
from llmline.rag.retrieval import RRF_K
from llmline.workspace import Workspace, init_workspace

from .conftest import CountingEncoder, write_corpus

LIST_COPIES = [
    "Python lists are mutable sequences. The append method adds one item to the end of a list.",
    "Python lists are mutable sequences. The append method adds an item to the end of the list.",
    "Lists in Python are mutable sequences. Calling append adds one item to the end of a list.",
    "Python lists are mutable sequences; the append method puts one item at the end of a list.",
]
OTHERS = {
    "tuples.txt": "Tuples are immutable sequences: once a tuple is created its items cannot "
    "be replaced, so there is no append method.",
    "recipe.txt": "The pancake recipe needs two eggs, a cup of flour and a cup of milk.",
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, encoder: MiniLMEncoder) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("search")
    workspace = init_workspace(root / "ws", load_sample_data=False)
    ingest_knowledge_base(
        workspace, "notes", [write_corpus(root / "docs")], options=ChunkingOptions(64, 16),
        encoder=encoder,
    )  # fmt: skip
    redundant = root / "redundant"
    redundant.mkdir()
    for i, text in enumerate(LIST_COPIES):
        (redundant / f"lists{i}.txt").write_text(text, "utf-8")
    for name, text in OTHERS.items():
        (redundant / name).write_text(text, "utf-8")
    ingest_knowledge_base(workspace, "redundant", [redundant], encoder=encoder)
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def kb(ws: Workspace, encoder: MiniLMEncoder) -> Iterator[KnowledgeBase]:
    with open_version(ws, "notes", encoder) as opened:
        yield opened


def test_each_mode_finds_the_obvious_document(kb: KnowledgeBase) -> None:
    for mode in ("hybrid", "dense", "bm25"):
        assert kb.search("how do bees make honey", k=3, mode=mode)[0].title == "Honey bees"
        assert kb.search("basalt lava", k=3, mode=mode)[0].title == "Volcanoes"
    dense = kb.search("kneading dough", k=4, mode="dense")
    assert dense[0].title == "Baking bread"
    scores = [h.score for h in dense]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert kb.search("zzzzqqq", k=3, mode="bm25") == []  # no term in common: no hit


def test_hybrid_is_reciprocal_rank_fusion(kb: KnowledgeBase) -> None:
    hits = kb.search("the moon and the tides", k=5, mode="hybrid")
    assert hits
    for hit in hits:
        expected = sum(
            1.0 / (RRF_K + hit.scores[f"{name}_rank"])
            for name in ("dense", "bm25")
            if f"{name}_rank" in hit.scores
        )
        assert hit.score == pytest.approx(expected) == hit.scores["rrf"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters_by_type_source_and_lists(kb: KnowledgeBase) -> None:
    pdf = kb.search("how do bees make honey", k=5, filters={"type": "pdf"})
    assert pdf and {h.metadata["type"] for h in pdf} == {"pdf"}
    assert all(h.metadata["page"] in (1, 2) for h in pdf)
    md = kb.search("rises", k=10, filters={"source": "*/tides.md"})
    assert md and {Path(h.source).name for h in md} == {"tides.md"}
    either = kb.search("rises", k=10, mode="bm25", filters={"type": ["rst", "markdown"]})
    assert {h.metadata["type"] for h in either} == {"rst", "markdown"}
    assert kb.search("rises", filters={"type": "docx"}) == []
    with pytest.raises(UserError, match=r"unknown filter field.*colour.*known: "):
        kb.search("rises", filters={"colour": "red"})


def test_hit_span_indexes_the_source_text(ws: Workspace, kb: KnowledgeBase) -> None:
    import json

    root = Path(get_version(ws, "notes").uri)
    docs = {
        d["uri"]: d["text"]
        for d in map(json.loads, (root / "documents.jsonl").read_text("utf-8").splitlines())
    }
    for query in ("spring tides at full moon", "waggle dance", "lava basalt", "castling"):
        for hit in kb.search(query, k=3):
            assert docs[hit.source][hit.start : hit.end] == hit.text
            if hit.metadata["type"] in ("markdown", "text", "rst"):  # the file's own text
                file_text = Path(hit.source.removeprefix("file://")).read_text("utf-8")
                assert file_text[hit.start : hit.end] == hit.text


def test_mmr_diversifies_a_redundant_corpus(ws: Workspace, encoder: MiniLMEncoder) -> None:
    with open_version(ws, "redundant", encoder) as kb:
        query = "how do I add an item to a python list"
        plain = kb.search(query, k=3, mode="dense")
        assert {Path(h.source).name for h in plain} <= {f"lists{i}.txt" for i in range(4)}
        diverse = kb.search(query, k=3, mode="dense", mmr=True)
        names = [Path(h.source).name for h in diverse]
        assert names[0] == Path(plain[0].source).name  # the best match is still first
        assert "tuples.txt" in names
        assert {h.chunk_id for h in diverse} != {h.chunk_id for h in plain}
        assert all("mmr" in h.scores for h in diverse)
        # lambda 1 is pure relevance: MMR then changes nothing.
        same = kb.search(query, k=3, mode="dense", mmr=True, mmr_lambda=1.0)
        assert [h.chunk_id for h in same] == [h.chunk_id for h in plain]


def test_rerank_orders_a_wider_candidate_set_by_cosine(
    kb: KnowledgeBase, encoder: MiniLMEncoder
) -> None:
    hits = kb.search("insects that live in hives", k=3, mode="bm25", rerank=True)
    assert hits and hits[0].title == "Honey bees"
    reranks = [h.scores["rerank"] for h in hits]
    assert reranks == sorted(reranks, reverse=True)
    q = kb.query_vector("insects that live in hives").reshape(-1)
    dense = {
        h.chunk_id: h.score for h in kb.search("insects that live in hives", k=50, mode="dense")
    }
    for hit in hits:  # one window per chunk here: the window's cosine is the chunk's
        assert hit.scores["rerank"] == pytest.approx(dense[hit.chunk_id], abs=1e-5)
    assert np.isclose(np.linalg.norm(q), 1.0, atol=1e-5)


def test_a_query_longer_than_the_window_is_truncated_with_a_warning(
    ws: Workspace, kb: KnowledgeBase, encoder: MiniLMEncoder
) -> None:
    long_query = "honey bees " + " ".join(["nectar flowers hive"] * 150)
    with pytest.warns(QueryTruncatedWarning, match="256-piece window"):
        hits = kb.search(long_query, k=2)
    assert hits[0].title == "Honey bees"
    spy = CountingEncoder(encoder)
    with open_version(ws, "notes", spy) as watched, pytest.warns(QueryTruncatedWarning):
        watched.search(long_query, k=2, mode="dense")
    (embedded,) = spy.last
    assert long_query.startswith(embedded)
    assert len(encoder.token_spans(embedded)) == 254  # the window less [CLS] and [SEP]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kb.search("honey bees", k=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "  "}, "empty"),
        ({"query": "bees", "k": 0}, "k must be at least 1"),
        ({"query": "bees", "mode": "fuzzy"}, "unknown search mode 'fuzzy'"),
        ({"query": "bees", "mmr": True, "mmr_lambda": 2.0}, "mmr_lambda"),
    ],
)
def test_bad_search_arguments(kb: KnowledgeBase, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        kb.search(**kwargs)  # type: ignore[arg-type]
