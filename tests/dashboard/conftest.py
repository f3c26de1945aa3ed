"""Dashboard fixtures: the gateway fixtures (real gateway on loopback, fake
provider backends), and a gateway with auth on and one key per role."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from llmline.guard.keys import KeyStore
from tests.dashboard.demo import wait_logged
from tests.gateway.conftest import gateway_ws, spec, start_gateway

__all__ = ["gateway_ws", "start_gateway"]


@pytest.fixture
def secured(start_gateway: Any, gateway_ws: Any) -> tuple[Any, dict[str, str]]:
    """A gateway with auth on serving ``chat`` (fake) and ``broken`` (always
    503), after five requests: three ok (one an HTML prompt) and two errors."""
    keys = KeyStore(gateway_ws.metadata)
    tokens = {role: keys.create(f"{role}-key", role)[0] for role in ("admin", "viewer", "user")}
    gw = start_gateway(
        spec("chat", "fake:chat"), spec("broken", "fake:down?fail=unavailable"), auth=True
    )
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=tokens["admin"], max_retries=0)
    for text in ("hello", "<script>alert('pwned')</script> & more", "bye"):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": text}])
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model="broken", messages=[{"role": "user", "content": "x"}]
            )
    wait_logged(gateway_ws, 5)
    return gw, tokens
