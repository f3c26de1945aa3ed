"""Prompt templates: immutable versions, movable aliases."""

from llmline.prompts.registry import PromptInfo, PromptRef, PromptRegistry
from llmline.prompts.template import Template

__all__ = ["PromptInfo", "PromptRef", "PromptRegistry", "Template"]
