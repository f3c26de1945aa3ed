"""``kind: rag`` deployments end to end: a real gateway on loopback, a tiny
knowledge base ingested with the real MiniLM, the official openai SDK as
client; only the model's output is fake (``fake:`` provider)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from llmline.gateway.deployments.spec import DeploymentSpec, RagPolicy
from llmline.rag.grounding import REFUSAL
from llmline.workspace import Workspace

TIDES_ANSWER = "Tides rise and fall twice a day because the moon pulls on the oceans [1]."
ON_TOPIC = "Why do tides rise and fall twice a day?"
OFF_TOPIC = "Which football club won the 1998 league cup final?"


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tides.md").write_text(
        "# Tides\n\nTides rise and fall twice a day because the moon pulls on the oceans. "
        "At new and full moon the sun and the moon align and the tides are larger.\n",
        "utf-8",
    )
    (folder / "bread.md").write_text(
        "# Baking bread\n\nKnead the dough for ten minutes, then let it rise in a warm "
        "place until it doubles in size.\n",
        "utf-8",
    )
    return folder


@pytest.fixture
def docs_kb(gateway_ws: Workspace, tmp_path: Path) -> str:
    from llmline.rag import ingest

    ingest("docs", [write_docs(tmp_path / "docs")], workspace=gateway_ws)
    return "docs"


def rag_spec(name: str, model: str, **policy: Any) -> DeploymentSpec:
    rag = RagPolicy(knowledge_base="docs", top_k=2, **policy)
    return DeploymentSpec(name=name, kind="rag", models=[model], rag=rag)


def fixed(text: str) -> str:
    return f"fake:bot?text={quote_plus(text)}"


def test_rag_answer_cites_its_source_non_stream(
    start_gateway: Callable[..., Any], docs_kb: str
) -> None:
    gateway = start_gateway(rag_spec("docs-qa", fixed(TIDES_ANSWER)))
    with gateway.openai() as client:
        reply = client.chat.completions.create(
            model="docs-qa", messages=[{"role": "user", "content": ON_TOPIC}]
        )
    assert reply.choices[0].message.content == TIDES_ANSWER
    extra = reply.model_extra or {}
    (citation,) = extra["citation_metadata"]["citations"]
    assert citation["uri"].endswith("/tides.md")
    assert citation["title"] == "Tides"
    # The [1] marker's sentence: here the whole answer.
    assert (citation["start_index"], citation["end_index"]) == (0, len(TIDES_ANSWER))
    assert citation["chunk_id"]
    assert 0 <= citation["source_start"] < citation["source_end"]
    info = extra["llmline"]
    assert info["prompt_version"] == "rag-grounded@1"
    assert info["grounding"]["refused"] is False
    assert info["grounding"]["knowledge_base"].startswith("docs@")
    assert info["grounding"]["sources"][0]["uri"] == citation["uri"]


def test_model_gets_the_grounded_prompt(start_gateway: Callable[..., Any], docs_kb: str) -> None:
    # Without text=, the fake model echoes the prompt it was sent.
    gateway = start_gateway(rag_spec("echo", "fake:echo", max_context_tokens=64))
    with gateway.openai() as client:
        reply = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": ON_TOPIC}], max_tokens=400
        )
    text = reply.choices[0].message.content or ""
    assert "[1] Tides" in text and "moon pulls on the oceans" in text
    assert "Question: " + ON_TOPIC in text
    # A budget of 64 tokens holds one of the two chunks: the bread one stays out.
    assert "[2]" not in text and "dough" not in text


def test_grounded_only_refuses_off_topic_without_calling_the_model(
    start_gateway: Callable[..., Any], docs_kb: str
) -> None:
    target = fixed(TIDES_ANSWER)
    gateway = start_gateway(rag_spec("strict", target, grounded_only=True, min_score=0.3))
    with gateway.openai() as client:
        refused = client.chat.completions.create(
            model="strict", messages=[{"role": "user", "content": OFF_TOPIC}]
        )
        assert refused.choices[0].message.content == REFUSAL
        assert refused.choices[0].finish_reason == "stop"
        extra = refused.model_extra or {}
        assert extra["citation_metadata"]["citations"] == []
        assert extra["llmline"]["grounding"]["refused"] is True
        assert extra["llmline"]["model_version"] is None
        assert gateway.service.engine.provider(target).calls == 0
        answered = client.chat.completions.create(
            model="strict", messages=[{"role": "user", "content": ON_TOPIC}]
        )
    assert answered.choices[0].message.content == TIDES_ANSWER
    assert gateway.service.engine.provider(target).calls == 1


def test_rag_stream_sends_citations_in_the_final_chunk(
    start_gateway: Callable[..., Any], docs_kb: str
) -> None:
    answer = "Knead the dough for ten minutes [2]. Tides follow the moon [1]."
    gateway = start_gateway(rag_spec("docs-stream", fixed(answer)))
    with gateway.openai() as client:
        stream = client.chat.completions.create(
            model="docs-stream",
            messages=[{"role": "user", "content": "How long should bread dough be kneaded?"}],
            stream=True,
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer
    final = chunks[-1].model_extra or {}
    citations = final["citation_metadata"]["citations"]
    sources = final["llmline"]["grounding"]["sources"]
    assert [c["uri"] for c in citations] == [sources[1]["uri"], sources[0]["uri"]]
    first, second = citations
    assert answer[first["start_index"] : first["end_index"]].endswith("[2].")
    assert answer[second["start_index"] : second["end_index"]] == "Tides follow the moon [1]."


def test_stream_refusal(start_gateway: Callable[..., Any], docs_kb: str) -> None:
    gateway = start_gateway(rag_spec("strict-stream", "fake:x", grounded_only=True, min_score=0.3))
    with gateway.openai() as client:
        chunks = list(
            client.chat.completions.create(
                model="strict-stream",
                messages=[{"role": "user", "content": OFF_TOPIC}],
                stream=True,
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REFUSAL
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["llmline"]["grounding"]["refused"] is True
