"""``llmline guard redteam``: the shipped attack set through a real gateway
(real scanners, a fake model), and its bad input."""

from __future__ import annotations

from pathlib import Path

from llmline.gateway import build_app
from llmline.gateway.deployments.api import create_deployment
from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.guard.keys import KeyStore
from llmline.guard.redteam import load_attacks
from llmline.testing import ServerThread, free_port
from llmline.workspace import init_workspace


def test_redteam_reports_what_got_through(cli, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", load_sample_data=False)
    create_deployment(ws, DeploymentSpec(name="faq", models=["fake:faq"]))
    token, _ = KeyStore(ws.metadata).create("red", "user")
    viewer, _ = KeyStore(ws.metadata).create("ro", "viewer")
    server = ServerThread(build_app(ws, auth=True)).start()
    try:
        r = cli("guard", "redteam", "faq", "--url", server.url, "--api-key", token, "--json")
        refused = cli("guard", "redteam", "faq", "--url", server.url, "--api-key", viewer)
    finally:
        server.stop()
    assert r.code == 0, r.err
    report = r.json()
    assert report["attacks"] == len(load_attacks()) >= 60
    assert sum(report["outcomes"].values()) == report["attacks"]
    assert report["errors"] == []
    # The default guard stops most of the shipped attacks (measured, see docs/benchmarks.md).
    assert report["stopped_rate"] >= 0.5
    assert set(report["by_category"]) >= {"prompt_injection", "jailbreak", "pii_exfiltration"}
    assert len(report["passed"]) == report["outcomes"].get("passed", 0)
    assert refused.code == 1 and "refused the red-team key" in refused.err


def test_redteam_bad_input(cli, tmp_path: Path) -> None:
    down = cli("guard", "redteam", "faq", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.code == 1 and "cannot reach the gateway" in down.err
    bad = tmp_path / "attacks.jsonl"
    bad.write_text('{"id": "x"}\n')
    r = cli("guard", "redteam", "faq", "--set", str(bad))
    assert r.code == 1 and "line 1: not an attack" in r.err
    assert "Traceback" not in r.err + down.err
