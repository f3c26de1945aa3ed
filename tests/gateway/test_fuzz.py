"""The OpenAPI schema fuzzed with schemathesis (bounded examples): no 5xx
other than the documented backend ones, and every error has OpenAI's body."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.gateway.conftest import spec  # noqa: E402

DOCUMENTED_5XX = {502, 503, 504}
VALID = {
    "/v1/chat/completions": {"model": "faq", "messages": [{"role": "user", "content": "fuzz"}]},
    "/v1/completions": {"model": "faq", "prompt": "fuzz"},
    "/v1/embeddings": {"model": "all-MiniLM-L6-v2", "input": "fuzz"},
}


def test_fuzz_openapi_schema(start_gateway) -> None:
    gw = start_gateway(spec("faq", "fake:fuzz"))
    schema = schemathesis.openapi.from_url(gw.url + "/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 7
    seen: dict[str, set[int]] = {}
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:
            _call(case)
            # Random model names are all 404s: also send the other fuzzed fields
            # (sampling options, extensions) to a real model with a real question.
            if isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
                case.body.update(VALID[case.operation.path])
                _call(case)

        def _call(case) -> None:
            response = case.call(base_url=gw.url, timeout=60)
            status = response.status_code
            seen.setdefault(case.operation.label, set()).add(status)
            assert status < 500 or status in DOCUMENTED_5XX, (case.body, response.text)
            if status >= 400:
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}

        check()
    # The fuzzer reached past validation at least once on the main endpoint.
    assert 200 in seen["POST /v1/chat/completions"]
    assert 200 in seen["POST /v1/completions"]
    with gw.http() as http:
        assert http.get("/healthz").status_code == 200
