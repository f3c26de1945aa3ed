"""Roles and what they may do: one table that the gateway's ``/admin``
endpoints and the CLI check alike.

``admin`` may do everything; ``deployer`` manages deployments and calls
models; ``user`` calls the models its key is scoped to; ``viewer`` reads
models, metrics, deployments and the dashboard.
"""

from __future__ import annotations

from typing import Literal

from llmline.gateway.errors import PermissionDeniedError

__all__ = ["PERMISSIONS", "Permission", "allowed", "require"]

Permission = Literal[
    "call",
    "models.read",
    "metrics.read",
    "deployments.read",
    "deployments.write",
    "keys.read",
    "keys.write",
    "requests.read",
    "feedback.export",
    "feedback.review",
]

_READ: frozenset[str] = frozenset({"models.read", "metrics.read", "deployments.read"})
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(Permission.__args__),  # type: ignore[attr-defined]
    "deployer": _READ | {"call", "deployments.write", "requests.read"},
    "user": frozenset({"call", "models.read"}),
    "viewer": _READ,
}


def allowed(role: str, permission: Permission) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def require(role: str, permission: Permission, *, who: str = "this API key") -> None:
    """PermissionDeniedError (403) unless ``role`` grants ``permission``."""
    if not allowed(role, permission):
        roles = ", ".join(r for r in PERMISSIONS if allowed(r, permission))
        raise PermissionDeniedError(
            f"{who} has role {role}, which may not {permission.replace('.', ' ')} "
            f"(roles that may: {roles})"
        )
