"""Promotion gates: simple metric thresholds, absolute or relative to a base.

The registry knows nothing about how metrics are computed: the evaluation
stage supplies plain ``{metric: value}`` dicts, and :func:`check_gates`
compares them.  ``Gate.parse`` reads the CLI form::

    exact_match>=0.2        absolute threshold
    rougeL>=base            at least as good as the base model
    rougeL>=base+0.02       two points better than the base
    loss<=base-0.1          lower is better
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from llmline.models.errors import ModelError

__all__ = ["Gate", "GateFailure", "check_gates"]

_GATE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.:/-]*)\s*(?P<op>>=|<=)\s*"
    r"(?:(?P<base>base)\s*(?:(?P<sign>[+-])\s*(?P<delta>[0-9.eE+-]+))?|(?P<value>[-+0-9.eE]+))\s*$"
)


class Gate(BaseModel):
    """``metric op threshold``; with ``relative_to="base"`` the threshold is
    added to the base model's value of the same metric."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    op: Literal[">=", "<="] = ">="
    threshold: float = 0.0
    relative_to: Literal["base"] | None = None

    @classmethod
    def parse(cls, text: str) -> Gate:
        match = _GATE.match(text)
        if match is None:
            raise ModelError(
                f"invalid gate {text!r}: expected METRIC>=NUMBER, METRIC<=NUMBER "
                "or METRIC>=base[+-NUMBER]"
            )
        try:
            if match["base"]:
                delta = float(match["delta"] or 0.0)
                threshold = -delta if match["sign"] == "-" else delta
                return cls(
                    metric=match["metric"], op=match["op"], threshold=threshold, relative_to="base"
                )
            return cls(metric=match["metric"], op=match["op"], threshold=float(match["value"]))
        except (ValueError, ValidationError):
            raise ModelError(f"invalid gate {text!r}: bad number") from None

    def __str__(self) -> str:
        if self.relative_to is None:
            return f"{self.metric}{self.op}{self.threshold:g}"
        delta = f"{self.threshold:+g}" if self.threshold else ""
        return f"{self.metric}{self.op}{self.relative_to}{delta}"


@dataclass(frozen=True)
class GateFailure:
    """One gate that did not pass, with the numbers that decided it."""

    gate: Gate
    value: float | None  # None: the metric is missing
    required: float | None  # the bound it had to meet; None: base value missing
    base_value: float | None = None

    def __str__(self) -> str:
        metric = self.gate.metric
        if self.value is None:
            return f"{metric} is missing from the candidate's metrics (gate {self.gate})"
        if self.required is None:
            return f"{metric} is missing from the base model's metrics (gate {self.gate})"
        failed_op = "<" if self.gate.op == ">=" else ">"
        text = f"{metric} {self.value:.4g} {failed_op} {self.required:.4g} required"
        if self.gate.relative_to is not None:
            text += f" (base {self.base_value:.4g} {self.gate.threshold:+.4g})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": str(self.gate),
            "metric": self.gate.metric,
            "value": self.value,
            "required": self.required,
            "base_value": self.base_value,
            "message": str(self),
        }


def check_gates(
    gates: Sequence[Gate],
    metrics: Mapping[str, float],
    base_metrics: Mapping[str, float] | None = None,
) -> list[GateFailure]:
    """The gates that ``metrics`` fail (an empty list: all pass).

    A missing or non-finite metric fails its gate: a gate that cannot be
    checked must not let a model through.
    """
    failures = []
    for gate in gates:
        value = _number(metrics.get(gate.metric))
        base_value = None
        required: float | None = gate.threshold
        if gate.relative_to == "base":
            base_value = _number((base_metrics or {}).get(gate.metric))
            required = None if base_value is None else base_value + gate.threshold
        if value is None or required is None:
            failures.append(GateFailure(gate, value, required, base_value))
            continue
        passed = value >= required if gate.op == ">=" else value <= required
        if not passed:
            failures.append(GateFailure(gate, value, required, base_value))
    return failures


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
