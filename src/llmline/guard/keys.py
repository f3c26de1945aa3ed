"""API keys of the gateway: create, verify, list, revoke, rotate.

A token reads ``llk_<key_id>_<secret>``: the public ``key_id`` finds the row,
the secret proves possession.  Only a per-key random salt and
``HMAC-SHA256(salt, secret)`` are stored, so a leaked metadata store leaks
no usable key.  The secret is 256 random bits, far beyond brute force, so a
slow password KDF (bcrypt, scrypt) would only cost every request time
without adding security.
"""

from __future__ import annotations

import builtins
import difflib
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import select

from llmline.errors import NotFoundError, UserError
from llmline.gateway.errors import AuthenticationError
from llmline.storage.key_tables import ApiKey
from llmline.storage.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from llmline.storage.db import MetadataStore

__all__ = ["ROLES", "ApiKeyInfo", "BudgetPeriod", "KeyStore", "Role", "parse_duration"]

Role = Literal["admin", "deployer", "user", "viewer"]
BudgetPeriod = Literal["day", "month"]
ROLES: tuple[str, ...] = ("admin", "deployer", "user", "viewer")
# Roles that may send requests to models; a viewer only reads metrics and models.
_CALLERS = frozenset({"admin", "deployer", "user"})

_PREFIX = "llk_"
# The same rule as deployment names (llmline.gateway.deployments.spec).
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([dhms])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
# Compared against when a token names an unknown key, so an unknown id costs
# the same HMAC and comparison as a known one (no timing oracle on ids).
_DUMMY_SALT = bytes(16)
_DUMMY_HASH = "0" * 64


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"`` or ``"3600s"`` as a positive timedelta."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise UserError(
            f"invalid duration {text!r}: give a positive whole number and a unit, "
            "e.g. 30d, 12h, 90m or 3600s"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    name: str
    role: Role
    deployments: list[str] | None  # None: all deployments
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    budget_period: BudgetPeriod = "month"
    max_streams: int | None = None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.expired

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired else "active"

    def can_call(self, deployment: str) -> bool:
        """Whether this key's role and scope allow requests to ``deployment``."""
        if self.role not in _CALLERS:
            return False
        return self.deployments is None or deployment in self.deployments

    def to_dict(self) -> dict[str, Any]:
        """Everything about the key except its secret and hash."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role,
            "deployments": self.deployments,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "max_streams": self.max_streams,
            "expires_at": _iso(self.expires_at),
            "created_at": self.created_at.isoformat(),
            "revoked_at": _iso(self.revoked_at),
            "status": self.status,
        }


class KeyStore:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def create(
        self,
        name: str,
        role: str,
        *,
        deployments: Iterable[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_usd: float | None = None,
        budget_period: str = "month",
        max_streams: int | None = None,
        expires_in: timedelta | None = None,
    ) -> tuple[str, ApiKeyInfo]:
        """A new key: ``(token, info)``. The token is not stored; show it once."""
        row = ApiKey(
            key_id="k" + secrets.token_hex(6),
            name=_check_name(name),
            role=_check_role(role),
            deployments=_check_deployments(deployments),
            rpm=_check_positive("rpm", rpm),
            tpm=_check_positive("tpm", tpm),
            budget_usd=_check_budget(budget_usd),
            budget_period=_check_period(budget_period),
            max_streams=_check_positive("max-streams", max_streams),
            expires_at=None if expires_in is None else utcnow() + _check_expiry(expires_in),
            created_at=utcnow(),
        )
        secret = _new_secret(row)
        with self._store.session() as session:
            session.add(row)
            session.flush()
            return _token(row.key_id, secret), _info(row)

    def verify(self, token: str) -> ApiKeyInfo:
        """The key a token belongs to; AuthenticationError unless it is valid."""
        key_id, secret = _parse_token(token)
        with self._store.read_session() as session:
            row = None
            if key_id is not None:
                row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one_or_none()
            salt = bytes.fromhex(row.salt) if row is not None else _DUMMY_SALT
            expected = row.secret_hash if row is not None else _DUMMY_HASH
            matches = hmac.compare_digest(_hash(salt, secret), expected)
            if row is None or not matches:
                raise AuthenticationError("invalid API key")
            info = _info(row)
        # Revocation and expiry are only told to someone holding the secret.
        if info.revoked_at is not None:
            raise AuthenticationError(f"API key {info.key_id} was revoked")
        if info.expired:
            assert info.expires_at is not None
            raise AuthenticationError(
                f"API key {info.key_id} expired on {info.expires_at.isoformat(timespec='seconds')}"
            )
        return info

    def get(self, key_id: str) -> ApiKeyInfo:
        with self._store.read_session() as session:
            return _info(_row(session, key_id))

    def list(self) -> builtins.list[ApiKeyInfo]:
        with self._store.read_session() as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()
            return [_info(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key for good; revoking it again is a UserError."""
        with self._store.session() as session:
            row = _row(session, key_id)
            if row.revoked_at is not None:
                raise UserError(
                    f"API key {key_id} is already revoked "
                    f"(on {row.revoked_at.isoformat(timespec='seconds')})"
                )
            row.revoked_at = utcnow()
            return _info(row)

    def rotate(self, key_id: str) -> tuple[str, ApiKeyInfo]:
        """A new secret for the same key id and settings; the old token stops working."""
        with self._store.session() as session:
            row = _row(session, key_id)
            if row.revoked_at is not None:
                raise UserError(f"API key {key_id} is revoked; create a new key instead")
            secret = _new_secret(row)
            return _token(row.key_id, secret), _info(row)


def _new_secret(row: ApiKey) -> str:
    """Set a fresh salt and hash on ``row``; return the secret they were made from."""
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    row.salt = salt.hex()
    row.secret_hash = _hash(salt, secret)
    return secret


def _hash(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


def _token(key_id: str, secret: str) -> str:
    return f"{_PREFIX}{key_id}_{secret}"


def _parse_token(token: str) -> tuple[str | None, str]:
    """``(key_id, secret)``; key_id None when the token is not shaped like ours.

    Key ids hold no ``_``, so the first one after the prefix ends the id even
    though URL-safe secrets may contain more.
    """
    body = token.strip()
    if not body.startswith(_PREFIX):
        return None, body
    key_id, sep, secret = body[len(_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None, body
    return key_id, secret


def _row(session: Session, key_id: str) -> ApiKey:
    row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one_or_none()
    if row is None:
        ids = builtins.list(session.scalars(select(ApiKey.key_id)).all())
        close = difflib.get_close_matches(key_id, ids, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NotFoundError(f"no API key with id {key_id!r}{hint}")
    return row


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        name=row.name,
        role=cast("Role", row.role),
        deployments=builtins.list(row.deployments) if row.deployments is not None else None,
        rpm=row.rpm,
        tpm=row.tpm,
        budget_usd=row.budget_usd,
        budget_period=cast("BudgetPeriod", row.budget_period or "month"),
        max_streams=row.max_streams,
        expires_at=row.expires_at,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise UserError("API key name must not be empty")
    if len(cleaned) > 200 or "\n" in cleaned:
        raise UserError("API key name must be one line of at most 200 characters")
    return cleaned


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def _check_deployments(deployments: Iterable[str] | None) -> list[str] | None:
    if deployments is None:
        return None
    names = builtins.list(dict.fromkeys(d.strip() for d in deployments))
    if not names:
        raise UserError("--deployments: give at least one deployment name (omit it for all)")
    for name in names:
        if not _DEPLOYMENT.match(name):
            raise UserError(f"invalid deployment name {name!r}: letters, digits, '.', '_' and '-'")
    return names


def _check_positive(field: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UserError(f"--{field} must be a positive whole number, not {value}")
    return value


def _check_budget(value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise UserError(f"--budget-usd must be a positive amount, not {value:g}")
    return value


def _check_period(period: str) -> str:
    if period not in ("day", "month"):
        raise UserError(f"--budget-period must be day or month, not {period!r}")
    return period


def _check_expiry(expires_in: timedelta) -> timedelta:
    if expires_in <= timedelta(0):
        raise UserError("--expires must be a positive duration")
    return expires_in
