"""``POST /v1/completions`` (text in, text out)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from llmline.gateway.endpoints._sse import sse_response
from llmline.gateway.endpoints.chat import (
    ERROR_RESPONSES,
    cache_payload,
    extensions,
    sampling,
)
from llmline.gateway.prompting import apply_text_template
from llmline.gateway.protocol.common import Usage
from llmline.gateway.protocol.completions import Completion, CompletionChoice, CompletionRequest
from llmline.gateway.providers import GenerationRequest
from llmline.gateway.serving import Answer, Caller, Prepared, Service, new_request_id

__all__ = ["prepare_completion", "router"]

router = APIRouter(tags=["completions"])


def prepare_completion(service: Service, body: CompletionRequest, caller: Caller) -> Prepared:
    live = service.engine.resolve(body.model)
    prompt, prompt_version = apply_text_template(live.prompt, body.text(), body.llmline)
    request = GenerationRequest(
        prompt=prompt, request_id=new_request_id("cmpl"), **sampling(service, body, body.max_tokens)
    )
    return Prepared(
        live=live,
        request=request,
        question=body.text(),
        prompt_version=prompt_version,
        caller=caller,
        cache_payload=cache_payload(request),
        use_cache=body.llmline.cache if body.llmline else True,
        endpoint="completions",
    )


@router.post("/v1/completions", response_model=Completion, responses=ERROR_RESPONSES)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    service: Service = request.app.state.service
    caller = await request.app.state.auth.caller(request.headers.get("authorization"), body.user)
    # Before resolving: a key scoped elsewhere learns nothing about other deployments.
    request.app.state.auth.require_call(caller, body.model)
    prepared = prepare_completion(service, body, caller)
    prefix = body.text() if body.echo else ""
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await _stream(service, prepared, body.model, prefix, include_usage)
    answer = await service.answer(prepared)
    completion = Completion(
        id=prepared.request_id,
        created=int(time.time()),
        model=body.model,
        choices=[CompletionChoice(text=prefix + answer.text, finish_reason=answer.finish_reason)],
        usage=Usage(**answer.usage()),
        **extensions(prepared, answer),
    )
    return Response(
        completion.model_dump_json(),
        media_type="application/json",
        headers={"X-Request-Id": prepared.request_id},
    )


async def _stream(
    service: Service, prepared: Prepared, model: str, prefix: str, include_usage: bool
) -> StreamingResponse:
    created = int(time.time())

    def chunk(choices: list[CompletionChoice], **extra: Any) -> dict[str, Any]:
        return Completion(
            id=prepared.request_id, created=created, model=model, choices=choices, **extra
        ).model_dump(mode="json", exclude_none=True)

    def delta(text: str, first: bool) -> dict[str, Any]:
        return chunk([CompletionChoice(text=(prefix if first else "") + text, finish_reason=None)])

    def final(answer: Answer) -> list[dict[str, Any]]:
        last = [CompletionChoice(text="", finish_reason=answer.finish_reason)]
        events = [chunk(last, **extensions(prepared, answer))]
        if include_usage:
            events.append(chunk([], usage=Usage(**answer.usage()), **extensions(prepared, answer)))
        return events

    return await sse_response(service, prepared, delta, final)
