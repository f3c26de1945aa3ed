"""``kind: chain`` deployments: the gateway answers with a chain's output.

The user's last message is the chain's first input; the chain's model
steps without a ``deployment`` of their own call this deployment's models
(routing, fallbacks, guardrails, quotas and the request log apply to each
call, as the caller); the final output is the assistant's message (JSON
text when it is not a string).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from llmline.chains.runner import ChainError, ChainStepError, run_chain
from llmline.chains.spec import ChainSpec, find_chain, load_chain
from llmline.errors import ConfigError, NotFoundError
from llmline.gateway.errors import BackendError, InvalidRequestError

if TYPE_CHECKING:
    from llmline.gateway.serving import Answer, Prepared, Service

__all__ = ["answer_with_chain", "chain_path"]

_loaded: dict[Path, tuple[float, ChainSpec]] = {}


def chain_path(service: Service, relative: str) -> Path:
    """A deployment's chain file: relative to the workspace, or a shipped example's name."""
    workspace = service.engine.workspace
    return find_chain(relative, workspace.root if workspace is not None else None)


def _spec(path: Path) -> ChainSpec:
    """The chain, re-read when its file changes (edits apply without a restart)."""
    mtime = path.stat().st_mtime
    cached = _loaded.get(path)
    if cached is None or cached[0] != mtime:
        cached = (mtime, load_chain(path))
        _loaded[path] = cached
    return cached[1]


async def answer_with_chain(service: Service, prepared: Prepared, *, stream: bool) -> Answer:
    from llmline.agents.client import ServiceChatClient
    from llmline.gateway.serving import Answer

    live = prepared.live
    if stream:
        raise InvalidRequestError(
            f"{live.name} is a chain deployment, which answers whole: send stream=false",
            param="stream",
        )
    assert live.spec.chain is not None  # the spec's validator requires it
    try:
        spec = _spec(chain_path(service, live.spec.chain))
    except (ConfigError, NotFoundError, OSError) as exc:
        raise BackendError(f"chain deployment {live.name}: {exc}") from None
    client = ServiceChatClient(service, model=live.name, caller=prepared.caller)
    started = time.perf_counter()
    try:
        result = await run_chain(
            spec,
            {spec.first_input: prepared.question},
            client=client,
            workspace=service.engine.workspace,
        )
    except ChainStepError as exc:
        raise BackendError(f"chain {spec.name} failed: {exc}") from None
    except ChainError as exc:
        raise InvalidRequestError(str(exc), param="messages") from None
    value = result.value
    models = [s.model for s in result.steps if s.model]
    return Answer(
        text=value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
        finish_reason="stop",
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        target=f"chain:{spec.name}",
        route_reason=f"chain {spec.name}: {len(result.steps)} steps"
        + (f" (models: {', '.join(dict.fromkeys(models))})" if models else ""),
        cache="off",
        latency_ms=(time.perf_counter() - started) * 1000,
    )
