"""``POST /v1/feedback``: user feedback on a logged response.

201 with the stored feedback; 200 with the same object when identical
feedback was already stored (clients may retry freely); 404 for an
unknown response id; 400 for a bad rating or an over-long text.  With auth
on, the key must be one that may call models (a viewer may not) and whose
scope includes the deployment that answered; a response outside its scope
gets the same 404 as an unknown one, so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from llmline.errors import NotFoundError as UnknownError
from llmline.gateway.endpoints.chat import ERROR_RESPONSES
from llmline.gateway.errors import InvalidRequestError, NotFoundError
from llmline.gateway.protocol.feedback import FeedbackObject, FeedbackRequest
from llmline.gateway.serving import Caller
from llmline.monitoring.feedback import (
    FeedbackError,
    FeedbackInfo,
    check_request_id,
    find_request,
    submit_feedback,
)

if TYPE_CHECKING:
    from llmline.gateway.serving import Service
    from llmline.guard.keys import ApiKeyInfo
    from llmline.monitoring.feedback import RequestSummary
    from llmline.workspace import Workspace

__all__ = ["router"]

router = APIRouter(tags=["feedback"])
_PENDING_POLLS = 20
_PENDING_POLL_S = 0.05


def _object(info: FeedbackInfo) -> FeedbackObject:
    return FeedbackObject(
        id=info.feedback_id,
        created=int(info.created_at.timestamp()),
        response_id=info.request_id,
        rating=info.rating,
        rating_scale=info.rating_scale,
        thumbs=info.thumbs,
        comment=info.comment,
        correction=info.correction,
        user=info.user,
        status=info.status,
    )


def _not_found(request_id: str) -> NotFoundError:
    return NotFoundError(f"no response with id {request_id!r}", param="id", code="not_found")


@router.post(
    "/v1/feedback",
    response_model=FeedbackObject,
    status_code=201,
    responses={200: {"model": FeedbackObject, "description": "Already stored"}, **ERROR_RESPONSES},
)
async def create_feedback(body: FeedbackRequest, request: Request) -> JSONResponse:
    auth = request.app.state.auth
    caller: Caller = await auth.caller(request.headers.get("authorization"), body.user)
    auth.require_caller(caller)  # 403 for a read-only key
    workspace = request.app.state.service.engine.workspace
    if workspace is None:
        raise InvalidRequestError("this gateway has no workspace: feedback cannot be stored")
    try:
        check_request_id(body.id)
        found = await _find(request.app.state.service, workspace, body.id)
        key = caller.key if auth.enabled else None
        if found is None or (key is not None and not _in_scope(key, found.deployment)):
            raise _not_found(body.id)
        info, created = await asyncio.to_thread(
            submit_feedback,
            workspace,
            body.id,
            rating=body.rating,
            comment=body.comment,
            correction=body.correction,
            key_id=key.key_id if key is not None else None,
            user=body.user,
        )
    except FeedbackError as exc:
        raise InvalidRequestError(str(exc), param=exc.param) from None
    except UnknownError:
        raise _not_found(body.id) from None
    return JSONResponse(_object(info).model_dump(mode="json"), status_code=201 if created else 200)


async def _find(service: Service, workspace: Workspace, request_id: str) -> RequestSummary | None:
    found = await asyncio.to_thread(find_request, workspace, request_id)
    # Records the journal could not take (a full disk) wait only in this
    # worker's memory until the writer stores them: give it a moment.
    for _ in range(_PENDING_POLLS):
        if found is not None or not getattr(service.requestlog, "pending", 0):
            break
        await asyncio.sleep(_PENDING_POLL_S)
        found = await asyncio.to_thread(find_request, workspace, request_id)
    return found


def _in_scope(key: ApiKeyInfo, deployment: str | None) -> bool:
    if deployment is None:  # refused before routing: only an unscoped key may rate it
        return key.deployments is None
    return key.can_call(deployment)
