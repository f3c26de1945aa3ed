"""The built-in pydoc-topics corpus, ingested once with the default chunking
(the one slow test of the package: about a minute on two cores)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llmline.rag import IngestResult, KnowledgeBase, ingest, open_knowledge_base
from llmline.rag.encoder import MiniLMEncoder
from llmline.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow

QUESTIONS = {
    "how does the with statement work": {"with", "context-managers"},
    "what does the yield keyword do": {"yield"},
    "how do I catch an exception": {"try"},
    "format specification mini-language": {"formatstrings"},
    "assign to a variable of an enclosing function": {"nonlocal", "global", "naming"},
    "slicing a sequence with a step": {"slicings", "typesseq"},
}


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, encoder: MiniLMEncoder
) -> Iterator[tuple[Workspace, IngestResult]]:
    workspace = init_workspace(tmp_path_factory.mktemp("pydoc") / "ws", load_sample_data=False)
    started = time.perf_counter()
    result = ingest("python-docs", builtin="pydoc-topics", workspace=workspace, encoder=encoder)
    # Measured, never asserted: shown with -s for the record.
    print(f"\npydoc-topics: {result.chunks} chunks in {time.perf_counter() - started:.1f} s")
    yield workspace, result
    workspace.close()


@pytest.fixture(scope="module")
def kb(built: tuple[Workspace, IngestResult], encoder: MiniLMEncoder) -> Iterator[KnowledgeBase]:
    with open_knowledge_base("python-docs", workspace=built[0], encoder=encoder) as opened:
        yield opened


def test_every_topic_is_one_source_document(built: tuple[Workspace, IngestResult]) -> None:
    from pydoc_data.topics import topics

    _, result = built
    assert result.status == "created" and result.documents == len(topics)
    assert result.embedded == result.chunks > len(topics)
    kb_sources = {s["uri"]: s for s in open_knowledge_base(
        result.ref, workspace=built[0]).info.manifest["sources"]}  # fmt: skip
    assert set(kb_sources) == {f"pydoc:{t}" for t in topics}
    assert all(s["chunks"] >= 1 and s["type"] == "pydoc" for s in kb_sources.values())
    assert kb_sources["pydoc:with"]["title"] == "with"


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_hybrid_search_finds_the_topic(kb: KnowledgeBase, question: str) -> None:
    titles = [h.title for h in kb.search(question, k=3)]
    assert set(titles) & QUESTIONS[question], titles


def test_filter_to_one_topic(kb: KnowledgeBase) -> None:
    hits = kb.search("what happens on exit", k=5, filters={"source": "pydoc:with"})
    assert hits and {h.source for h in hits} == {"pydoc:with"}
    assert all(h.metadata["title"] == "with" for h in hits)


def test_reingest_is_the_same_version(
    built: tuple[Workspace, IngestResult], encoder: MiniLMEncoder
) -> None:
    workspace, first = built
    again = ingest("python-docs", builtin="pydoc-topics", workspace=workspace, encoder=encoder)
    assert (again.status, again.version) == ("unchanged", first.version)
    assert (again.embedded, again.reused) == (0, first.chunks)
