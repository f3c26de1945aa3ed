"""The helpers the rule-based scanners share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel, ConfigDict

from llmline.errors import ConfigError
from llmline.guard.scanners._text import (
    count_notes,
    noisy_or,
    non_overlapping,
    parse_options,
    redact,
    strip_invisible,
)


@dataclass(frozen=True)
class Found:
    kind: str
    start: int
    end: int


RANK = {"card": 0, "phone": 1}


def test_overlaps_go_to_the_lower_rank_then_the_longer() -> None:
    found = [
        Found("phone", 0, 10),
        Found("card", 2, 12),
        Found("phone", 20, 25),
        Found("phone", 18, 30),
        Found("phone", 40, 41),
    ]
    kept = non_overlapping(found, lambda f: RANK[f.kind])
    assert kept == [Found("card", 2, 12), Found("phone", 18, 30), Found("phone", 40, 41)]


def test_touching_spans_do_not_overlap() -> None:
    found = [Found("phone", 0, 5), Found("phone", 5, 9)]
    assert non_overlapping(found, lambda f: RANK[f.kind]) == found


def test_redact_replaces_spans_in_any_order() -> None:
    text = "mail a@b.co or call 555"
    assert redact(text, [(20, 23, "[P]"), (5, 11, "[E]")]) == "mail [E] or call [P]"
    assert redact(text, []) == text


def test_noisy_or_combines_and_clamps() -> None:
    assert noisy_or([]) == 0.0
    assert noisy_or([0.5, 0.5]) == 0.75
    assert noisy_or([1.2, -1.0]) == 1.0


def test_count_notes() -> None:
    assert count_notes(["phone", "email", "phone"]) == ("email x1", "phone x2")


def test_strip_invisible() -> None:
    assert strip_invisible("DR\u200bO\u200dP\u202e \U000e0041x") == "DROP x"


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 1


def test_parse_options_names_the_scanner_and_field() -> None:
    assert parse_options(Opts, {"size": 3}, "demo").size == 3
    with pytest.raises(ConfigError, match=r"guard scanner demo: size: .*integer"):
        parse_options(Opts, {"size": "big"}, "demo")
    with pytest.raises(ConfigError, match="guard scanner demo: colour"):
        parse_options(Opts, {"colour": "red"}, "demo")
