"""The shipped tools: ``calories``, ``calculator`` and ``python_docs_search``."""

from __future__ import annotations

import ast
import logging
import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmline.agents.tools import Tool, ToolRegistry, tool
from llmline.chains.nutrition import estimate_calories

if TYPE_CHECKING:
    from llmline.workspace import Workspace

__all__ = ["builtin_tools", "calculate", "calculator", "calories", "python_docs_search_tool"]

log = logging.getLogger("llmline.agents")

#: The knowledge base ``python_docs_search`` reads (``llmline rag ingest python-docs ...``).
PYTHON_DOCS_KB = "python-docs"

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "exp": math.exp,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 1000  # 10**10**10 would not finish: refuse huge powers
_MAX_LENGTH = 500


def calculate(expression: str) -> float:
    """Evaluate arithmetic (``+ - * / // % **``, parentheses, sqrt, log, ...)
    by walking its syntax tree: names, attributes and calls other than the
    listed functions are refused, so this is never ``eval``."""
    if len(expression) > _MAX_LENGTH:
        raise ValueError(f"expression longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    value = _evaluate(tree.body)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a number: {expression!r}")
    return float(value)


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args))
    raise ValueError(f"unsupported in arithmetic: {ast.unparse(node)!r}")


@tool
def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression such as "(2 + 3) * 4" or "sqrt(2)".

    Operators + - * / // % ** and the functions sqrt, abs, round, min, max,
    log, exp; the constants pi and e.
    """
    return calculate(expression)


@tool
def calories(food: str) -> dict[str, Any]:
    """Look up the calories (kcal) of a food, e.g. "2 eggs", "toast" or "150 g rice".

    Returns the matched food, the quantity and the kcal.

    Args:
        food: One food, optionally with servings ("2 eggs") or a weight ("150 g rice").
    """
    return estimate_calories(food).to_dict()


def python_docs_search_tool(workspace: Workspace, knowledge_base: str = PYTHON_DOCS_KB) -> Tool:
    """A tool searching ``knowledge_base`` (opened on first use)."""
    from llmline.rag import open_knowledge_base

    opened: list[Any] = []

    def python_docs_search(query: str, k: int = 3) -> list[dict[str, Any]]:
        """Search the Python documentation; returns the best passages with their titles.

        Args:
            query: What to look for, in words.
            k: How many passages (1-10).
        """
        if not opened:
            opened.append(open_knowledge_base(knowledge_base, workspace=workspace))
        hits = opened[0].search(query, k=max(1, min(k, 10)))
        return [{"title": h.title, "source": h.source, "text": h.text[:800]} for h in hits]

    return tool(python_docs_search)


def builtin_tools(workspace: Workspace | None = None) -> ToolRegistry:
    """``calories`` and ``calculator``; ``python_docs_search`` too when the
    workspace has the ``python-docs`` knowledge base."""
    registry = ToolRegistry([calories, calculator])
    if workspace is not None and _has_knowledge_base(workspace, PYTHON_DOCS_KB):
        registry.add(python_docs_search_tool(workspace))
    return registry


def _has_knowledge_base(workspace: Workspace, name: str) -> bool:
    from llmline.errors import LLMLineError
    from llmline.rag import list_knowledge_bases

    try:
        return bool(list_knowledge_bases(name, workspace=workspace))
    except (LLMLineError, OSError) as exc:  # no catalog yet: the tool is simply absent
        log.debug("no knowledge base %s: %s", name, exc)
        return False
