"""Synthetic request logs for drift tests and benchmarks (users' own test
suites can use them too): a workspace whose tuned model version records the
dataset it was trained on, and request rows written straight into the log.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from llmline.workspace import Workspace

__all__ = ["REFUSAL", "log_requests", "off_topic_prompts", "tuned_workspace"]

REFUSAL = "I'm sorry, but I can't help with that."

_DISHES = ["pasta", "risotto", "chicken curry", "salmon", "tofu", "sourdough", "soup", "cake"]
_PLACES = ["Lisbon", "Kyoto", "Oslo", "Lima", "Nairobi", "Quebec", "Hanoi", "Seville"]


def tuned_workspace(root: Path, questions: int = 1200, *, seed: int = 0) -> tuple[Workspace, str]:
    """A synthetic workspace with the python-faq dataset built and
    ``faq-lora@1`` (a tuned version of ``tiny@1``) recorded as tuned on it.

    The model folders are empty: good for drift reports (which read the
    registry's lineage), not for loading.  Returns the workspace and the
    dataset version's ref.
    """
    from llmline.data import build
    from llmline.models import ModelRegistry
    from llmline.testing.workspace import synthetic_workspace

    workspace = synthetic_workspace(root / "ws", questions, seed=seed)
    dataset = build("python-faq", workspace=workspace).ref
    folder = root / "model"
    folder.mkdir(parents=True, exist_ok=True)
    registry = ModelRegistry(workspace.metadata)
    registry.register("tiny", kind="base", uri=str(folder), format="hf-safetensors", source="test")
    registry.register(
        "faq-lora",
        kind="tuned",
        uri=str(folder),
        format="peft-lora",
        source="test",
        base="tiny@1",
        metadata={"dataset": dataset},
    )
    return workspace, dataset


def log_requests(
    workspace: Workspace,
    prompts: Sequence[str],
    answers: Sequence[str | None],
    *,
    start: datetime,
    deployment: str = "faq",
    model_version: str = "faq-lora@1",
    step: timedelta = timedelta(seconds=1),
    safety: dict[str, Any] | None = None,
    batch: int = 5000,
) -> None:
    """One answered request per prompt (``answers[i]`` None: no answer,
    status 500), ``step`` apart from ``start``, as the gateway logs them."""
    from llmline.monitoring.requestlog import insert_ignoring_duplicates

    rows: list[dict[str, Any]] = []
    for n, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        rows.append(
            {
                "request_id": uuid.uuid4().hex,
                "created_at": start + n * step,
                "endpoint": "chat",
                "status": 200 if answer is not None else 500,
                "deployment": deployment,
                "model_version": model_version,
                "stream": False,
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": len(answer or "") // 4,
                "cost_usd": 0.0,
                "latency_ms": 100.0,
                "input_text": prompt,
                "output_text": answer,
                "safety": safety if safety is not None else {"input": {}, "output": {}},
            }
        )
        if len(rows) >= batch:
            insert_ignoring_duplicates(workspace.metadata, rows)
            rows = []
    if rows:
        insert_ignoring_duplicates(workspace.metadata, rows)


def off_topic_prompts(count: int, *, seed: int = 0) -> list[str]:
    """Short cooking and travel questions: prompts far from a Python FAQ."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.5:
            out.append(f"How long should I cook {rng.choice(_DISHES)} for {rng.randint(2, 9)}?")
        else:
            out.append(f"What should I see in {rng.choice(_PLACES)} in {rng.randint(2, 6)} days?")
    return out
