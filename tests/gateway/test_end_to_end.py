"""A new user's path, for real: a tuned (LoRA) model in the registry,
``llmline serve`` as a child process, the openai SDK calling it (streaming
too), safety, citation and routing info in the responses, and a strategy
switch while it serves.  Tiny random models keep it to seconds of compute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from llmline.testing.server import free_port
from llmline.workspace import Workspace

pytestmark = pytest.mark.slow

TUNE = {"train_steps": 2, "batch_size": 2, "evaluation_interval": 2, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def tuned_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace whose ``faq-lora@1`` (LoRA on ``tiny@1``) is the champion."""
    from llmline.data.builder import build_dataset
    from llmline.models import ModelRegistry, import_model
    from llmline.pipelines import steps
    from llmline.testing.models import tiny_causal_lm
    from llmline.testing.workspace import synthetic_workspace

    root = tmp_path_factory.mktemp("e2e")
    ws = synthetic_workspace(root / "ws", questions=60)
    import_model(ws, tiny_causal_lm(root / "base"), name="tiny", verify=False)
    dataset = build_dataset(ws, "python-faq").ref
    out = root / "tune"
    result = steps.tune(
        str(ws.root),
        base_model="tiny@1",
        dataset=dataset,
        config=TUNE,
        adapter_dir=str(out / "adapter"),
        metrics_path=str(out / "metrics.json"),
        curve_path=str(out / "curve.png"),
    )
    info = steps._register_adapter(
        ws,
        "faq-lora",
        base_model="tiny@1",
        dataset=dataset,
        adapter=out / "adapter",
        training=result,
        run="e2e",
    )
    ModelRegistry(ws.metadata).promote(info.ref, force=True, reason="end-to-end test")
    return ws


@pytest.fixture(scope="module")
def served(tuned_ws: Workspace) -> Iterator[str]:
    port = free_port()
    script = Path(sys.executable).with_name("llmline")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [str(script), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=tuned_ws.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"llmline serve exited: {proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError("llmline serve did not become ready in 180 s")


def test_serve_the_promoted_model_with_one_command(served: str, tuned_ws: Workspace) -> None:
    ready = httpx.get(served + "/readyz").json()
    assert ready["deployments"]["model:faq-lora@champion"]["ready"] is True
    client = openai.OpenAI(base_url=served + "/v1", api_key="k", max_retries=0)
    assert "faq-lora" in {m.id for m in client.models.list().data}
    question = "How do I reverse a list in Python?"
    reply = client.chat.completions.create(
        model="faq-lora",
        messages=[{"role": "user", "content": question}],
        max_tokens=8,
        temperature=0,
    )
    info = reply.llmline
    assert info["model_version"] == "faq-lora@1"
    assert info["prompt_version"] == tuned_ws_template(tuned_ws)
    assert reply.usage.completion_tokens <= 8
    assert set(reply.safety_attributes) >= {"blocked", "scores", "severity", "categories"}
    assert "citations" in reply.citation_metadata
    chunks = list(
        client.chat.completions.create(
            model="faq-lora",
            messages=[{"role": "user", "content": question}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reply.choices[0].message.content  # greedy: same answer either way
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def tuned_ws_template(ws: Workspace) -> str:
    from llmline.models import ModelRegistry

    return ModelRegistry(ws.metadata).get("faq-lora@1").metadata["template"]


def test_switch_strategy_without_restart(served: str, tuned_ws: Workspace) -> None:
    cli = Path(sys.executable).with_name("llmline")

    def deploy(*args: str) -> None:
        done = subprocess.run(
            [str(cli), "deploy", "create", "faq", *args],
            cwd=tuned_ws.root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    deploy("--model", "faq-lora@champion", "--model", "tiny@1", "--strategy", "blue-green")
    client = openai.OpenAI(base_url=served + "/v1", api_key="k", max_retries=0)

    def version() -> str:
        reply = client.chat.completions.create(
            model="faq",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=2,
            temperature=0.5,
        )
        return reply.llmline["model_version"]

    deadline = time.monotonic() + 60
    while True:
        try:
            if version() == "faq-lora@1":
                break
        except openai.NotFoundError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)
    subprocess.run([str(cli), "deploy", "promote", "faq"], cwd=tuned_ws.root, check=True)
    deadline = time.monotonic() + 60
    while version() != "tiny@1":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert {version() for _ in range(5)} == {"tiny@1"}
