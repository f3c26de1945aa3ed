"""The evaluation stage's own error."""

from __future__ import annotations

from llmline.errors import UserError

__all__ = ["EvaluationError"]


class EvaluationError(UserError, ValueError):
    """Evaluation input is unusable: no rows, mismatched lengths, a missing field."""
