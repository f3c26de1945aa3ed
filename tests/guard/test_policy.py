"""Guard policies: block / redact / flag decisions, per-category actions,
defaults merged with deployment overrides, bad policies refused."""

from __future__ import annotations

import asyncio

import pytest

from llmline.errors import ConfigError
from llmline.gateway.safety import ScanContext, ScanResult
from llmline.guard.guardrails import Guardrails
from llmline.guard.policy import GuardPolicy, ScannerPolicy, decide


class Spotter:
    """A scanner finding a word; redacts it when ``redacts``."""

    def __init__(self, name: str, word: str, category: str, *, redacts: bool = True) -> None:
        self.name, self.word, self.category, self.redacts = name, word, category, redacts
        self.inline_chars = 10_000

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        if self.word not in text:
            return ScanResult()
        redacted = text.replace(self.word, f"[{self.category.upper()}]") if self.redacts else None
        return ScanResult({self.category: 0.9}, {self.category: "medium"}, redacted_text=redacted)


def _results(text: str, *scanners: Spotter) -> list[tuple[str, ScanResult]]:
    return [(s.name, s.scan(text, ScanContext())) for s in scanners]


def test_flag_records_only() -> None:
    text = "call bob"
    verdict = decide(text, _results(text, Spotter("a", "bob", "name")), {"a": ScannerPolicy()})
    assert verdict.text == text and not verdict.blocked and not verdict.redacted
    assert [(d.scanner, d.category, d.action) for d in verdict.decisions] == [("a", "name", "flag")]


def test_redactions_of_two_scanners_both_apply() -> None:
    text = "bob and alice"
    scanners = Spotter("a", "bob", "x"), Spotter("b", "alice", "y")
    policies = {"a": ScannerPolicy(action="redact"), "b": ScannerPolicy(action="redact")}
    verdict = decide(text, _results(text, *scanners), policies)
    assert verdict.redacted and verdict.text == "[X] and [Y]"


def test_block_wins_and_redact_without_redaction_blocks() -> None:
    text = "bob"
    verdict = decide(
        text,
        _results(text, Spotter("a", "bob", "x", redacts=False)),
        {"a": ScannerPolicy(action="redact")},
    )
    assert verdict.blocked and verdict.decisions[0].action == "block"


def test_threshold_and_severity_gate_firing() -> None:
    text = "bob"
    results = _results(text, Spotter("a", "bob", "x"))
    assert decide(text, results, {"a": ScannerPolicy(threshold=0.95)}).decisions == []
    assert decide(text, results, {"a": ScannerPolicy(min_severity="high")}).decisions == []
    assert decide(text, results, {"a": ScannerPolicy(min_severity="medium")}).decisions


def test_category_actions() -> None:
    result = ScanResult({"pii": 1.0, "pii:email": 1.0}, redacted_text="[EMAIL]")
    policy = ScannerPolicy(action="redact", categories={"pii:credit_card": "block"})
    assert decide("a@b.c", [("pii", result)], {"pii": policy}).redacted
    card = ScanResult({"pii": 1.0, "pii:credit_card": 1.0}, redacted_text="[CARD]")
    assert decide("4111...", [("pii", card)], {"pii": policy}).blocked


def test_defaults_and_overrides() -> None:
    policy = GuardPolicy()
    assert {"injection", "pii", "toxicity"} <= set(policy.scanners("input"))
    assert "refusal" in policy.scanners("output")
    override = GuardPolicy.parse({"input": {"injection": {"enabled": False}, "topics": {}}})
    merged = policy.merged(override)
    assert "injection" not in merged.scanners("input")
    assert "topics" in merged.scanners("input") and "pii" in merged.scanners("input")
    assert GuardPolicy(defaults=False).scanners("input") == {}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"input": {"pii": {"action": "delete"}}}, "action"),
        ({"input": {"pii": {"threshold": 2}}}, "threshold"),
        ({"inputs": {}}, "inputs"),
    ],
)
def test_bad_policy_is_a_config_error(document: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        GuardPolicy.parse(document)


def test_guardrails_run_given_scanners_and_report_decisions() -> None:
    policy = GuardPolicy(defaults=False, input={"names": ScannerPolicy(action="redact")})
    guard = Guardrails(policy, scanners={"names": Spotter("names", "bob", "person")})
    inbound, outbound = guard.for_deployment(None)
    verdict, attributes = asyncio.run(inbound.check("hi bob", ScanContext(direction="input")))
    assert verdict.text == "hi [PERSON]"
    assert attributes.redacted and not attributes.blocked
    assert attributes.decisions == [
        {"scanner": "names", "category": "person", "score": 0.9, "action": "redact"}
    ]
    assert "person" in attributes.categories
    assert outbound.policies == {}  # nothing configured for answers


def test_unknown_scanner_is_named() -> None:
    guard = Guardrails(GuardPolicy(defaults=False, input={"nope": ScannerPolicy()}))
    with pytest.raises(ConfigError, match="unknown guard scanner 'nope'"):
        guard.for_deployment(None)
