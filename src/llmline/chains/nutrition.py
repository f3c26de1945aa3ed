"""The shipped nutrition table (``data/nutrition.csv``) and a forgiving lookup.

About 57 common foods with their kcal per typical serving and per 100 g
(rounded USDA FoodData Central figures, written for this project).  A food
is found by its name or an alias, in any case, singular or plural, and
inside a longer description (``"two scrambled eggs"`` → ``egg``); a leading
quantity is read as servings (``2``, ``1/2``, ``two``, ``a``) or as a weight
(``150 g``, ``3 oz``), so ``"150 g rice"`` counts 150 g of rice.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["CalorieEstimate", "Food", "estimate_calories", "foods"]

_NUMBER_WORDS = {
    "a": 1.0,
    "an": 1.0,
    "one": 1.0,
    "two": 2.0,
    "three": 3.0,
    "four": 4.0,
    "five": 5.0,
    "six": 6.0,
    "seven": 7.0,
    "eight": 8.0,
    "nine": 9.0,
    "ten": 10.0,
    "half": 0.5,
    "half a": 0.5,
    "a couple of": 2.0,
    "a few": 3.0,
}
_GRAMS_PER = {"g": 1.0, "gram": 1.0, "grams": 1.0, "kg": 1000.0, "oz": 28.35, "ounce": 28.35}
_GRAMS_PER["ounces"] = _GRAMS_PER["ounce"]
# Serving words that only say "one portion of": "2 slices of pizza" is 2 servings.
_PORTION = re.compile(
    r"^(?:slices?|pieces?|cups?|bowls?|glass(?:es)?|servings?|portions?|plates?|cans?"
    r"|bars?|handfuls?|scoops?|links?|strips?|fillets?)\s+(?:of\s+)?"
)
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?(?:/\d+)?)\s*")


@dataclass(frozen=True)
class Food:
    name: str
    aliases: tuple[str, ...]
    serving: str
    serving_g: float
    kcal_per_serving: float
    kcal_per_100g: float


@dataclass(frozen=True)
class CalorieEstimate:
    """What a description was matched to and the calories it counts."""

    food: str  # the description as given
    matched: str  # the table's food
    quantity: float
    unit: str  # "serving" or "g"
    kcal: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def foods() -> tuple[Food, ...]:
    text = resources.files("llmline.chains").joinpath("data/nutrition.csv").read_text("utf-8")
    return tuple(
        Food(
            name=row["food"],
            aliases=tuple(a for a in row["aliases"].split("|") if a),
            serving=row["serving"],
            serving_g=float(row["serving_g"]),
            kcal_per_serving=float(row["kcal_per_serving"]),
            kcal_per_100g=float(row["kcal_per_100g"]),
        )
        for row in csv.DictReader(text.splitlines())
    )


@cache
def _names() -> dict[str, Food]:
    """Every name and alias, singular forms too, to its food."""
    names: dict[str, Food] = {}
    for food in foods():
        for name in (food.name, *food.aliases):
            names.setdefault(name, food)
            names.setdefault(_singular(name), food)
    return names


def _singular(word: str) -> str:
    for suffix, replacement in (("ies", "y"), ("oes", "o"), ("ches", "ch"), ("shes", "sh")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _normalise(text: str) -> str:
    text = re.sub(r"[^a-z0-9/. ]+", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip(" .")


def _quantity(text: str) -> tuple[float, str, str]:
    """``(amount, unit, rest)`` of a leading quantity (default: one serving)."""
    amount, unit = 1.0, "serving"
    match = _QUANTITY.match(text)
    if match:
        number = match.group(1)
        top, _, bottom = number.partition("/")
        amount = float(top) / float(bottom) if bottom else float(number)
        text = text[match.end() :]
    else:
        for words in sorted(_NUMBER_WORDS, key=len, reverse=True):
            if text.startswith(words + " "):
                amount, text = _NUMBER_WORDS[words], text[len(words) + 1 :]
                break
    first, _, rest = text.partition(" ")
    if first in _GRAMS_PER and rest:
        return amount * _GRAMS_PER[first], "g", rest.removeprefix("of ")
    return amount, unit, _PORTION.sub("", text)


def _match(name: str) -> Food | None:
    names = _names()
    for candidate in (name, _singular(name), name.replace(" ", "")):  # "cheese burger"
        if _singular(candidate) in names:
            return names[_singular(candidate)]
        if candidate in names:
            return names[candidate]
    # Inside a longer description: the known name ending last (English puts
    # the head noun last: "chicken soup" is soup), the longest of those
    # ("grilled chicken breast" is chicken breast, not chicken).
    words = name.split()
    found: list[tuple[int, int, Food]] = []
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            run = " ".join(words[i:j])
            food = names.get(run) or names.get(_singular(run))
            if food is not None:
                found.append((j, len(run), food))
    return max(found, key=lambda t: (t[0], t[1]))[2] if found else None


def estimate_calories(food: str) -> CalorieEstimate:
    """Calories of one food description such as ``"2 eggs"`` or ``"150 g rice"``.

    Raises LookupError naming the closest foods when nothing in the table matches.
    """
    amount, unit, name = _quantity(_normalise(food))
    match = _match(name)
    if match is None:
        close = difflib.get_close_matches(name, list(_names()), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LookupError(f"no calorie data for {food!r}{hint}")
    kcal = amount * match.kcal_per_100g / 100 if unit == "g" else amount * match.kcal_per_serving
    return CalorieEstimate(food, match.name, round(amount, 3), unit, round(kcal, 1))
