"""``llmline deploy``: create, list/show --json, promote, rollback, delete,
and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmline.workspace import init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    init_workspace(tmp_path / "ws", load_sample_data=False)
    return tmp_path / "ws"


def test_create_list_show_json(cli, ws) -> None:
    r = cli(
        "deploy",
        "create",
        "faq",
        "--model",
        "fake:a",
        "--model",
        "fake:b",
        "--strategy",
        "weighted",
        "--weights",
        "70,30",
        "--json",
    )
    assert r.code == 0, r.err
    created = r.json()
    assert created["status"] == "saved"
    assert created["spec"]["weights"] == [70.0, 30.0]
    assert created["revision"] == 1
    listed = cli("deploy", "list", "--json").json()
    assert [d["name"] for d in listed] == ["faq"]
    shown = cli("deploy", "show", "faq", "--json").json()
    assert shown["spec"]["strategy"] == "weighted"
    assert [e["action"] for e in shown["events"]] == ["create"]
    text = cli("deploy", "show", "faq")
    assert "weighted" in text.out and "fake:a, fake:b" in text.out
    table = cli("deploy", "list")
    assert "faq" in table.out


def test_same_spec_again_needs_replace_and_changes_nothing(cli, ws) -> None:
    args = ("deploy", "create", "faq", "--model", "fake:a")
    assert cli(*args).code == 0
    again = cli(*args)
    assert again.code == 1
    assert "--replace" in again.err
    same = cli(*args, "--replace", "--json").json()
    assert same["status"] == "unchanged" and same["revision"] == 1
    changed = cli(*args, "--model", "fake:b", "--replace", "--json").json()
    assert changed["status"] == "saved" and changed["revision"] == 2


def test_canary_promote_and_rollback(cli, ws) -> None:
    assert (
        cli(
            "deploy",
            "create",
            "c",
            "--model",
            "fake:old",
            "--model",
            "fake:new",
            "--strategy",
            "canary",
            "--canary-percent",
            "20",
        ).code
        == 0
    )
    promoted = cli("deploy", "promote", "c", "--json").json()
    assert promoted["state"]["phase"] == "promoted" and promoted["state"]["live"] == 1
    again = cli("deploy", "promote", "c")
    assert again.code == 1 and "already promoted" in again.err
    back = cli("deploy", "rollback", "c")
    assert back.code == 0 and "fake:old" in back.out
    events = cli("deploy", "show", "c", "--json").json()["events"]
    assert [e["action"] for e in events] == ["create", "promote", "rollback"]


def test_blue_green_switch_and_instant_rollback(cli, ws) -> None:
    cli(
        "deploy",
        "create",
        "bg",
        "--model",
        "fake:blue",
        "--model",
        "fake:green",
        "--strategy",
        "blue-green",
    )
    assert cli("deploy", "promote", "bg", "--json").json()["state"]["live"] == 1
    assert cli("deploy", "rollback", "bg", "--json").json()["state"]["live"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "fake:a", "--strategy", "sideways"), "strategy"),
        (("--model", "fake:a", "--strategy", "canary"), "exactly 2 models"),
        (("--model", "fake:a", "--model", "fake:b", "--strategy", "weighted"), "weights"),
        (("--model", "fake:a", "--weights", "1,2"), "2 weights for 1 models"),
        (("--model", "fake:a", "--weights", "a,b"), "numbers separated by commas"),
        (("--model", "nosuchmodel@1"), "nosuchmodel"),
        (("--model", "upstream:vllm"), "unknown upstream 'vllm'"),
        (("--model", "warp:x"), "no provider 'warp'"),
        (("--model", "fake:a", "--prompt", "missing-template@1"), "missing-template"),
    ],
)
def test_bad_create_is_one_line_error(cli, ws, args, message) -> None:
    r = cli("deploy", "create", "bad", *args)
    assert r.code == 1
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err
    assert cli("deploy", "list", "--json").json() == []  # nothing half-saved


def test_promote_random_and_unknown_names(cli, ws) -> None:
    cli("deploy", "create", "r", "--model", "fake:a", "--model", "fake:b")
    r = cli("deploy", "promote", "r")
    assert r.code == 1 and "nothing to promote" in r.err
    r = cli("deploy", "show", "rr")
    assert r.code == 1 and "did you mean 'r'" in r.err


def test_delete(cli, ws) -> None:
    cli("deploy", "create", "gone", "--model", "fake:a")
    assert cli("deploy", "delete", "gone").code == 0
    assert cli("deploy", "list", "--json").json() == []
