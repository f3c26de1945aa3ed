"""``llmline monitor drift`` / ``monitor reeval``: JSON output, the table,
and one-line user errors with exit code 1."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmline.testing.drift import (
    REFUSAL,
    log_requests,
    off_topic_prompts,
    tuned_workspace,
)

from .conftest import CLI

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose ``faq`` deployment served off-topic prompts in the
    last half hour."""
    base = tmp_path_factory.mktemp("drift-cli")
    ws, _ = tuned_workspace(base, 300)
    start = datetime.now(UTC) - timedelta(minutes=30)
    log_requests(ws, off_topic_prompts(80), [REFUSAL] * 80, start=start)
    ws.close()
    return base / "ws"


def test_drift_json(cli: CLI, root: Path, tmp_path: Path) -> None:
    png = tmp_path / "drift.png"
    result = cli(
        "monitor", "drift", "faq", "--window", "2h", "--sample", "40", "--json",
        "--plot", str(png), workspace=root,
    )  # fmt: skip
    assert result.code == 0, result.err
    report = result.json()
    assert report["deployment"] == "faq" and report["window"] == "2h"
    assert report["status"] == "drift" and report["n_current"] == 80
    assert report["plot"] == str(png) and png.is_file()
    names = {t["name"]: t for t in report["tests"]}
    assert names["prompt_embedding_mmd"]["kind"] == "input"
    assert names["refusal_rate"]["status"] == "drift"
    assert (root / ".llmline" / "monitoring" / "drift" / "latest.json").is_file()


def test_drift_table(cli: CLI, root: Path) -> None:
    result = cli("monitor", "drift", "--window", "2h", "--sample", "40", workspace=root)
    assert result.code == 0, result.err
    assert "prompt_length_psi" in result.out and "status: drift" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("monitor", "drift", "nobody"), "no requests for deployment 'nobody'"),
        (("monitor", "drift", "--window", "soon"), "invalid window 'soon'"),
        (("monitor", "drift", "faq", "--reference", "nope"), "no dataset named 'nope'"),
        (("monitor", "reeval", "no-such-model"), "no-such-model"),
        (("monitor", "reeval", "x", "--judge-url", "http://h/v1"), "--judge-model"),
    ],
)
def test_user_errors_are_one_line(
    cli: CLI, root: Path, args: tuple[str, ...], message: str
) -> None:
    result = cli(*args, workspace=root)
    assert result.code == 1
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
