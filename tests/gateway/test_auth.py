"""API keys at the gateway: 401 without a valid key, 403 outside the key's
role or deployments, health probes open, revocation honoured."""

from __future__ import annotations

import openai
import pytest

from llmline.guard.keys import KeyStore
from tests.gateway.conftest import spec


@pytest.fixture
def secured(start_gateway, gateway_ws):
    keys = KeyStore(gateway_ws.metadata)
    tokens = {
        "admin": keys.create("ops", "admin")[0],
        "user_a": keys.create("app-a", "user", deployments=["a"])[0],
        "viewer": keys.create("grafana", "viewer")[0],
    }
    gw = start_gateway(spec("a", "fake:a"), spec("b", "fake:b"), auth=True)
    gw.app.state.auth.ttl_s = 0.0  # no verification cache: revocation applies at once
    return gw, tokens, keys


def chat(gw, token: str | None, model: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with gw.http() as http:
        return http.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )


def test_missing_or_wrong_key_is_401(secured) -> None:
    gw, tokens, _ = secured
    for token in (None, "llk_nope_nope", tokens["admin"] + "x"):
        r = chat(gw, token, "a")
        assert r.status_code == 401, r.text
        assert r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        gw.openai().chat.completions.create(model="a", messages=[{"role": "user", "content": "hi"}])


def test_roles_and_deployment_scopes(secured) -> None:
    gw, tokens, _ = secured
    assert chat(gw, tokens["admin"], "a").status_code == 200
    assert chat(gw, tokens["admin"], "b").status_code == 200
    assert chat(gw, tokens["user_a"], "a").status_code == 200
    denied = chat(gw, tokens["user_a"], "b")
    assert denied.status_code == 404  # scoped elsewhere: existence not revealed
    assert denied.json()["error"]["message"] == chat(gw, tokens["user_a"], "nope").json()["error"][
        "message"
    ].replace("'nope'", "'b'")
    assert chat(gw, tokens["viewer"], "a").status_code == 403
    with gw.http() as http:
        viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
        assert http.get("/metrics", headers=viewer).status_code == 200
        assert http.get("/v1/models", headers=viewer).status_code == 200
        assert http.get("/metrics").status_code == 401
        assert http.get("/healthz").status_code == 200  # probes stay open
        assert http.get("/readyz").status_code == 200
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=tokens["user_a"], max_retries=0)
    reply = client.chat.completions.create(model="a", messages=[{"role": "user", "content": "x"}])
    assert reply.llmline["model_version"] == "fake:a"


def test_revoked_key_stops_working(secured) -> None:
    gw, tokens, keys = secured
    assert chat(gw, tokens["user_a"], "a").status_code == 200
    key_id = next(k.key_id for k in keys.list() if k.name == "app-a")
    keys.revoke(key_id)
    r = chat(gw, tokens["user_a"], "a")
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]["message"]
