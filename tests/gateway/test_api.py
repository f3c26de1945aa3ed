"""The OpenAI-compatible API through the official openai SDK and httpx,
against a real uvicorn server on loopback."""

from __future__ import annotations

import json

import pytest

from tests.gateway.conftest import spec

QUESTION = "how do I sort a list of tuples by the second item?"


@pytest.fixture
def gw(start_gateway):
    return start_gateway(spec("faq", "fake:alpha", "fake:beta", seed=3))


def test_chat_completion_carries_extensions(gw) -> None:
    reply = gw.openai().chat.completions.create(
        model="faq", messages=[{"role": "user", "content": QUESTION}], max_tokens=6
    )
    choice = reply.choices[0]
    served_by = reply.llmline["model_version"]
    assert served_by in {"fake:alpha", "fake:beta"}
    assert choice.message.content.startswith(served_by.removeprefix("fake:") + " says:")
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 6
    assert set(reply.safety_attributes) >= {"blocked", "categories", "scores", "severity"}
    assert reply.safety_attributes["blocked"] is False
    assert reply.input_safety_attributes["blocked"] is False
    assert reply.citation_metadata == {"citations": []}
    info = reply.llmline
    assert info["deployment"] == "faq"
    assert info["route_reason"].startswith("random")
    assert info["cache"] == "miss"
    assert info["usage"]["completion_tokens"] == 6
    assert info["latency_ms"] > 0


def test_streaming_chat_matches_non_streaming(gw) -> None:
    client = gw.openai()
    messages = [{"role": "user", "content": QUESTION}]
    chunks = list(
        client.chat.completions.create(
            model="faq",
            messages=messages,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
            temperature=0.7,
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["length"]
    assert finish[0].safety_attributes["blocked"] is False
    assert finish[0].llmline["model_version"].removeprefix("fake:") == text.split()[0]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage.completion_tokens == 5


def test_stream_without_usage_has_no_usage_chunk(gw) -> None:
    chunks = list(
        gw.openai().chat.completions.create(
            model="faq", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason is not None


def test_text_completions(gw) -> None:
    client = gw.openai()
    done = client.completions.create(model="faq", prompt="def add(a, b):", max_tokens=4)
    assert len(done.choices[0].text.split()) == 4
    assert done.llmline["deployment"] == "faq"
    streamed = list(
        client.completions.create(model="faq", prompt="def add(a, b):", max_tokens=4, stream=True)
    )
    assert len("".join(c.choices[0].text for c in streamed if c.choices).split()) == 4


def test_models_lists_deployments_and_embedding_model(gw) -> None:
    models = gw.openai().models.list()
    ids = {m.id: m for m in models.data}
    assert "faq" in ids and "all-MiniLM-L6-v2" in ids
    assert ids["faq"].kind == "deployment"
    assert ids["faq"].details["strategy"] == "random"


def test_health_readiness_metrics_and_openapi(gw) -> None:
    with gw.http() as http:
        assert http.get("/healthz").json()["status"] == "ok"
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["deployments"]["faq"]["ready"] is True
        gw.openai().chat.completions.create(
            model="faq", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        metrics = http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'llmline_requests_total{deployment="faq"' in metrics.text
        assert "llmline_request_latency_seconds_bucket" in metrics.text
        assert 'llmline_backend_up{target="fake:alpha"} 1.0' in metrics.text
        assert "process_resident_memory_bytes" in metrics.text
        schema = http.get("/openapi.json").json()
        assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/embeddings"} <= set(
            schema["paths"]
        )


def test_embeddings_with_shipped_minilm(gw) -> None:
    client = gw.openai()
    out = client.embeddings.create(
        model="all-MiniLM-L6-v2", input=["sort a list in python", "sorting python lists", "cats"]
    )
    vectors = [d.embedding for d in out.data]  # the SDK asked for base64 and decoded it
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.2
    assert out.usage.prompt_tokens > 0
    with gw.http() as http:
        floats = http.post(
            "/v1/embeddings",
            json={"model": "all-MiniLM-L6-v2", "input": "x", "encoding_format": "float"},
        ).json()
    assert isinstance(floats["data"][0]["embedding"][0], float)


def test_response_ids_are_unique_and_in_header(gw) -> None:
    with gw.http() as http:
        ids = set()
        for _ in range(3):
            r = http.post(
                "/v1/chat/completions",
                json={
                    "model": "faq",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 2,
                },
            )
            body = r.json()
            assert r.headers["x-request-id"] == body["id"] == body["llmline"]["request_id"]
            ids.add(body["id"])
        assert len(ids) == 3


def test_sse_wire_format(gw) -> None:
    with gw.http() as http:
        body = {
            "model": "faq",
            "messages": [{"role": "user", "content": "hi there"}],
            "max_tokens": 3,
            "stream": True,
        }
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert "citation_metadata" in events[-1] and "llmline" in events[-1]
