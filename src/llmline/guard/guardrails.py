"""The gateway's guardrails: scanners built from the policy, run
concurrently within their latency budgets, and their decisions applied.

One scanner instance serves every deployment that uses it with the same
options (a classifier is loaded once).  :meth:`Guardrails.for_deployment`
gives the checkers of one deployment's merged policy, cached until the
deployment's policy changes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from llmline.gateway.safety import SafetyAttributes, SafetyChecker, ScanContext, Scanner
from llmline.guard.policy import GuardPolicy, ScannerPolicy, Verdict, decide

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = ["DirectionGuard", "Guardrails", "attributes"]

Direction = Literal["input", "output"]


@dataclass
class DirectionGuard:
    """The scanners and policies of one deployment for prompts or answers."""

    checker: SafetyChecker
    policies: dict[str, ScannerPolicy]

    @property
    def redacts(self) -> bool:
        return any(
            p.action == "redact" or "redact" in p.categories.values()
            for p in self.policies.values()
        )

    async def check(self, text: str, context: ScanContext) -> tuple[Verdict, SafetyAttributes]:
        if not self.policies:
            return Verdict(text), SafetyAttributes()
        results, skipped = await self.checker.aresults(text, context)
        verdict = decide(text, results, self.policies)
        return verdict, attributes(self.checker, results, skipped, verdict)


def attributes(
    checker: SafetyChecker,
    results: list[tuple[str, Any]],
    skipped: list[str],
    verdict: Verdict,
) -> SafetyAttributes:
    """Safety attributes: every category's probability and severity (the
    checker's reporting policy), with the policy's decisions on top."""
    combined = checker.combine((r for _, r in results), skipped)
    categories = list(combined.categories)
    categories += [d.category for d in verdict.decisions if d.category not in categories]
    # Categories no scanner saw any sign of are left out: a clean answer stays short.
    seen = {c for c, score in combined.scores.items() if score > 0}
    return SafetyAttributes(
        blocked=verdict.blocked,
        categories=categories,
        scores={c: s for c, s in combined.scores.items() if c in seen},
        severity={c: s for c, s in combined.severity.items() if c in seen},
        skipped=combined.skipped,
        redacted=verdict.redacted,
        decisions=[d.to_dict() for d in verdict.decisions],
    )


class Guardrails:
    """Scanners for every deployment, from ``policy`` and deployment overrides.

    ``scanners`` are ready-made instances by name that take precedence over
    building from the entry points (tests and embedding applications pass
    their own); ``embedder`` is shared by scanners that embed text.
    """

    def __init__(
        self,
        policy: GuardPolicy | None = None,
        *,
        scanners: Mapping[str, Scanner] | None = None,
        embedder: Embedder | None = None,
        workers: int = 8,
    ) -> None:
        self.policy = policy or GuardPolicy()
        self.embedder = embedder
        self.workers = workers
        self._given = dict(scanners or {})
        self._built: dict[str, Scanner] = {}
        self._guards: dict[str, tuple[DirectionGuard, DirectionGuard]] = {}
        self._lock = threading.Lock()

    def scanner(self, name: str, policy: ScannerPolicy) -> Scanner:
        from llmline.guard.scanners import create_scanner

        if name in self._given:
            return self._given[name]
        key = f"{name}:{json.dumps(policy.options, sort_keys=True, default=str)}"
        with self._lock:
            if key not in self._built:
                self._built[key] = create_scanner(name, policy.options, embedder=self.embedder)
            return self._built[key]

    def for_deployment(self, override: GuardPolicy | None) -> tuple[DirectionGuard, DirectionGuard]:
        """``(input, output)`` guards of a deployment's policy."""
        merged = self.policy.merged(override)
        key = merged.model_dump_json()
        cached = self._guards.get(key)
        if cached is None:
            cached = (self._direction(merged, "input"), self._direction(merged, "output"))
            if len(self._guards) > 256:
                self._guards.clear()
            self._guards[key] = cached
        return cached

    def _direction(self, policy: GuardPolicy, direction: Direction) -> DirectionGuard:
        policies = policy.scanners(direction)
        scanners = [self.scanner(name, p) for name, p in policies.items()]
        budgets = {name: p.budget_ms / 1000 for name, p in policies.items() if p.budget_ms}
        checker = SafetyChecker(
            scanners, budget_s=policy.budget_ms / 1000, budgets=budgets, workers=self.workers
        )
        # Results are keyed by the scanner's own name, which a given scanner may choose.
        by_name = {s.name: policies[n] for n, s in zip(policies, scanners, strict=True)}
        return DirectionGuard(checker, by_name)

    def warm_up(self) -> None:
        """Build and load the default deployment's scanners now."""
        for guard in self.for_deployment(None):
            guard.checker.warm_up()
