"""The length scanner: texts over ``max_chars`` are flagged and truncated."""

from __future__ import annotations

import pytest

from llmline.errors import ConfigError
from llmline.gateway.safety import ScanContext
from llmline.guard.scanners import create_scanner
from llmline.guard.scanners.length import LengthScanner, create
from tests.guard.scanners._inputs import MEGABYTE, random_text, zero_width_text

CTX = ScanContext(direction="input")


def test_short_text_passes() -> None:
    scanner = create({"max_chars": 10}, embedder=None)
    result = scanner.scan("0123456789", CTX)
    assert result.scores == {"too_long": 0.0}
    assert result.severity == {} and result.redacted_text is None


def test_long_text_is_flagged_and_truncated() -> None:
    scanner = create({"max_chars": 10}, embedder=None)
    result = scanner.scan("0123456789X", CTX)
    assert result.scores == {"too_long": 1.0}
    assert result.severity == {"too_long": "low"}
    assert result.redacted_text == "0123456789"
    assert result.notes == ("length:11>10",)


def test_default_limit() -> None:
    scanner = LengthScanner()
    assert scanner.scan("x" * 32_000, CTX).scores == {"too_long": 0.0}
    assert scanner.scan("x" * 32_001, CTX).scores == {"too_long": 1.0}


@pytest.mark.parametrize("options", [{"max_chars": 0}, {"max_chars": "long"}, {"max_tokens": 5}])
def test_bad_options_raise_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=f"guard scanner length: {next(iter(options))}"):
        create(options, embedder=None)


def test_entry_point_builds_the_scanner() -> None:
    scanner = create_scanner("length", {"max_chars": 5})
    assert isinstance(scanner, LengthScanner) and scanner.name == "length"


def test_megabyte_inputs_return() -> None:
    scanner = LengthScanner()
    for text in (zero_width_text(), random_text()):
        result = scanner.scan(text, CTX)
        assert result.notes == (f"length:{MEGABYTE}>32000",)
        assert result.redacted_text == text[:32_000]
