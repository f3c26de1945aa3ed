"""Fixtures for pipeline tests: a synthetic workspace with a tiny base model.

Pipelines run for real: kfp's local runner starts a process per step, which
loads torch and transformers (about 10 s a step on 2 cores), so the few
tests that run a whole pipeline are marked slow and share what they can.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("kfp")  # the ``tune`` extra

from llmline.workspace import Workspace

#: Parameters that make the tune pipeline take seconds on the tiny model.
FAST = {
    "base_model": "tiny",
    "train_steps": "3",
    "evaluation_interval": "2",
    "checkpoint_every": "2",
    "batch_size": "2",
    "eval_limit": "2",
    "max_new_tokens": "4",
    "eval_batch_size": "2",
    "gates": "rows>=1",
}


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llmline.testing.models import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture
def pipeline_ws(tmp_path: Path, tiny_base_dir: Path) -> Workspace:
    """A workspace with 80 synthetic questions and ``tiny@1`` as base model."""
    from llmline.models import import_model
    from llmline.testing.workspace import synthetic_workspace

    workspace = synthetic_workspace(tmp_path / "ws", questions=80)
    import_model(workspace, tiny_base_dir, name="tiny", verify=False)
    return workspace


@pytest.fixture
def fast_params() -> dict[str, str]:
    return dict(FAST)
