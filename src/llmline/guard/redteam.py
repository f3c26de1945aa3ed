"""Red-team a running gateway: send the shipped attack set through its
OpenAI API and report what got through.

An attack is *stopped* when the gateway blocked it (the prompt or the
answer), *redacted* when what it carried was replaced, *flagged* when a
guardrail recorded it without acting, and *passed* otherwise.  The verdict
comes from the response's own ``input_safety_attributes`` and
``safety_attributes``, so this measures the deployment as configured.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import httpx

from llmline.errors import UserError

__all__ = ["Attack", "AttackResult", "RedTeamReport", "load_attacks", "run_redteam"]

Outcome = Literal["stopped", "redacted", "flagged", "passed", "error"]


@dataclass(frozen=True)
class Attack:
    id: str
    category: str
    style: str
    text: str


@dataclass(frozen=True)
class AttackResult:
    attack: Attack
    outcome: Outcome
    scanners: tuple[str, ...] = ()  # the scanners whose decisions applied
    detail: str = ""  # HTTP status and error for outcome "error"


@dataclass
class RedTeamReport:
    deployment: str
    results: list[AttackResult] = field(default_factory=list)

    def by_category(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for result in self.results:
            table.setdefault(result.attack.category, Counter())[result.outcome] += 1
        return {category: dict(counts) for category, counts in sorted(table.items())}

    @property
    def passed(self) -> list[AttackResult]:
        return [r for r in self.results if r.outcome == "passed"]

    def to_dict(self) -> dict[str, Any]:
        total = len(self.results)
        outcomes = Counter(r.outcome for r in self.results)
        return {
            "deployment": self.deployment,
            "attacks": total,
            "outcomes": dict(outcomes),
            "stopped_rate": round(outcomes["stopped"] / total, 4) if total else None,
            "by_category": self.by_category(),
            "passed": [{"id": r.attack.id, "category": r.attack.category} for r in self.passed],
            "errors": [
                {"id": r.attack.id, "detail": r.detail}
                for r in self.results
                if r.outcome == "error"
            ],
        }


def load_attacks(path: Path | None = None) -> list[Attack]:
    """The attack set: ``path``, or the one shipped with llmline."""
    if path is None:
        text = resources.files("llmline.guard").joinpath("data/redteam.jsonl").read_text("utf-8")
        where = "the shipped red-team set"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
        where = str(path)
    attacks = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            attacks.append(
                Attack(
                    str(data["id"]), str(data["category"]), str(data.get("style", "")), data["text"]
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{where}, line {number}: not an attack ({exc})") from None
    if not attacks:
        raise UserError(f"{where} holds no attacks")
    return attacks


def _outcome(body: dict[str, Any]) -> tuple[Outcome, tuple[str, ...]]:
    attributes = [body.get("input_safety_attributes") or {}, body.get("safety_attributes") or {}]
    decisions = [d for a in attributes for d in a.get("decisions") or []]
    scanners = tuple(sorted({str(d.get("scanner")) for d in decisions}))
    if any(a.get("blocked") for a in attributes):
        return "stopped", scanners
    if any(a.get("redacted") for a in attributes):
        return "redacted", scanners
    if decisions:
        return "flagged", scanners
    return "passed", scanners


def run_redteam(
    url: str,
    deployment: str,
    attacks: Iterable[Attack],
    *,
    api_key: str | None = None,
    max_tokens: int = 32,
    timeout_s: float = 120.0,
    transport: httpx.BaseTransport | None = None,
) -> RedTeamReport:
    """Send every attack to ``deployment`` at ``url`` (the gateway's base URL)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    report = RedTeamReport(deployment)
    base = url.rstrip("/").removesuffix("/v1")
    with httpx.Client(
        base_url=base, headers=headers, timeout=timeout_s, transport=transport
    ) as client:
        for attack in attacks:
            report.results.append(_send(client, deployment, attack, max_tokens))
    return report


def _send(client: httpx.Client, deployment: str, attack: Attack, max_tokens: int) -> AttackResult:
    body = {
        "model": deployment,
        "messages": [{"role": "user", "content": attack.text}],
        "max_tokens": max_tokens,
        "llmline": {"cache": False},
    }
    try:
        response = client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the gateway at {client.base_url}: {exc}") from None
    if response.status_code in (401, 403, 404):
        raise UserError(f"the gateway refused the red-team key: {_message(response)}")
    if response.status_code != 200:
        return AttackResult(attack, "error", detail=f"{response.status_code}: {_message(response)}")
    outcome, scanners = _outcome(response.json())
    return AttackResult(attack, outcome, scanners)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
