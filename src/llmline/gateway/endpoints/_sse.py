"""Server-sent events shared by the streaming endpoints."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse

from llmline.gateway.errors import GatewayError
from llmline.gateway.serving import Answer, Prepared, Service, aclose

__all__ = ["sse_response"]

log = logging.getLogger("llmline.gateway")

# Builds the event for a text delta, and the final events from the Answer.
DeltaEvent = Callable[[str, bool], dict[str, Any]]
FinalEvents = Callable[[Answer], list[dict[str, Any]]]


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def sse_response(
    service: Service, prepared: Prepared, delta: DeltaEvent, final: FinalEvents
) -> StreamingResponse:
    """Start the stream; errors before the first token are HTTP errors
    (status codes as documented), later ones an ``error`` event."""
    items = service.answer_stream(prepared)
    first = await anext(items)  # raises GatewayError with its own status

    async def body() -> AsyncIterator[bytes]:
        is_first = True
        try:
            item: str | Answer = first
            while True:
                if isinstance(item, Answer):
                    for data in final(item):
                        yield _event(data)
                    break
                yield _event(delta(item, is_first))
                is_first = False
                item = await anext(items)
        except GatewayError as exc:
            yield _event(exc.body())
        except StopAsyncIteration:
            pass
        finally:
            await aclose(items)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Request-Id": prepared.request_id},
    )
