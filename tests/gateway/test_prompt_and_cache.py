"""The prompt contract (questions rendered in the tuning template) and the
exact and semantic caches, through the running gateway."""

from __future__ import annotations

from llmline.gateway.deployments.api import create_deployment
from llmline.prompts import PromptRegistry
from tests.gateway.conftest import spec
from tests.gateway.test_rollouts import ask, wait_for

TEMPLATE = "Answer like a Python expert.\n\nQuestion:\n{question}"


def test_question_is_rendered_in_the_bound_template(start_gateway, gateway_ws) -> None:
    PromptRegistry(gateway_ws.metadata).create("faq-instruction", TEMPLATE)
    gw = start_gateway(spec("faq", "fake:echo", prompt="faq-instruction@latest"))
    with gw.http() as http:
        reply = ask(http, "faq", content="what is a tuple", max_tokens=50)
        # The fake answers with the words of the message the model received.
        assert reply["choices"][0]["message"]["content"] == (
            "echo says: Answer like a Python expert. Question: what is a tuple"
        )
        assert reply["llmline"]["prompt_version"] == "faq-instruction@1"  # pinned at create
        raw = ask(http, "faq", content="what is a tuple", max_tokens=50, llmline={"raw": True})
        assert raw["choices"][0]["message"]["content"] == "echo says: what is a tuple"
        assert raw["llmline"]["prompt_version"] is None


def test_template_with_several_variables_needs_them(start_gateway, gateway_ws) -> None:
    PromptRegistry(gateway_ws.metadata).create("two", "Topic {topic}: {question}")
    gw = start_gateway(spec("t", "fake:echo", prompt="two@1"))
    with gw.http() as http:
        r = http.post(
            "/v1/chat/completions",
            json={"model": "t", "messages": [{"role": "user", "content": "q"}]},
        )
        assert r.status_code == 400
        assert "topic" in r.json()["error"]["message"]
        ok = ask(http, "t", max_tokens=20, llmline={"variables": {"topic": "io", "question": "q?"}})
        assert ok["choices"][0]["message"]["content"] == "echo says: Topic io: q?"


def test_exact_cache_hits_deterministic_requests_only(start_gateway, gateway_ws) -> None:
    gw = start_gateway(spec("c", "fake:m"))
    provider = gw.service.engine.provider("fake:m")
    with gw.http() as http:
        first = ask(http, "c", temperature=0)
        second = ask(http, "c", temperature=0)
        assert (first["llmline"]["cache"], second["llmline"]["cache"]) == ("miss", "hit")
        assert second["choices"] == first["choices"]
        assert second["llmline"]["model_version"] == "fake:m"
        assert provider.calls == 1
        ask(http, "c", temperature=0.8)  # sampled: never served from the cache
        ask(http, "c", temperature=0.8)
        assert provider.calls == 3
        assert ask(http, "c", temperature=0, llmline={"cache": False})["llmline"]["cache"] == "miss"
        # Another API key does not share entries.
        r = http.post(
            "/v1/chat/completions",
            headers={"Authorization": "Bearer other-key"},
            json={
                "model": "c",
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 3,
                "temperature": 0,
            },
        )
        assert r.json()["llmline"]["cache"] == "miss"
        assert (
            'llmline_cache_lookups_total{deployment="c",result="hit"} 1.0'
            in http.get("/metrics").text
        )


def test_cache_is_invalidated_when_the_model_changes(start_gateway, gateway_ws) -> None:
    gw = start_gateway(spec("c", "fake:one"))
    with gw.http() as http:
        ask(http, "c", temperature=0)
        assert ask(http, "c", temperature=0)["llmline"]["cache"] == "hit"
        create_deployment(gateway_ws, spec("c", "fake:two"), replace=True)
        wait_for(lambda: gw.service.engine.deployments["c"].spec.models == ["fake:two"])
        after = ask(http, "c", temperature=0)
        assert after["llmline"]["cache"] == "miss"
        assert after["llmline"]["model_version"] == "fake:two"


def test_semantic_cache_answers_paraphrases(start_gateway) -> None:
    gw = start_gateway(spec("s", "fake:m", cache={"semantic": True, "similarity": 0.8}))
    provider = gw.service.engine.provider("fake:m")
    with gw.http() as http:
        ask(http, "s", content="How do I sort a list in Python?", temperature=0)
        hit = ask(http, "s", content="how can I sort a Python list", temperature=0)
        assert hit["llmline"]["cache"] == "semantic"
        other = ask(http, "s", content="What is the capital of France?", temperature=0)
        assert other["llmline"]["cache"] == "miss"
    assert provider.calls == 2
