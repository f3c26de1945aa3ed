"""What ``llmline init`` puts into a new workspace: the warehouse tables with
the shipped CPython FAQ, and the default prompt template."""

from __future__ import annotations

from llmline.prompts.registry import PromptRegistry
from llmline.workspace import Workspace

__all__ = ["DEFAULT_TEMPLATE_NAME", "DEFAULT_TEMPLATE_TEXT", "seed_workspace"]

DEFAULT_TEMPLATE_NAME = "stackoverflow-python"
DEFAULT_TEMPLATE_TEXT = (
    "Please answer the following Stackoverflow question on Python. "
    "Answer it like you are a developer answering Stackoverflow questions.\n\n"
    "Stackoverflow question:\n{question}"
)


def seed_workspace(workspace: Workspace, *, load_sample_data: bool = True) -> None:
    """Idempotent: existing tables, rows and templates are left as they are."""
    with workspace.warehouse() as warehouse:
        warehouse.ensure_schema()
        questions = next((t for t in warehouse.tables() if t.name == "posts_questions"), None)
        if load_sample_data and (questions is None or questions.rows == 0):
            from llmline.warehouse.faq import load_shipped_faq

            load_shipped_faq(warehouse)
    prompts = PromptRegistry(workspace.metadata)
    if not any(p.name == DEFAULT_TEMPLATE_NAME for p in prompts.list()):
        info, _ = prompts.create(
            DEFAULT_TEMPLATE_NAME,
            DEFAULT_TEMPLATE_TEXT,
            description="Instruction prompt in the tuning format: one Stack Overflow question",
        )
        prompts.set_alias(info.ref, "production")
