"""``llmline quickstart`` end to end on the tiny model: summary, promotion,
and a second run that takes every step from the cache and says so."""

from __future__ import annotations

import json

import pytest

from llmline.cli.app import main
from llmline.models import ModelRegistry
from llmline.workspace import Workspace

pytestmark = pytest.mark.slow


def test_quickstart_twice(
    pipeline_ws: Workspace, fast_params: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [arg for key, value in fast_params.items() for arg in ("-p", f"{key}={value}")]
    capsys.readouterr()
    assert main(["quickstart", str(pipeline_ws.root), *args, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["promoted"] is True and first["cache_hits"] == 0 and first["steps"] == 5
    assert first["base_model"] == "tiny@1"
    assert set(first["metrics"]["rougeL"]) == {"base", "tuned", "delta"}
    champion = ModelRegistry(pipeline_ws.metadata).get(
        first["model_ref"].partition("@")[0] + "@champion"
    )
    assert champion.ref == first["model_ref"]

    assert main(["quickstart", str(pipeline_ws.root), *args]) == 0
    captured = capsys.readouterr()
    assert "every step came from the pipeline cache (5/5 steps)" in captured.out
    assert first["model_ref"] in captured.out and first["dataset_ref"] in captured.out
    assert "llmline models show" in captured.out  # the next command
