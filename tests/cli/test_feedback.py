"""The data flywheel end to end: a real gateway (fake model) answers, users
send feedback over HTTP, a reviewer accepts it with the CLI, and
``data build --from-feedback`` turns it into a dataset version whose rows
are in the tuning format and whose lineage leads back to the responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmline.bootstrap import DEFAULT_TEMPLATE_TEXT
from llmline.gateway import build_app
from llmline.gateway.deployments.api import create_deployment
from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.testing.server import ServerThread
from llmline.testing.workspace import synthetic_workspace
from llmline.workspace import Workspace
from tests.cli.conftest import CLI

QUESTIONS = [
    "What is a tuple in Python?",
    "How do I reverse a list?",
    "Why is my loop so slow?",
    "How do I read a file line by line?",
]


def _serve_and_collect_feedback(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Four answered questions with feedback; returns question → ids."""
    create_deployment(
        ws, DeploymentSpec(name="faq", models=["fake:echo"], prompt="stackoverflow-python@1")
    )
    server = ServerThread(build_app(ws)).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
        ids = {
            q: client.chat.completions.create(
                model="faq", messages=[{"role": "user", "content": q}], max_tokens=60
            ).id
            for q in QUESTIONS
        }
        sent: dict[str, dict[str, Any]] = {
            QUESTIONS[0]: {"rating": "up"},
            QUESTIONS[1]: {
                "rating": 1,
                "correction": "Use reversed(xs) or xs[::-1]; mail bob@example.com for more.",
            },
            QUESTIONS[2]: {"rating": 2, "comment": "not helpful"},
            QUESTIONS[3]: {"correction": "Use: for line in open(path): ..."},
        }
        out: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for question, body in sent.items():
                r = http.post("/v1/feedback", json={"id": ids[question], **body})
                assert r.status_code == 201, r.text
                out[question] = {"response": ids[question], "feedback": r.json()["id"]}
    finally:
        server.stop()  # flushes the request log: every response is stored
    return out


def _rows(folder: Path) -> list[dict[str, str]]:
    return [
        json.loads(line)
        for split in ("train", "eval")
        for line in (folder / f"{split}.jsonl").read_text("utf-8").splitlines()
    ]


@pytest.mark.slow
def test_feedback_becomes_a_dataset_version_with_lineage(cli: CLI, tmp_path: Path) -> None:
    ws = synthetic_workspace(tmp_path / "ws", 60)
    assert cli("data", "build", "python-faq", "--json").code == 0
    sent = _serve_and_collect_feedback(ws)

    listed = cli("feedback", "list", "--json").json()
    assert len(listed) == 4 and {f["status"] for f in listed} == {"new"}
    shown = cli("feedback", "show", sent[QUESTIONS[1]]["feedback"], "--json").json()
    assert shown["request"]["input_text"] == QUESTIONS[1]
    assert shown["request"]["prompt_version"] == "stackoverflow-python@1"

    # Nothing reviewed yet: with --accepted-only there is nothing to build from.
    refused = cli("data", "build", "--from-feedback", "--accepted-only")
    assert refused.code == 1
    assert refused.err.startswith("error: no usable feedback: no accepted corrections")
    assert len(refused.err.strip().splitlines()) == 1

    assert cli("feedback", "accept", sent[QUESTIONS[1]]["feedback"]).code == 0
    assert cli("feedback", "reject", sent[QUESTIONS[3]]["feedback"]).code == 0
    built = cli("data", "build", "--from-feedback", "--json")
    assert built.code == 0, built.err
    result = built.json()
    assert result["dataset"] == "feedback" and result["status"] == "created"
    assert result["feedback"]["rows_from_feedback"] == {"corrections": 1, "rated_answers": 1}
    rows = _rows(Path(result["uri"]))
    by_input = {r["input_text"]: r["output_text"] for r in rows}
    template = DEFAULT_TEMPLATE_TEXT
    corrected = by_input[template.format(question=QUESTIONS[1])]
    assert corrected == "Use reversed(xs) or xs[::-1]; mail [EMAIL] for more."  # PII scrubbed
    assert by_input[template.format(question=QUESTIONS[0])].startswith("echo says: Please answer")
    assert len(rows) == 2  # the low rating and the rejected correction are not used
    manifest = json.loads((Path(result["uri"]) / "manifest.json").read_text())
    assert manifest["source"] == "feedback"
    assert manifest["template"]["resolved"] == "stackoverflow-python@1"

    lineage = cli("lineage", f"feedback@{result['version']}", "--json").json()
    upstream = {e["from"] for e in lineage["upstream"]}
    for question in (QUESTIONS[0], QUESTIONS[1]):
        assert f"request:{sent[question]['response']}" in upstream
        assert f"feedback:{sent[question]['feedback']}" in upstream
    assert f"request:{sent[QUESTIONS[2]]['response']}" not in upstream
    down = cli("lineage", f"request:{sent[QUESTIONS[1]]['response']}", "--json").json()
    assert f"dataset:feedback@{result['version']}" in {e["to"] for e in down["downstream"]}
    text = cli("lineage", f"feedback@{result['version']}")
    assert f"<- request:{sent[QUESTIONS[1]]['response']}  [corrected]" in text.out

    again = cli("data", "build", "--from-feedback", "--json").json()
    assert (again["status"], again["version"]) == ("unchanged", result["version"])

    _check_merge_with_base(cli)


def _check_merge_with_base(cli: CLI) -> None:
    """--base: every row of the base version, plus the feedback rows."""
    merged = cli("data", "build", "--from-feedback", "--base", "python-faq", "--json")
    assert merged.code == 0, merged.err
    info = merged.json()
    base = cli("data", "show", "python-faq", "--json").json()
    assert info["dataset"] == "python-faq-feedback"
    assert info["report"]["rows_written"] == base["rows"] + 2
    merged_rows = _rows(Path(info["uri"]))
    base_rows = _rows(Path(base["uri"]))
    assert all(row in merged_rows for row in base_rows)
    base_lineage = cli("lineage", info["ref"], "--json").json()
    assert f"dataset:{base['ref']}" in {e["from"] for e in base_lineage["upstream"]}


def test_feedback_cli_user_errors(cli: CLI, tmp_path: Path) -> None:
    synthetic_workspace(tmp_path / "ws", 5).close()
    for args, message in [
        (("feedback", "show", "fb-nope"), "error: no feedback with id 'fb-nope'"),
        (("feedback", "accept", "fb-nope"), "error: no feedback with id 'fb-nope'"),
        (("feedback", "list", "--status", "maybe"), "error: invalid status 'maybe'"),
        (("feedback", "list", "--since", "yesterday"), "error: invalid time 'yesterday'"),
        (("data", "build", "--from-feedback"), "error: no usable feedback"),
        (("data", "build", "--from-feedback", "--min-rating", "9"), "error: min_rating must"),
        (("data", "build", "python-faq", "--from-feedback"), "error: --from-feedback builds"),
    ]:
        result = cli(*args)
        assert result.code == 1, args
        assert result.err.startswith(message), (args, result.err)
        assert "Traceback" not in result.err
    assert cli("feedback", "list", "--json").json() == []
    exported = cli("feedback", "export", str(tmp_path / "fb.jsonl"), "--json").json()
    assert exported["rows"] == 0 and (tmp_path / "fb.jsonl").read_text() == ""


def test_review_and_export_need_their_permissions(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmline.guard.keys import KeyStore

    ws = synthetic_workspace(tmp_path / "ws", 5)
    keys = KeyStore(ws.metadata)
    deployer = keys.create("ci", "deployer")[0]
    viewer = keys.create("grafana", "viewer")[0]
    ws.close()
    monkeypatch.setenv("LLMLINE_API_KEY", viewer)
    denied = cli("feedback", "list")
    assert denied.code == 1 and "may not requests read" in denied.err
    monkeypatch.setenv("LLMLINE_API_KEY", deployer)
    assert cli("feedback", "list", "--json").json() == []
    review = cli("feedback", "accept", "fb-x")
    assert review.code == 1 and "may not feedback review" in review.err
    export = cli("feedback", "export", str(tmp_path / "x.jsonl"))
    assert export.code == 1 and "may not feedback export" in export.err
    assert not (tmp_path / "x.jsonl").exists()
