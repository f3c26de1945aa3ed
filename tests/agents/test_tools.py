"""Tools: schemas from type hints and docstrings, validated calls, the
per-tool timeout, and the shipped calculator and calorie table."""

from __future__ import annotations

import threading
from typing import Literal

import anyio
import pytest

from llmline.agents import ToolError, ToolRegistry, builtin_tools, calculate, tool
from llmline.chains.nutrition import estimate_calories, foods
from llmline.errors import UserError

pytestmark = pytest.mark.anyio


@tool
def convert(amount: float, unit: Literal["kg", "lb"] = "kg", note: str | None = None) -> float:
    """Convert an amount to grams.

    Longer explanation that is not part of the description.

    Args:
        amount: How much of the unit.
        unit: The unit the amount is in.
    """
    return amount * (1000 if unit == "kg" else 453.6)


def test_schema_comes_from_hints_and_docstring() -> None:
    schema = convert.schema()
    function = schema["function"]
    assert schema["type"] == "function"
    assert function["name"] == "convert"
    assert function["description"] == "Convert an amount to grams."
    parameters = function["parameters"]
    assert parameters["required"] == ["amount"]
    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["amount"] == {
        "type": "number",
        "description": "How much of the unit.",
    }
    assert parameters["properties"]["unit"]["enum"] == ["kg", "lb"]
    assert parameters["properties"]["unit"]["default"] == "kg"
    assert "description" not in parameters["properties"]["note"]


async def test_calls_are_validated_against_the_schema() -> None:
    assert await convert.call({"amount": "2", "unit": "lb"}) == pytest.approx(907.2)
    with pytest.raises(ToolError, match="invalid arguments for convert: unit"):
        await convert.call({"amount": 1, "unit": "stone"})
    with pytest.raises(ToolError, match="amount: Field required"):
        await convert.call({})
    with pytest.raises(ToolError, match="extra: Extra inputs"):
        await convert.call({"amount": 1, "extra": True})


def test_untyped_parameters_are_refused() -> None:
    def loose(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(TypeError, match="parameter x needs a type hint"):
        tool(loose)


async def test_a_hung_sync_tool_is_abandoned_at_its_timeout() -> None:
    release = threading.Event()

    @tool(timeout_s=0.2)
    def stuck(query: str) -> str:
        """Never answers in time."""
        release.wait(30)
        return query

    try:
        with pytest.raises(ToolError, match=r"stuck timed out after 0.2 s"):
            await stuck.call({"query": "x"})
    finally:
        release.set()


async def test_async_tools_run_on_the_loop() -> None:
    @tool
    async def later(seconds: float) -> str:
        """Sleep, then answer."""
        await anyio.sleep(seconds)
        return "done"

    assert await later.call({"seconds": 0}) == "done"
    with pytest.raises(ToolError, match="timed out"):
        await later.call({"seconds": 5}, timeout_s=0.05)


def test_registry_lookup_and_selection() -> None:
    registry = builtin_tools()
    assert [t.name for t in registry] == ["calories", "calculator"]
    assert "calories" in registry
    with pytest.raises(ToolError, match=r"no tool named 'nope' \(tools: calculator, calories\)"):
        registry.get("nope")
    assert [t.name for t in registry.only(["calculator"])] == ["calculator"]
    with pytest.raises(UserError, match="unknown tool 'nope'"):
        registry.only(["nope"])
    assert len(ToolRegistry([convert, registry.get("calculator")]).schemas()) == 2


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 3 * 4", 14.0),
        ("(2 + 3) * 4", 20.0),
        ("2 ** 10", 1024.0),
        ("-7 // 2", -4.0),
        ("sqrt(16) + abs(-1)", 5.0),
        ("round(pi, 2)", 3.14),
        ("3 ^ 2", 9.0),
        ("10 % 4", 2.0),
    ],
)
def test_calculator_does_arithmetic(expression: str, value: float) -> None:
    assert calculate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("__import__('os').system('true')", "unsupported"),
        ("open('/etc/passwd')", "unsupported"),
        ("(1).__class__", "unsupported"),
        ("x + 1", "unsupported"),
        ("2 ** 99999", "too large"),
        ("1 +", "not an arithmetic expression"),
        ("'a' * 3", "unsupported"),
        ("1" * 600, "longer than"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        calculate(expression)


def test_calculator_division_by_zero_raises() -> None:
    with pytest.raises(ZeroDivisionError):
        calculate("1 / 0")


def test_nutrition_table_is_complete() -> None:
    table = foods()
    assert len(table) >= 50
    for food in table:
        # kcal per serving agrees with kcal per 100 g and the serving's weight (±35 %:
        # rounding and foods whose serving weight varies).
        derived = food.kcal_per_100g * food.serving_g / 100
        assert food.kcal_per_serving == pytest.approx(derived, rel=0.35), food.name


@pytest.mark.parametrize(
    ("description", "matched", "kcal"),
    [
        ("2 eggs", "egg", 156.0),
        ("EGGS", "egg", 78.0),
        ("two scrambled eggs", "egg", 156.0),
        ("a slice of toast", "toast", 72.0),
        ("Strawberries", "strawberry", 49.0),
        ("150 g rice", "white rice", 195.0),
        ("1/2 cup of oatmeal", "oatmeal", 83.0),
        ("3 Potatoes", "potato", 483.0),
        ("a glass of orange juice", "orange juice", 112.0),
        ("fries", "french fries", 365.0),
        ("cheese burger", "hamburger", 540.0),
        ("chicken soup", "soup", 75.0),
        ("grilled chicken breast", "chicken breast", 198.0),
    ],
)
def test_calorie_lookup_is_tolerant(description: str, matched: str, kcal: float) -> None:
    estimate = estimate_calories(description)
    assert (estimate.matched, estimate.kcal) == (matched, kcal)


def test_unknown_food_names_close_matches() -> None:
    with pytest.raises(LookupError, match="no calorie data for 'caviar'"):
        estimate_calories("caviar")
    with pytest.raises(LookupError, match="did you mean banana"):
        estimate_calories("bananna")
