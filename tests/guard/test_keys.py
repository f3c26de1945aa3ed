"""API key store: round trip, hash-only storage, verification of good, unknown,
revoked, expired and tampered tokens, rotation, scoping, durations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from llmline.errors import NotFoundError, UserError
from llmline.gateway.errors import AuthenticationError
from llmline.guard.keys import ROLES, ApiKeyInfo, KeyStore, parse_duration
from llmline.storage.db import MetadataStore
from llmline.storage.models import utcnow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    yield store
    store.dispose()


@pytest.fixture
def keys(store: MetadataStore) -> KeyStore:
    return KeyStore(store)


def _expire(store: MetadataStore, key_id: str) -> None:
    """Move a key's expiry into the past (what waiting would do)."""
    with store.session() as session:
        session.execute(
            text("UPDATE api_keys SET expires_at = :t WHERE key_id = :k"),
            {"t": utcnow() - timedelta(seconds=1), "k": key_id},
        )


def test_create_get_list_round_trip(keys: KeyStore) -> None:
    token, info = keys.create(
        "app-a",
        "user",
        deployments=["faq", "chat", "faq"],
        rpm=60,
        tpm=10_000,
        budget_usd=12.5,
        expires_in=timedelta(days=30),
    )
    assert token.startswith(f"llk_{info.key_id}_")
    assert info.deployments == ["faq", "chat"]  # duplicates dropped, order kept
    assert info.active and info.status == "active"
    assert info.expires_at is not None
    assert timedelta(days=29) < info.expires_at - info.created_at <= timedelta(days=30)
    got = keys.get(info.key_id)
    assert got == info
    other_token, other = keys.create("ops", "admin")
    assert other.deployments is None and other.rpm is None and other.expires_at is None
    assert [k.key_id for k in keys.list()] == [info.key_id, other.key_id]
    assert other_token != token
    data = info.to_dict()
    assert data["budget_usd"] == 12.5 and data["role"] == "user"
    assert not any(token.split("_", 2)[2] in str(v) for v in data.values())
    assert "secret_hash" not in data and "salt" not in data


def test_only_a_salted_hash_is_stored(keys: KeyStore, store: MetadataStore) -> None:
    token_a, a = keys.create("a", "user")
    token_b, b = keys.create("b", "user")
    secret_a = token_a.split("_", 2)[2]
    with store.engine.connect() as conn:
        rows = list(conn.execute(text("SELECT * FROM api_keys ORDER BY id")).all())
    dump = repr([tuple(r) for r in rows])
    assert token_a not in dump and secret_a not in dump
    assert token_b.split("_", 2)[2] not in dump
    row_a, row_b = (r._mapping for r in rows)
    assert row_a["salt"] != row_b["salt"] and len(bytes.fromhex(row_a["salt"])) == 16
    assert row_a["secret_hash"] != row_b["secret_hash"]
    assert row_a["key_id"] == a.key_id and row_b["key_id"] == b.key_id


def test_verify_accepts_the_token_and_rejects_unknown_or_tampered(keys: KeyStore) -> None:
    token, info = keys.create("app", "deployer")
    assert keys.verify(token) == info
    assert keys.verify(f"  {token} ") == info
    secret = token.split("_", 2)[2]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    bad = [
        f"llk_{info.key_id}_{flipped}",
        token + "x",
        token[:-1],
        f"llk_k000000000000_{secret}",  # right secret, unknown id
        f"llk_{info.key_id}_",
        f"llk_{info.key_id}",
        secret,
        "",
        "sk-openai-style",
    ]
    for candidate in bad:
        with pytest.raises(AuthenticationError, match=r"^invalid API key$"):
            keys.verify(candidate)


def test_revoked_key_fails_and_revoking_twice_is_a_user_error(keys: KeyStore) -> None:
    token, info = keys.create("app", "user")
    revoked = keys.revoke(info.key_id)
    assert revoked.revoked_at is not None and not revoked.active
    assert revoked.status == "revoked"
    with pytest.raises(AuthenticationError, match=f"API key {info.key_id} was revoked"):
        keys.verify(token)
    # A wrong secret learns nothing about the key's state.
    with pytest.raises(AuthenticationError, match=r"^invalid API key$"):
        keys.verify(token + "x")
    with pytest.raises(UserError, match="already revoked"):
        keys.revoke(info.key_id)
    with pytest.raises(UserError, match="is revoked"):
        keys.rotate(info.key_id)


def test_expired_key_fails(keys: KeyStore, store: MetadataStore) -> None:
    token, info = keys.create("temp", "user", expires_in=timedelta(hours=1))
    assert keys.verify(token).key_id == info.key_id
    _expire(store, info.key_id)
    assert keys.get(info.key_id).status == "expired"
    assert not keys.get(info.key_id).active
    with pytest.raises(AuthenticationError, match=f"API key {info.key_id} expired on "):
        keys.verify(token)


def test_rotate_keeps_settings_and_invalidates_the_old_token(keys: KeyStore) -> None:
    old, info = keys.create("app", "user", deployments=["faq"], rpm=5)
    new, rotated = keys.rotate(info.key_id)
    assert new != old and new.startswith(f"llk_{info.key_id}_")
    assert rotated == info  # same id and settings
    assert keys.verify(new) == info
    with pytest.raises(AuthenticationError, match=r"^invalid API key$"):
        keys.verify(old)


def test_can_call_by_role_and_scope(keys: KeyStore) -> None:
    scoped = keys.create("a", "user", deployments=["faq"])[1]
    assert scoped.can_call("faq") and not scoped.can_call("chat")
    for role in ("admin", "deployer", "user"):
        assert keys.create(role, role)[1].can_call("anything")
    viewer = keys.create("v", "viewer")[1]
    assert not viewer.can_call("faq")
    assert set(ROLES) == {"admin", "deployer", "user", "viewer"}


def test_active_reflects_expiry_without_the_store() -> None:
    now = utcnow()
    past = ApiKeyInfo("k1", "n", "user", None, None, None, None, now, now, None)
    future = ApiKeyInfo("k2", "n", "user", None, None, None, None, now + timedelta(1), now, None)
    assert not past.active and future.active


def test_get_unknown_suggests_a_close_id(keys: KeyStore) -> None:
    info = keys.create("a", "user")[1]
    with pytest.raises(NotFoundError, match=f"did you mean '{info.key_id}'"):
        keys.get(info.key_id[:-1] + "z")
    with pytest.raises(NotFoundError, match=r"no API key with id 'nothing-like-it'$"):
        keys.revoke("nothing-like-it")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "root"}, "unknown role 'root'"),
        ({"name": "  "}, "name must not be empty"),
        ({"rpm": -1}, "--rpm must be a positive"),
        ({"rpm": 0}, "--rpm must be a positive"),
        ({"tpm": -5}, "--tpm must be a positive"),
        ({"budget_usd": -0.5}, "--budget-usd must be a positive"),
        ({"budget_usd": float("nan")}, "--budget-usd must be a positive"),
        ({"deployments": []}, "at least one deployment"),
        ({"deployments": ["ok", "bad name"]}, "invalid deployment name 'bad name'"),
        ({"expires_in": timedelta(0)}, "--expires must be a positive"),
    ],
)
def test_bad_input_is_a_user_error(keys: KeyStore, kwargs: dict[str, Any], message: str) -> None:
    args = {"name": "n", "role": "user", **kwargs}
    with pytest.raises(UserError, match=message):
        keys.create(args.pop("name"), args.pop("role"), **args)
    assert keys.list() == []  # nothing half-saved


@pytest.mark.parametrize(
    ("text_", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("3600s", timedelta(hours=1)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parse_duration(text_: str, expected: timedelta) -> None:
    assert parse_duration(text_) == expected


@pytest.mark.parametrize("bad", ["", "30", "d", "0d", "-1d", "1.5h", "3w", "30 days", "1d2h"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(UserError, match="invalid duration"):
        parse_duration(bad)
