"""Who is calling: API keys (``Authorization: Bearer llk_...``) checked
against the key store, with the roles' permissions.

When auth is off (``llmline serve`` on loopback without ``--auth``) every
caller is anonymous and may call everything; the bearer token, if any,
still scopes caches and sticky routing.  Verified keys are remembered for
a few seconds, so a request costs no database read; a revoked key stops
working within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING

from llmline.gateway.errors import AuthenticationError, NotFoundError
from llmline.gateway.observe import current_trace
from llmline.gateway.serving import Caller

if TYPE_CHECKING:
    from llmline.guard.keys import ApiKeyInfo
    from llmline.workspace import Workspace

__all__ = ["Authenticator", "is_loopback"]


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


class Authenticator:
    def __init__(self, workspace: Workspace | None, *, enabled: bool, ttl_s: float = 5.0) -> None:
        if enabled and workspace is None:
            raise ValueError("auth needs a workspace (its key store)")
        self.workspace = workspace
        self.enabled = enabled
        self.ttl_s = ttl_s
        self._verified: dict[str, tuple[float, ApiKeyInfo]] = {}

    async def caller(self, authorization: str | None, user: str | None) -> Caller:
        """Who calls (the request's ``auth`` span); 401 without a valid key."""
        trace = current_trace()
        span = trace.start("auth", {"llmline.auth.enabled": self.enabled})
        try:
            caller = await self._caller(authorization, user)
        except Exception as exc:
            trace.fail(span, exc)
            raise
        trace.identify(caller)
        trace.end(span, {"llmline.key_id": caller.key.key_id if caller.key else None})
        return caller

    async def _caller(self, authorization: str | None, user: str | None) -> Caller:
        anonymous = Caller.from_authorization(authorization, user)
        if not self.enabled:
            return anonymous
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token:
            raise AuthenticationError(
                "no API key: send 'Authorization: Bearer <key>' "
                "(create one with: llmline keys create)"
            )
        key = await self._verify(token)
        return Caller(anonymous.key_scope, user, key=key)

    async def _verify(self, token: str) -> ApiKeyInfo:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._verified.get(digest)
        if cached is not None and cached[0] > now and cached[1].active:
            return cached[1]
        from llmline.guard.keys import KeyStore

        assert self.workspace is not None
        key = await asyncio.to_thread(KeyStore(self.workspace.metadata).verify, token)
        if len(self._verified) > 10_000:  # bounded: forget everything rather than grow
            self._verified.clear()
        self._verified[digest] = (now + self.ttl_s, key)
        return key

    def require_caller(self, caller: Caller) -> None:
        """403 for keys that may only read (viewer)."""
        from llmline.guard.rbac import require

        key = caller.key
        if self.enabled and key is not None:
            require(key.role, "call", who=f"API key {key.key_id}")

    def require_call(self, caller: Caller, deployment: str) -> None:
        """403 for a role that may not call models; 404 for a deployment
        outside the key's scope, worded so that it does not tell whether
        the deployment exists."""
        self.require_caller(caller)
        key = caller.key
        if self.enabled and key is not None and not key.can_call(deployment):
            raise NotFoundError(
                f"the model {deployment!r} does not exist or API key {key.key_id} may not "
                f"use it (it may call: {', '.join(key.deployments or [])})",
                param="model",
            )
