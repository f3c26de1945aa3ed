"""``llmline serve`` as the real console script: several workers, and a
busy port as a one-line error."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmline.gateway.deployments import DeploymentSpec
from llmline.gateway.deployments.api import create_deployment
from llmline.testing.server import free_port
from llmline.workspace import init_workspace
from tests.cli.conftest import run_console_script


@pytest.fixture
def ws(tmp_path: Path):
    workspace = init_workspace(tmp_path / "ws", load_sample_data=False)
    create_deployment(workspace, DeploymentSpec(name="faq", models=["fake:w"]))
    return workspace


def test_serve_with_two_workers(ws) -> None:
    port = free_port()
    script = Path(sys.executable).with_name("llmline")
    proc = subprocess.Popen(
        [str(script), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready in 120 s"
            time.sleep(0.2)
        for _ in range(6):
            r = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "faq", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            assert r.json()["llmline"]["model_version"] == "fake:w"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_busy_port_is_a_one_line_error(ws) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_console_script("serve", "--port", str(port), cwd=ws.root)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr.strip().splitlines()[-1]


def test_no_auth_off_loopback_is_refused(ws) -> None:
    done = run_console_script("serve", "--host", "0.0.0.0", "--no-auth", cwd=ws.root)
    assert done.returncode == 1
    assert "--no-auth is only allowed on a loopback address" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_tls_bad_input(ws, tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    junk = str(tmp_path / "junk.pem")
    done = run_console_script("serve", "--tls-cert", junk, cwd=ws.root)
    assert done.returncode == 1 and "give both --tls-cert and --tls-key" in done.stderr
    done = run_console_script("serve", "--tls-cert", junk, "--tls-key", junk, cwd=ws.root)
    assert done.returncode == 1 and "cannot use" in done.stderr
    assert "Traceback" not in done.stderr
