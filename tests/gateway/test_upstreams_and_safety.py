"""Through the gateway with real neighbours: stub OpenAI-compatible
upstreams on loopback (hang, garbage, failure → fallback), the Redis cache
shared by two gateways, blocked prompts and outputs, and citations."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmline.workspace import Workspace
from tests.gateway.conftest import spec
from tests.gateway.test_rollouts import ask


def configure(ws: Workspace, **sections: object) -> Workspace:
    path = ws.root / "llmline.yaml"
    config = yaml.safe_load(path.read_text()) or {}
    config.update(sections)
    path.write_text(yaml.safe_dump(config))
    return Workspace(ws.root)


def upstream(url: str, **options: object) -> dict[str, object]:
    return {"base_url": url, "model": "stub", "max_retries": 0, **options}


def test_upstream_hang_times_out_then_falls_back_or_504(start_gateway, gateway_ws, stubs) -> None:
    _, hang_url = stubs("hang", mode="hang")
    good, good_url = stubs("good", text="from the good upstream")
    ws = configure(
        gateway_ws,
        upstreams={
            "hang": upstream(hang_url, timeout_s=0.5),
            "good": upstream(good_url),
        },
    )
    gw = start_gateway(
        spec("rescued", "upstream:hang", fallbacks=["upstream:good"]),
        spec("stuck", "upstream:hang"),
        workspace=ws,
    )
    with gw.http() as http:
        reply = ask(http, "rescued", temperature=0.5, max_tokens=10)
        assert reply["choices"][0]["message"]["content"] == "from the good upstream"
        assert reply["llmline"]["model_version"] == "upstream:good"
        assert "fallback after upstream:hang failed" in reply["llmline"]["route_reason"]
        r = http.post(
            "/v1/chat/completions",
            json={"model": "stuck", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "upstream_timeout"
    assert good.requests == 1


def test_upstream_garbage_is_502_and_gateway_keeps_serving(
    start_gateway, gateway_ws, stubs
) -> None:
    _, bad_url = stubs("bad", mode="garbage")
    _, ok_url = stubs("ok")
    ws = configure(gateway_ws, upstreams={"bad": upstream(bad_url), "ok": upstream(ok_url)})
    gw = start_gateway(spec("bad", "upstream:bad"), spec("ok", "upstream:ok"), workspace=ws)
    with gw.http() as http:
        for stream in (False, True):
            r = http.post(
                "/v1/chat/completions",
                json={
                    "model": "bad",
                    "stream": stream,
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
            assert r.status_code == 502, r.text
            assert r.json()["error"]["type"] == "upstream_error"
        assert ask(http, "ok")["choices"][0]["message"]["content"].startswith("stub:")


def test_upstream_streaming_through_the_gateway(start_gateway, gateway_ws, stubs) -> None:
    _, url = stubs("s")
    ws = configure(
        gateway_ws, upstreams={"s": upstream(url, input_usd_per_1k=1.0, output_usd_per_1k=2.0)}
    )
    gw = start_gateway(spec("s", "upstream:s"), workspace=ws)
    chunks = list(
        gw.openai().chat.completions.create(
            model="s",
            messages=[{"role": "user", "content": "a b c"}],
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "stub: a b c"
    usage = chunks[-1].usage
    assert chunks[-1].llmline["cost_usd"] == pytest.approx(
        (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1000
    )


@pytest.mark.usefixtures("redis_server")
def test_redis_cache_is_shared_by_two_gateways(start_gateway, gateway_ws, redis_server) -> None:
    ws = configure(gateway_ws, gateway={"redis_url": redis_server.url})
    first = start_gateway(spec("c", "fake:m"), workspace=ws)
    second = start_gateway(workspace=ws)
    with first.http() as a, second.http() as b:
        assert ask(a, "c", temperature=0, content="shared?")["llmline"]["cache"] == "miss"
        assert ask(b, "c", temperature=0, content="shared?")["llmline"]["cache"] == "hit"
    assert second.service.engine.provider("fake:m").calls == 0


THREAT = "I will kill you and your family tonight."


def test_blocked_output_is_empty_with_content_filter(start_gateway) -> None:
    from urllib.parse import quote

    gw = start_gateway(spec("angry", f"fake:a?text={quote(THREAT)}"))
    reply = gw.openai().chat.completions.create(
        model="angry", messages=[{"role": "user", "content": "tell me a story"}], max_tokens=20
    )
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.choices[0].message.content == ""
    attrs = reply.safety_attributes
    assert attrs["blocked"] is True
    assert attrs["categories"]
    high = [c for c, s in attrs["severity"].items() if s == "high"]
    assert high and all(attrs["scores"][c] >= 0.5 for c in high)
    chunks = list(
        gw.openai().chat.completions.create(
            model="angry",
            messages=[{"role": "user", "content": "tell me"}],
            max_tokens=20,
            stream=True,
        )
    )
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish[-1].choices[0].finish_reason == "content_filter"
    assert finish[-1].safety_attributes["blocked"] is True


def test_blocked_prompt_never_reaches_the_model(start_gateway) -> None:
    gw = start_gateway(spec("p", "fake:m"))
    reply = gw.openai().chat.completions.create(
        model="p", messages=[{"role": "user", "content": THREAT}], max_tokens=5
    )
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.input_safety_attributes["blocked"] is True
    assert reply.llmline["model_version"] is None
    assert gw.service.engine.provider("fake:m").calls == 0
    metrics = gw.http().get("/metrics").text
    assert 'llmline_blocked_total{category="' in metrics
    assert 'deployment="p",stage="input"' in metrics


def test_citations_point_at_the_training_answer(start_gateway, tmp_path: Path) -> None:
    import json

    from llmline.data.builder import build_dataset
    from llmline.data.catalog import get_version
    from llmline.testing.workspace import synthetic_workspace

    ws = synthetic_workspace(tmp_path / "cite", questions=40)
    ref = build_dataset(ws, "python-faq").ref
    train = Path(get_version(ws, ref).uri.removeprefix("file://")) / "train.jsonl"
    answer = json.loads(train.read_text().splitlines()[0])["output_text"]
    sentence = " ".join(answer.split()[:14])
    gw = start_gateway(spec("cite", "fake:echo", citations=ref), workspace=ws)
    reply = gw.openai().chat.completions.create(
        model="cite", messages=[{"role": "user", "content": sentence}], max_tokens=100
    )
    text = reply.choices[0].message.content
    citations = reply.citation_metadata["citations"]
    assert citations, text
    first = citations[0]
    cited = text[first["start_index"] : first["end_index"]]
    assert text == f"echo says: {sentence}"
    assert cited == sentence  # the span indexes exactly the reproduced text
    assert first["uri"].startswith(f"llmline://datasets/{ref}/train#")
    assert "license" in first


def test_upstream_rate_limit_is_429_with_retry_after(start_gateway, gateway_ws, stubs) -> None:
    limited, url = stubs("limited", mode="error429", retry_after="7")
    ws = configure(gateway_ws, upstreams={"limited": upstream(url)})
    gw = start_gateway(spec("l", "upstream:limited"), workspace=ws)
    with gw.http() as http:
        r = http.post(
            "/v1/chat/completions",
            json={"model": "l", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == "7"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert limited.requests == 1  # max_retries=0 here
