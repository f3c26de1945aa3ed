"""The ``/ui`` pages over HTTP against a real gateway: who may see them,
the login cookie, HTML escaping of logged prompts, and what they show."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from llmline.dashboard.routes import COOKIE
from tests.dashboard.demo import wait_logged, write_drift_report
from tests.gateway.conftest import spec

PAGES = ("/ui", "/ui/requests", "/ui/drift", "/ui/runs", "/ui/evals")


def _client(gw: Any, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=gw.url, headers=headers, timeout=30, follow_redirects=False)


def _request_ids(html: str) -> list[str]:
    return re.findall(r'href="/ui/requests/([^"]+)"', html)


def test_viewer_key_sees_every_page(secured: tuple[Any, dict[str, str]]) -> None:
    gw, tokens = secured
    with _client(gw, tokens["viewer"]) as http:
        for path in PAGES:
            page = http.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert page.headers["content-type"].startswith("text/html")
        overview = http.get("/ui").text
        assert 'id="kpi-requests">5<' in overview
        assert 'id="kpi-errors">40.0%<' in overview  # 2 of 5 answered 503
        assert 'id="deployment-chat"' in overview and "fake:down" in overview
        listed = http.get("/ui/requests").text
        assert len(_request_ids(listed)) == 5
        assert len(_request_ids(http.get("/ui/requests?status=error").text)) == 2
        assert len(_request_ids(http.get("/ui/requests?deployment=chat").text)) == 3
        detail = http.get(f"/ui/requests/{_request_ids(listed)[0]}")
        assert detail.status_code == 200
        assert 'id="safety"' in detail.text and 'id="lineage"' in detail.text
        # A viewer may not read requests: metrics and safety yes, texts no.
        assert 'id="input-text"' not in detail.text
        assert "Texts are shown to roles that may read requests" in detail.text


def test_prompts_and_feedback_are_escaped(secured: tuple[Any, dict[str, str]]) -> None:
    gw, tokens = secured
    with _client(gw, tokens["admin"]) as http:
        ids = _request_ids(http.get("/ui/requests?deployment=chat").text)
        pages = {i: http.get(f"/ui/requests/{i}").text for i in ids}
        [(request_id, shown)] = [(i, p) for i, p in pages.items() if "pwned" in p]
        assert "<script>alert" not in shown
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; more" in shown
        assert 'id="input-text"' in shown  # admin reads texts
        assert "none yet" in shown  # no feedback so far
        comment = "<img src=x onerror=alert(1)>"
        sent = http.post("/v1/feedback", json={"id": request_id, "rating": 2, "comment": comment})
        assert sent.status_code == 201, sent.text
        page = http.get(f"/ui/requests/{request_id}").text
    assert comment not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_no_key_or_a_bad_key_goes_to_the_login_page(secured: tuple[Any, dict[str, str]]) -> None:
    gw, tokens = secured
    for token in (None, "llk_nope_nope", tokens["viewer"] + "x"):
        with _client(gw, token) as http:
            for path in PAGES:
                answer = http.get(path + "?window=1h")
                assert answer.status_code == 303, path
                target = answer.headers["location"]
                assert target.startswith("/ui/login?next=%2Fui"), target
                assert http.get(target).status_code == 200
    with _client(gw, tokens["user"]) as http:  # a role that may only call models
        answer = http.get("/ui")
        assert answer.status_code == 403
        assert "may not read the dashboard" in answer.text


def test_login_sets_a_strict_httponly_cookie(secured: tuple[Any, dict[str, str]]) -> None:
    gw, tokens = secured
    with _client(gw) as http:
        form = {"key": tokens["viewer"], "next": "/ui/runs"}
        answer = http.post("/ui/login", data=form)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/runs"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/ui"):
            assert attribute.lower() in cookie.lower()
        assert "secure" not in cookie.lower()  # plain http on loopback
        assert http.get("/ui/runs").status_code == 200  # the cookie is the key now
        assert tokens["viewer"] not in http.get("/ui").text  # never rendered back
        out = http.get("/ui/logout")
        assert out.status_code == 303
        assert http.get("/ui").status_code == 303


def test_login_refusals_never_echo_the_key(secured: tuple[Any, dict[str, str]]) -> None:
    gw, tokens = secured
    with _client(gw) as http:
        for key, message in (
            ("llk_wrong_secret", "invalid API key"),
            (tokens["user"], "may not read the dashboard"),
            ("", "no API key given"),
        ):
            answer = http.post("/ui/login", data={"key": key, "next": "/ui"})
            assert answer.status_code == 401
            assert message in answer.text
            if key:
                assert key not in answer.text
            assert COOKIE not in answer.headers.get("set-cookie", "")
        # Only dashboard paths are redirect targets.
        evil = http.post("/ui/login", data={"key": tokens["viewer"], "next": "//evil.example/"})
        assert evil.headers["location"] == "/ui"


def test_auth_off_needs_no_login(start_gateway: Any, gateway_ws: Any) -> None:
    gw = start_gateway(spec("a", "fake:a"))
    gw.openai().chat.completions.create(model="a", messages=[{"role": "user", "content": "hi"}])
    wait_logged(gateway_ws, 1)
    with _client(gw) as http:
        for path in PAGES:
            assert http.get(path).status_code == 200
        assert http.get("/ui/login").headers["location"] == "/ui"
        assert "auth off" in http.get("/ui").text
        detail = http.get(f"/ui/requests/{_request_ids(http.get('/ui/requests').text)[0]}")
        assert "a says: hi" in detail.text  # anonymous callers may read everything
        assert http.get("/ui/requests/nope").status_code == 404


def test_drift_page_before_and_after_a_report(start_gateway: Any, gateway_ws: Any) -> None:
    gw = start_gateway()
    with _client(gw) as http:
        empty = http.get("/ui/drift").text
        assert "no drift report yet — run <code>llmline monitor drift</code>" in empty
        assert http.get("/ui/drift/plot.png").status_code == 404
        write_drift_report(gateway_ws)
        page = http.get("/ui/drift").text
        assert "prompt embeddings" in page and "0.041" in page
        plot = http.get("/ui/drift/plot.png")
        assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
        assert "latest report" in http.get("/ui").text


@pytest.mark.parametrize("window", ["1h", "6h", "24h", "7d", "bogus"])
def test_every_window_renders(start_gateway: Any, window: str) -> None:
    gw = start_gateway(spec("a", "fake:a"))
    with _client(gw) as http:
        page = http.get(f"/ui?window={window}")
        assert page.status_code == 200
        assert page.text.count('<svg class="chart"') == 4
