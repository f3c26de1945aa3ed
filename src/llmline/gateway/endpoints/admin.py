"""``/admin``: deployments and API keys over HTTP, behind the same role
checks as the CLI (:mod:`llmline.guard.rbac`).  Blocking store calls run
in a worker thread."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from llmline.gateway.errors import InvalidRequestError
from llmline.guard.rbac import Permission, require

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"])


async def _authorize(request: Request, permission: Permission) -> None:
    auth = request.app.state.auth
    caller = await auth.caller(request.headers.get("authorization"), None)
    if auth.enabled and caller.key is not None:
        require(caller.key.role, permission, who=f"API key {caller.key.key_id}")


def _workspace(request: Request) -> Any:
    workspace = request.app.state.service.engine.workspace
    if workspace is None:
        raise InvalidRequestError("this gateway has no workspace: nothing to administer")
    return workspace


@router.get("/deployments")
async def list_deployments(request: Request) -> dict[str, Any]:
    from llmline.gateway.deployments import DeploymentStore

    await _authorize(request, "deployments.read")
    store = DeploymentStore(_workspace(request).metadata)
    infos = await asyncio.to_thread(store.list)
    return {"object": "list", "data": [i.to_dict() for i in infos]}


@router.get("/deployments/{name}")
async def get_deployment(name: str, request: Request) -> dict[str, Any]:
    from llmline.gateway.deployments import DeploymentStore

    await _authorize(request, "deployments.read")
    info = await asyncio.to_thread(DeploymentStore(_workspace(request).metadata).get, name)
    return info.to_dict()


@router.post("/deployments/{name}/{action}")
async def change_deployment(name: str, action: str, request: Request) -> dict[str, Any]:
    from llmline.gateway.deployments.api import promote_deployment, rollback_deployment

    await _authorize(request, "deployments.write")
    actions = {"promote": promote_deployment, "rollback": rollback_deployment}
    if action not in actions:
        raise InvalidRequestError(f"unknown action {action!r}: promote or rollback")
    info = await asyncio.to_thread(actions[action], _workspace(request), name)
    return info.to_dict()


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    role: str
    deployments: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str = "month"
    max_streams: int | None = None
    expires: str | None = Field(default=None, description="e.g. 30d, 12h")


def _keys(request: Request) -> Any:
    from llmline.guard.keys import KeyStore

    return KeyStore(_workspace(request).metadata)


@router.get("/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    await _authorize(request, "keys.read")
    infos = await asyncio.to_thread(_keys(request).list)
    return {"object": "list", "data": [i.to_dict() for i in infos]}


@router.post("/keys")
async def create_key(body: KeyCreate, request: Request) -> dict[str, Any]:
    from llmline.guard.keys import parse_duration

    await _authorize(request, "keys.write")
    fields = body.model_dump(exclude={"name", "role", "expires"})
    expires_in = parse_duration(body.expires) if body.expires else None
    token, info = await asyncio.to_thread(
        lambda: _keys(request).create(body.name, body.role, expires_in=expires_in, **fields)
    )
    return {"key": token, **info.to_dict()}


@router.post("/keys/{key_id}/{action}")
async def change_key(key_id: str, action: str, request: Request) -> dict[str, Any]:
    await _authorize(request, "keys.write")
    store = _keys(request)
    if action == "revoke":
        return (await asyncio.to_thread(store.revoke, key_id)).to_dict()  # type: ignore[no-any-return]
    if action == "rotate":
        token, info = await asyncio.to_thread(store.rotate, key_id)
        return {"key": token, **info.to_dict()}
    raise InvalidRequestError(f"unknown action {action!r}: revoke or rotate")
