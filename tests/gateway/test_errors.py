"""Bad input and faults: each gets OpenAI's error body and the right status,
and the gateway keeps serving."""

from __future__ import annotations

import time

import openai
import pytest

from tests.gateway.conftest import spec

CHAT = "/v1/chat/completions"


def _chat(**overrides):
    body = {"model": "faq", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
    return body | overrides


def _assert_error(response, status: int, *, code: str | None = None, param: str | None = None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


@pytest.fixture
def gw(start_gateway):
    return start_gateway(
        spec("faq", "fake:ok"),
        spec("broken", "fake:dead?load=fail"),
        spec("flaky", "fake:bad?fail=error", fallbacks=["fake:spare"]),
        spec("down", "fake:bad?fail=error"),
        spec("slow", "fake:late?fail=timeout"),
    )


def test_malformed_json(gw) -> None:
    with gw.http() as http:
        r = http.post(
            CHAT,
            content=b'{"model": "faq", "messages": [',
            headers={"content-type": "application/json"},
        )
    error = _assert_error(r, 400)
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]


def test_wrong_types(gw) -> None:
    with gw.http() as http:
        r = http.post(CHAT, json=_chat(max_tokens="lots"))
        _assert_error(r, 400, param="max_tokens")
        r = http.post(CHAT, json=_chat(messages="hello"))
        _assert_error(r, 400, param="messages")
        r = http.post(CHAT, json=_chat(temperature=5))
        _assert_error(r, 400, param="temperature")


def test_unknown_model_is_404(gw) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.openai().chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 404
    assert caught.value.body["code"] == "model_not_found"
    assert "faq" in caught.value.body["message"]  # names the deployments that exist


def test_empty_messages_and_empty_question(gw) -> None:
    with gw.http() as http:
        _assert_error(http.post(CHAT, json=_chat(messages=[])), 400, param="messages")
        r = http.post(CHAT, json=_chat(messages=[{"role": "user", "content": "  "}]))
        _assert_error(r, 400, param="messages")
        r = http.post(CHAT, json=_chat(messages=[{"role": "system", "content": "be nice"}]))
        _assert_error(r, 400, param="messages")


def test_ten_megabyte_body_is_413(gw) -> None:
    huge = "x" * (10 * 1024 * 1024)
    with gw.http() as http:
        r = http.post(CHAT, json=_chat(messages=[{"role": "user", "content": huge}]))
        _assert_error(r, 413, code="request_too_large")

        def chunks():  # no Content-Length: the limit is counted while reading
            for _ in range(11):
                yield b"x" * (1024 * 1024)

        r = http.post(CHAT, content=chunks(), headers={"content-type": "application/json"})
        _assert_error(r, 413)
        assert http.get("/healthz").status_code == 200


def test_invalid_utf8(gw) -> None:
    body = b'{"model": "faq", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    with gw.http() as http:
        r = http.post(CHAT, content=body, headers={"content-type": "application/json"})
    _assert_error(r, 400)


def test_max_tokens_beyond_cap(gw) -> None:
    with gw.http() as http:
        r = http.post(CHAT, json=_chat(max_tokens=10**6))
    error = _assert_error(r, 400, code="max_tokens_exceeded", param="max_tokens")
    assert "1024" in error["message"]


def test_n_greater_than_one_is_rejected(gw) -> None:
    with gw.http() as http:
        _assert_error(http.post(CHAT, json=_chat(n=2)), 400, param="n")


def test_unknown_route_and_method(gw) -> None:
    with gw.http() as http:
        _assert_error(http.get("/v1/nothing"), 404)
        _assert_error(http.get(CHAT), 405)


def test_model_that_fails_to_load(gw) -> None:
    with gw.http() as http:
        r = http.post(CHAT, json=_chat(model="broken"))
        error = _assert_error(r, 503, code="backend_unavailable")
        assert "weights could not be loaded" in error["message"]
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["deployments"]["broken"]["ready"] is False
        assert ready.json()["deployments"]["faq"]["ready"] is True
        # Others keep serving.
        assert http.post(CHAT, json=_chat()).status_code == 200


def test_backend_failure_falls_back_then_502(gw) -> None:
    with gw.http() as http:
        r = http.post(CHAT, json=_chat(model="flaky"))
        assert r.status_code == 200, r.text
        info = r.json()["llmline"]
        assert info["model_version"] == "fake:spare"
        assert info["route_reason"].startswith("fallback after fake:bad?fail=error failed")
        _assert_error(http.post(CHAT, json=_chat(model="down")), 502)
        _assert_error(http.post(CHAT, json=_chat(model="slow")), 504, code="upstream_timeout")


def test_stream_errors_before_first_token_are_http_errors(gw) -> None:
    with gw.http() as http:
        r = http.post(CHAT, json=_chat(model="down", stream=True))
        _assert_error(r, 502)


def test_client_disconnect_cancels_generation(start_gateway) -> None:
    gw = start_gateway(spec("slowly", "fake:drip?delay_ms=50"))
    provider = gw.service.engine.provider("fake:drip?delay_ms=50")
    with gw.http() as http:
        body = _chat(model="slowly", stream=True, max_tokens=200)
        with http.stream("POST", CHAT, json=body) as r:
            lines = r.iter_lines()
            first = next(line for line in lines if line)
            assert first.startswith("data: ")
        # Closed after one token: 200 tokens at 50 ms would take 10 s.
    deadline = time.monotonic() + 5
    while gw.service.engine.in_flight("fake:drip?delay_ms=50") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gw.service.engine.in_flight("fake:drip?delay_ms=50") == 0
    assert provider.calls == 1
    metrics = gw.http().get("/metrics").text
    assert 'llmline_in_flight_requests{deployment="slowly"} 0.0' in metrics
