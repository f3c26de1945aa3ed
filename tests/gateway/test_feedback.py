"""``POST /v1/feedback`` on a real gateway: the response id from the
official openai SDK, feedback sent at once (the request log may not have
stored the response yet), idempotent retries, OpenAI-style errors, auth."""

from __future__ import annotations

from typing import Any

import pytest

from llmline.guard.keys import KeyStore
from llmline.monitoring.feedback import list_feedback
from llmline.workspace import Workspace
from tests.gateway.conftest import spec

PROMPT = "stackoverflow-python@production"


def _feedback(gw: Any, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with gw.http() as http:
        return http.post("/v1/feedback", json=body, headers=headers)


def test_feedback_on_a_fresh_response_then_retries_are_idempotent(
    start_gateway: Any, gateway_ws: Workspace
) -> None:
    gw = start_gateway(spec("faq", "fake:echo", prompt=PROMPT))
    client = gw.openai()
    reply = client.chat.completions.create(
        model="faq", messages=[{"role": "user", "content": "What is a tuple?"}], max_tokens=40
    )
    assert reply.id.startswith("chatcmpl-")
    # At once: the response may still be only in the request log's journal.
    body = {"id": reply.id, "rating": "up", "comment": "clear", "user": "u-1"}
    first = _feedback(gw, body)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["object"] == "feedback" and created["id"].startswith("fb-")
    assert created["response_id"] == reply.id
    assert (created["rating"], created["rating_scale"], created["thumbs"]) == (5, "thumbs", "up")
    assert (created["status"], created["user"]) == ("new", "u-1")
    retry = _feedback(gw, body)
    assert retry.status_code == 200
    assert retry.json() == created
    # The SDK's generic POST works too; a text completion's id (cmpl-) as well.
    text = client.completions.create(model="faq", prompt="Why is the sky blue?", max_tokens=5)
    assert text.id.startswith("cmpl-")
    posted = client.post(
        "/feedback",
        body={"id": text.id, "rating": 2, "correction": "Rayleigh scattering."},
        cast_to=dict,
    )
    assert posted["rating_scale"] == "5" and posted["correction"] == "Rayleigh scattering."
    stored = list_feedback(gateway_ws)
    assert {f.request_id for f in stored} == {reply.id, text.id}
    assert len(stored) == 2


def test_unknown_ids_are_404_and_bad_values_400(start_gateway: Any) -> None:
    gw = start_gateway(spec("faq", "fake:echo"))
    with gw.http() as http:
        r = http.post(
            "/v1/chat/completions",
            json={"model": "faq", "messages": [{"role": "user", "content": "hi"}]},
        )
    response_id = r.json()["id"]
    missing = _feedback(gw, {"id": "chatcmpl-0000", "rating": 5})
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "no response with id 'chatcmpl-0000'",
        "type": "invalid_request_error",
        "param": "id",
        "code": "not_found",
    }
    cases: list[tuple[dict[str, Any], str | None, str]] = [
        ({"rating": 7}, "rating", "from 1 to 5"),
        ({"rating": 0}, "rating", "from 1 to 5"),
        ({"rating": "meh"}, "rating", "invalid rating 'meh': a whole number from 1 to 5"),
        ({"rating": True}, "rating", ""),
        ({"rating": 4.5}, "rating", ""),
        ({}, "rating", "needs a rating, a comment or a correction"),
        ({"correction": "x" * 9000}, "correction", "at most 8000"),
        ({"ratin": 5}, "ratin", "Extra inputs are not permitted"),
    ]
    for extra, param, message in cases:
        r = _feedback(gw, {"id": response_id, **extra})
        assert r.status_code == 400, (extra, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] is not None and error["param"].startswith(param or ""), error
        assert message in error["message"], error
    bad_id = _feedback(gw, {"id": "../../etc/passwd", "rating": 5})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["param"] == "id"


@pytest.fixture
def secured(start_gateway: Any, gateway_ws: Workspace) -> tuple[Any, dict[str, str]]:
    keys = KeyStore(gateway_ws.metadata)
    tokens = {
        "app": keys.create("app", "user", deployments=["a"])[0],
        "other": keys.create("other-app", "user", deployments=["b"])[0],
        "viewer": keys.create("grafana", "viewer")[0],
    }
    gw = start_gateway(spec("a", "fake:a"), spec("b", "fake:b"), auth=True)
    return gw, tokens


def test_feedback_needs_a_key_that_may_call_the_deployment(
    secured: tuple[Any, dict[str, str]],
) -> None:
    gw, tokens = secured
    with gw.http() as http:
        r = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {tokens['app']}"},
            json={"model": "a", "messages": [{"role": "user", "content": "hi"}]},
        )
    response_id = r.json()["id"]
    body = {"id": response_id, "rating": 4}
    assert _feedback(gw, body).status_code == 401
    assert _feedback(gw, body, tokens["viewer"]).status_code == 403  # read-only role
    outside = _feedback(gw, body, tokens["other"])  # scoped elsewhere: as if unknown
    assert outside.status_code == 404
    assert outside.json()["error"]["message"] == f"no response with id {response_id!r}"
    ok = _feedback(gw, body, tokens["app"])
    assert ok.status_code == 201, ok.text
    stored = list_feedback(gw.service.engine.workspace)
    assert [f.key_id for f in stored] == [tokens["app"].split("_")[1]]
