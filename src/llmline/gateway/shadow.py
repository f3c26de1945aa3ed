"""Shadow traffic: the challenger answers a copy of the request; its answer
is compared with the served one and logged, never returned."""

from __future__ import annotations

import difflib
import json
import logging
import time
from typing import TYPE_CHECKING

from llmline.gateway.errors import BackendError

if TYPE_CHECKING:
    from llmline.gateway.engine import Engine, LiveDeployment
    from llmline.gateway.metrics import GatewayMetrics
    from llmline.gateway.providers import GenerationRequest

__all__ = ["compare_shadow", "similarity"]

log = logging.getLogger("llmline.gateway.shadow")


def similarity(a: str, b: str) -> float:
    """Word-level similarity in [0, 1] (1: the same words in the same order)."""
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


async def compare_shadow(
    engine: Engine,
    metrics: GatewayMetrics,
    live: LiveDeployment,
    request: GenerationRequest,
    *,
    target: str,
    served_text: str,
) -> None:
    started = time.perf_counter()
    record: dict[str, object] = {
        "event": "shadow",
        "deployment": live.name,
        "request_id": request.request_id,
        "shadow": target,
    }
    live.router.started(target)
    ok = True
    try:
        with engine.using(target) as provider:
            output = await provider.generate(request)
    except (BackendError, KeyError) as exc:
        ok = False
        record["error"] = str(exc)
    else:
        score = similarity(served_text, output.text)
        record |= {"similarity": round(score, 4), "shadow_text": output.text}
        metrics.shadow.labels(live.name, target).inc()
        metrics.shadow_similarity.labels(live.name, target).observe(score)
        stats = live.shadow_stats
        stats["similarity"] = (stats["similarity"] * stats["n"] + score) / (stats["n"] + 1)
        stats["n"] += 1
    latency_ms = (time.perf_counter() - started) * 1000
    live.router.finished(target, latency_ms=latency_ms, ok=ok)
    record["latency_ms"] = round(latency_ms, 3)
    log.info(json.dumps(record, ensure_ascii=False))
