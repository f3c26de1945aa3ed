"""``llmline keys``: create/list/show/revoke/rotate --json shapes, the token
shown once, and one-line exit-1 errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmline.gateway.errors import AuthenticationError
from llmline.guard.keys import KeyStore
from llmline.workspace import Workspace, find_workspace, init_workspace
from tests.cli.conftest import CLI

_INFO_FIELDS = {
    "key_id",
    "name",
    "role",
    "deployments",
    "rpm",
    "tpm",
    "budget_usd",
    "budget_period",
    "max_streams",
    "expires_at",
    "created_at",
    "revoked_at",
    "status",
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    init_workspace(tmp_path / "ws", load_sample_data=False).close()
    return tmp_path / "ws"


def _verify(ws: Path, token: str) -> str:
    workspace: Workspace = find_workspace(ws)
    try:
        return KeyStore(workspace.metadata).verify(token).key_id
    finally:
        workspace.close()


def test_create_list_show_json(cli: CLI, ws: Path) -> None:
    r = cli(
        "keys",
        "create",
        "--name",
        "app-a",
        "--role",
        "user",
        "--deployments",
        "faq, chat",
        "--rpm",
        "60",
        "--tpm",
        "1000",
        "--budget-usd",
        "2.5",
        "--expires",
        "30d",
        "--json",
    )
    assert r.code == 0, r.err
    created = r.json()
    assert set(created) == _INFO_FIELDS | {"key"}
    assert created["deployments"] == ["faq", "chat"]
    assert (created["rpm"], created["tpm"], created["budget_usd"]) == (60, 1000, 2.5)
    assert created["expires_at"] is not None and created["status"] == "active"
    token = created["key"]
    assert _verify(ws, token) == created["key_id"]
    listed = cli("keys", "list", "--json")
    assert listed.code == 0, listed.err
    [entry] = listed.json()
    assert set(entry) == _INFO_FIELDS  # never the key
    assert token not in listed.out
    shown = cli("keys", "show", created["key_id"], "--json").json()
    assert shown == entry
    table = cli("keys", "list")
    assert created["key_id"] in table.out and "app-a" in table.out
    text = cli("keys", "show", created["key_id"])
    assert "faq, chat" in text.out and "60 rpm" in text.out and token not in text.out


def test_text_create_prints_the_key_once_with_a_warning(cli: CLI, ws: Path) -> None:
    r = cli("keys", "create", "--name", "ops", "--role", "admin")
    assert r.code == 0, r.err
    [token] = [line for line in r.out.splitlines() if line.startswith("llk_")]
    assert "will not be shown again" in r.out
    key_id = _verify(ws, token)
    assert token not in cli("keys", "show", key_id).out


def test_revoke_and_rotate(cli: CLI, ws: Path) -> None:
    first = cli("keys", "create", "--name", "a", "--role", "user", "--json").json()
    rotated = cli("keys", "rotate", first["key_id"], "--json")
    assert rotated.code == 0, rotated.err
    again = rotated.json()
    assert again["key_id"] == first["key_id"] and again["key"] != first["key"]
    assert {k: v for k, v in again.items() if k != "key"} == {
        k: v for k, v in first.items() if k != "key"
    }
    assert _verify(ws, again["key"]) == first["key_id"]
    with pytest.raises(AuthenticationError):
        _verify(ws, first["key"])
    revoked = cli("keys", "revoke", first["key_id"], "--json")
    assert revoked.code == 0, revoked.err
    assert revoked.json()["status"] == "revoked" and revoked.json()["revoked_at"]
    with pytest.raises(AuthenticationError, match="revoked"):
        _verify(ws, again["key"])
    text_rotate = cli("keys", "create", "--name", "b", "--role", "user", "--json").json()
    r = cli("keys", "rotate", text_rotate["key_id"])
    assert r.code == 0 and "will not be shown again" in r.out
    assert cli("keys", "revoke", text_rotate["key_id"]).out.startswith("revoked API key")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "--name", "x", "--role", "root"), "unknown role 'root'"),
        (("create", "--name", "", "--role", "user"), "must not be empty"),
        (("create", "--name", "x", "--role", "user", "--rpm", "-1"), "--rpm must be a positive"),
        (("create", "--name", "x", "--role", "user", "--tpm", "0"), "--tpm must be a positive"),
        (
            ("create", "--name", "x", "--role", "user", "--budget-usd", "-3"),
            "--budget-usd must be a positive",
        ),
        (("create", "--name", "x", "--role", "user", "--expires", "soon"), "invalid duration"),
        (
            ("create", "--name", "x", "--role", "user", "--deployments", "a,b c"),
            "invalid deployment name 'b c'",
        ),
        (("create", "--name", "x", "--role", "user", "--deployments", ","), "at least one"),
        (("show", "knope"), "no API key with id 'knope'"),
        (("revoke", "knope"), "no API key with id 'knope'"),
        (("rotate", "knope"), "no API key with id 'knope'"),
    ],
)
def test_bad_input_is_one_line_error(
    cli: CLI, ws: Path, args: tuple[str, ...], message: str
) -> None:
    r = cli("keys", *args)
    assert r.code == 1
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err
    assert cli("keys", "list", "--json").json() == []  # nothing half-saved


def test_revoking_twice_is_one_line_error(cli: CLI, ws: Path) -> None:
    key_id = cli("keys", "create", "--name", "a", "--role", "viewer", "--json").json()["key_id"]
    assert cli("keys", "revoke", key_id).code == 0
    r = cli("keys", "revoke", key_id)
    assert r.code == 1 and "already revoked" in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
