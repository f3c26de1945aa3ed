"""``POST /v1/chat/completions``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from llmline.gateway.endpoints._sse import sse_response
from llmline.gateway.errors import InvalidRequestError
from llmline.gateway.prompting import apply_chat_template
from llmline.gateway.protocol.chat import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    DeltaMessage,
    _Reply,
)
from llmline.gateway.protocol.common import ErrorResponse, SamplingFields, Usage
from llmline.gateway.protocol.extensions import CitationMetadata
from llmline.gateway.providers import GenerationRequest
from llmline.gateway.serving import Answer, Caller, Prepared, Service, new_request_id

__all__ = [
    "ERROR_RESPONSES",
    "cache_payload",
    "extensions",
    "prepare_chat",
    "router",
    "sampling",
]

router = APIRouter(tags=["chat"])
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Invalid request",
        404: "Unknown model or deployment",
        413: "Request body too large",
        502: "Upstream error",
        503: "No backend ready",
        504: "Upstream timeout",
    }.items()
}


def prepare_chat(service: Service, body: ChatCompletionRequest, caller: Caller) -> Prepared:
    live = service.engine.resolve(body.model)
    messages, question, prompt_version = apply_chat_template(
        live.prompt, body.messages, body.llmline
    )
    request = GenerationRequest(
        messages=_with_tool_fields(messages, body),
        request_id=new_request_id("chatcmpl"),
        extra=_tool_options(body),
        **sampling(service, body, body.requested_max_tokens()),
    )
    return Prepared(
        live=live,
        request=request,
        question=question,
        prompt_version=prompt_version,
        caller=caller,
        cache_payload=cache_payload(request),
        use_cache=body.llmline.cache if body.llmline else True,
    )


def _with_tool_fields(
    messages: tuple[dict[str, Any], ...], body: ChatCompletionRequest
) -> tuple[dict[str, Any], ...]:
    """The templated messages with their tool calls and tool-call ids back."""
    if not any(m.tool_calls or m.tool_call_id for m in body.messages):
        return messages
    out = []
    for message, original in zip(messages, body.messages, strict=True):
        fields = {"tool_calls": original.tool_calls, "tool_call_id": original.tool_call_id}
        out.append({**message, **{k: v for k, v in fields.items() if v is not None}})
    return tuple(out)


def _tool_options(body: ChatCompletionRequest) -> dict[str, Any]:
    if not body.tools:
        return {}
    if body.stream:
        raise InvalidRequestError(
            "streaming with tools is not supported: send stream=false", param="stream"
        )
    options: dict[str, Any] = {"tools": body.tools}
    if body.tool_choice is not None:
        options["tool_choice"] = body.tool_choice
    return options


def sampling(service: Service, body: SamplingFields, max_tokens: int | None) -> dict[str, Any]:
    """The sampling fields of a :class:`GenerationRequest`, caps applied."""
    return {
        "max_tokens": service.max_tokens(max_tokens),
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop_list(),
        "seed": body.seed,
        "user": body.user,
    }


def cache_payload(request: GenerationRequest) -> dict[str, Any] | None:
    # Only deterministic requests are cached: a sampled answer is one draw
    # of many, and serving it again would hide the sampling the client asked for.
    if request.temperature > 0 and request.seed is None:
        return None
    if request.extra.get("tools"):  # a cached answer would lose its tool calls
        return None
    return {
        "messages": list(request.messages or ()),
        "prompt": request.prompt,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop),
        "seed": request.seed,
    }


def extensions(prepared: Prepared, answer: Answer) -> dict[str, Any]:
    return {
        "safety_attributes": answer.safety,
        "input_safety_attributes": prepared.input_safety,
        "citation_metadata": CitationMetadata(citations=answer.citations),
        "llmline": answer.info(prepared),
    }


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERROR_RESPONSES)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    service: Service = request.app.state.service
    caller = await request.app.state.auth.caller(request.headers.get("authorization"), body.user)
    # Before resolving: a key scoped elsewhere learns nothing about other deployments.
    request.app.state.auth.require_call(caller, body.model)
    prepared = prepare_chat(service, body, caller)
    if prepared.live.spec.kind == "chain":  # the chain's steps answer (llmline.chains)
        from llmline.chains.serving import answer_with_chain

        answer = await answer_with_chain(service, prepared, stream=bool(body.stream))
    elif body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await _stream(service, prepared, body.model, include_usage)
    else:
        answer = await service.answer(prepared)
    reply = _Reply(content=answer.text, tool_calls=list(answer.tool_calls) or None)
    completion = ChatCompletion(
        id=prepared.request_id,
        created=int(time.time()),
        model=body.model,
        choices=[ChatChoice(message=reply, finish_reason=answer.finish_reason)],
        usage=Usage(**answer.usage()),
        **extensions(prepared, answer),
    )
    return Response(
        completion.model_dump_json(exclude_none=False),
        media_type="application/json",
        headers={"X-Request-Id": prepared.request_id},
    )


async def _stream(
    service: Service, prepared: Prepared, model: str, include_usage: bool
) -> StreamingResponse:
    created = int(time.time())

    def chunk(choices: list[ChunkChoice], **extra: Any) -> dict[str, Any]:
        return ChatCompletionChunk(
            id=prepared.request_id, created=created, model=model, choices=choices, **extra
        ).model_dump(mode="json", exclude_none=True)

    def delta(text: str, first: bool) -> dict[str, Any]:
        role = "assistant" if first else None
        return chunk([ChunkChoice(delta=DeltaMessage(role=role, content=text))])

    def final(answer: Answer) -> list[dict[str, Any]]:
        events = [
            chunk(
                [ChunkChoice(delta=DeltaMessage(), finish_reason=answer.finish_reason)],
                **extensions(prepared, answer),
            )
        ]
        if include_usage:  # OpenAI's shape: one more chunk, no choices, with usage
            events.append(chunk([], usage=Usage(**answer.usage()), **extensions(prepared, answer)))
        return events

    return await sse_response(service, prepared, delta, final)
