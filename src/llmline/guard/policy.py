"""Guardrail policies: which scanners run on prompts and answers, and what
each does when it fires (``block``, ``redact`` or ``flag``).

A policy lives in ``llmline.yaml`` under ``guard:`` and a deployment may
override it per scanner (its own ``guard:``).  A scanner *fires* on a
category when the category's probability reaches ``threshold`` and its
severity reaches ``min_severity``; ``categories`` can give one category its
own action (the PII scanner redacts an e-mail address but blocks a card
number).  Every firing is a :class:`Decision` (scanner, category, score,
action) that the response's safety attributes and the request log carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmline._pydantic import problems
from llmline.errors import ConfigError
from llmline.gateway.safety import SEVERITIES, ScanResult, Severity, severity_rank

__all__ = [
    "DEFAULT_INPUT",
    "DEFAULT_OUTPUT",
    "Action",
    "Decision",
    "GuardPolicy",
    "ScannerPolicy",
    "Verdict",
    "decide",
]

Action = Literal["block", "redact", "flag"]
_STRENGTH = {"flag": 0, "redact": 1, "block": 2}


class ScannerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    action: Action = Field(default="flag", description="What firing does")
    threshold: float = Field(default=0.5, ge=0, le=1, description="Least probability that fires")
    min_severity: Severity = Field(default="negligible", description="Least severity that fires")
    categories: dict[str, Action] = Field(
        default_factory=dict, description="Per-category actions (override action)"
    )
    block_severity: Severity | None = Field(
        default=None, description="Firing categories of this severity or worse are blocked"
    )
    budget_ms: float | None = Field(default=None, gt=0, description="Latency budget")
    options: dict[str, Any] = Field(default_factory=dict, description="The scanner's options")

    def action_for(self, category: str, severity: str = "negligible") -> Action:
        if self.block_severity is not None and severity_rank(severity) >= severity_rank(
            self.block_severity
        ):
            return "block"
        return self.categories.get(category, self.action)


def _p(**fields: Any) -> ScannerPolicy:
    return ScannerPolicy(**fields)


_FINANCIAL = {
    f"pii:{t}": "block"
    for t in ("credit_card", "iban", "us_ssn", "uk_nino", "es_dni", "in_aadhaar")
}

#: The default input scanners: what a new gateway checks prompts for.
DEFAULT_INPUT: dict[str, ScannerPolicy] = {
    "length": _p(action="block"),
    "unicode": _p(action="redact"),
    "injection": _p(action="block", threshold=0.5),
    "pii": _p(action="redact", categories=dict(_FINANCIAL)),
    "secrets": _p(action="redact"),
    "toxicity": _p(action="flag", block_severity="high"),
    "code_injection": _p(action="flag"),
}
#: The default output scanners.
DEFAULT_OUTPUT: dict[str, ScannerPolicy] = {
    "toxicity": _p(action="flag", block_severity="high"),
    "pii": _p(action="redact"),
    "secrets": _p(action="redact"),
    "refusal": _p(action="flag"),
}


class GuardPolicy(BaseModel):
    """``guard:`` in ``llmline.yaml`` (or a deployment's overrides)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, ScannerPolicy] = Field(default_factory=dict)
    output: dict[str, ScannerPolicy] = Field(default_factory=dict)
    budget_ms: float = Field(default=200.0, gt=0, description="Default per-scanner budget")
    defaults: bool = Field(
        default=True, description="Start from the default scanner set (false: only those listed)"
    )

    @classmethod
    def parse(cls, document: Mapping[str, Any] | None) -> GuardPolicy:
        try:
            return cls.model_validate(dict(document or {}))
        except ValidationError as exc:
            raise ConfigError(f"invalid guard policy: {problems(exc, 'guard')}") from None

    def scanners(self, direction: Literal["input", "output"]) -> dict[str, ScannerPolicy]:
        """The enabled scanners of one direction, defaults merged in."""
        base = DEFAULT_INPUT if direction == "input" else DEFAULT_OUTPUT
        merged = dict(base) if self.defaults else {}
        merged.update(self.input if direction == "input" else self.output)
        return {name: p for name, p in merged.items() if p.enabled}

    def merged(self, override: GuardPolicy | None) -> GuardPolicy:
        """This policy with a deployment's entries replacing its own."""
        if override is None:
            return self
        return GuardPolicy(
            input={**self.scanners("input"), **override.input},
            output={**self.scanners("output"), **override.output},
            budget_ms=override.budget_ms
            if "budget_ms" in override.model_fields_set
            else self.budget_ms,
            defaults=False,
        )


@dataclass(frozen=True)
class Decision:
    scanner: str
    category: str
    score: float
    action: Action

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanner": self.scanner,
            "category": self.category,
            "score": round(self.score, 4),
            "action": self.action,
        }


@dataclass
class Verdict:
    """What the scanners decided about one text."""

    text: str  # the text to use: redacted when a redact decision fired
    decisions: list[Decision] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(d.action == "block" for d in self.decisions)

    @property
    def redacted(self) -> bool:
        return not self.blocked and any(d.action == "redact" for d in self.decisions)


def decide(
    text: str, results: Iterable[tuple[str, ScanResult]], policies: Mapping[str, ScannerPolicy]
) -> Verdict:
    """Apply each scanner's policy to its result.

    Redactions are applied in scanner order, each to the text the previous
    ones left; a redact decision whose scanner gave no redacted text blocks
    instead (it cannot be honoured otherwise, and passing the text through
    would be the unsafe choice).
    """
    verdict = Verdict(text)
    for name, result in results:
        policy = policies.get(name)
        if policy is None:
            continue
        fired = _fired(result, policy)
        if not fired:
            continue
        actions = {c: policy.action_for(c, result.severity.get(c, "negligible")) for c in fired}
        strongest = max(actions.values(), key=_STRENGTH.__getitem__)
        if strongest == "redact" and result.redacted_text is None:
            strongest = "block"
        for category in fired:
            action = actions[category]
            if action == "redact" and strongest == "block":
                action = "block"
            verdict.decisions.append(Decision(name, category, result.scores[category], action))
        if strongest == "redact" and result.redacted_text is not None:
            verdict.text = _redact_in(verdict.text, text, result.redacted_text)
    return verdict


def _fired(result: ScanResult, policy: ScannerPolicy) -> list[str]:
    least = severity_rank(policy.min_severity)
    return [
        category
        for category, score in result.scores.items()
        if score >= policy.threshold
        and severity_rank(result.severity.get(category, SEVERITIES[0])) >= least
    ]


def _redact_in(current: str, original: str, redacted: str) -> str:
    """``current`` with the redaction one scanner made of ``original``.

    Scanners all see the original text (they run concurrently); when an
    earlier redaction already changed it, the later scanner's redacted text
    is used only if the earlier one changed nothing.
    """
    if current == original:
        return redacted
    # Merge: keep both scanners' redactions by applying the second one's
    # replacements that still find their original context.
    from difflib import SequenceMatcher

    out = current
    for tag, i1, i2, j1, j2 in reversed(SequenceMatcher(None, original, redacted).get_opcodes()):
        if tag == "equal":
            continue
        piece = original[i1:i2]
        if piece and piece in out:
            out = out.replace(piece, redacted[j1:j2], 1)
    return out
