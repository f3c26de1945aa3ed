"""Alert rules: the YAML file ``monitoring.alert_rules`` names, validated at load.

A file holds ``rules:``, a list (or the list alone).  Every rule has a
``name``, an ``expr`` saying what it measures, a ``threshold`` the value
must exceed (``>``) to make the rule active, an optional ``for`` (how long
it must stay active before it fires), a ``severity``, ``labels`` and a
``summary``.  What each ``expr`` measures, over its ``window`` of the
request log ending now:

- ``slo_burn_rate``: the burn rate of SLO ``slo`` (optionally also over
  ``short_window``: both must exceed the threshold, as in the SRE workbook);
- ``error_rate``: the share of requests answered with a 5xx status;
- ``latency_p95_ms``: the ``percentile`` (default 95) of successful
  requests' latency, in milliseconds;
- ``cost_usd``: USD spent (optionally by one ``key_id``);
- ``drift_status``: the latest drift report (``llmline monitor drift``)
  has a status in ``statuses`` (default ``[drift]``).

A malformed file is refused as a whole with one line naming the file, the
rule's index and name, and the field (:class:`~llmline.errors.ConfigError`).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from sqlalchemy import and_, func, select

from llmline.errors import ConfigError
from llmline.monitoring.config import SloSpec, duration
from llmline.monitoring.slo import burn_rates, window_counts
from llmline.storage.request_tables import RequestRow

if TYPE_CHECKING:
    from llmline.storage.db import MetadataStore

__all__ = [
    "EXPRS",
    "AlertRule",
    "CostRule",
    "DriftStatusRule",
    "ErrorRateRule",
    "LatencyRule",
    "Measurement",
    "RuleContext",
    "SloBurnRateRule",
    "load_rules",
]

DriftState = Literal["warn", "drift"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"


@dataclass(frozen=True)
class RuleContext:
    """What rules read: the request log, the workspace's SLOs and state folder."""

    store: MetadataStore
    slos: dict[str, SloSpec]
    state_dir: Path
    now: datetime


@dataclass(frozen=True)
class Measurement:
    value: float | str | None  # None: nothing to measure (no traffic, no report)
    active: bool
    detail: str


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        duration(value)
    return value


class _Rule(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=_NAME)
    severity: str = Field(default="warning", pattern=_NAME)
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str | None = None
    for_: str | None = Field(default=None, alias="for", description="e.g. 5m; default: at once")

    # Subclasses' duration fields too (check_fields=False: not all have them all).
    @field_validator("for_", "window", "short_window", "max_age", check_fields=False)
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @property
    def for_td(self) -> timedelta:
        return duration(self.for_) if self.for_ else timedelta(0)

    @abstractmethod
    def measure(self, ctx: RuleContext) -> Measurement:
        """The rule's value now (and whether it breaches its threshold)."""


class _WindowRule(_Rule):
    window: str = "5m"
    deployment: str | None = None
    threshold: float

    @property
    def window_td(self) -> timedelta:
        return duration(self.window)

    def _exceeds(self, value: float, what: str) -> Measurement:
        active = value > self.threshold
        relation = ">" if active else "<="
        return Measurement(value, active, f"{what} {value:g} {relation} {self.threshold:g}")


class SloBurnRateRule(_Rule):
    expr: Literal["slo_burn_rate"]
    slo: str
    window: str = "1h"
    short_window: str | None = None
    threshold: float = Field(gt=0)

    def measure(self, ctx: RuleContext) -> Measurement:
        spec = ctx.slos[self.slo]
        windows = {self.window: duration(self.window)}
        if self.short_window:
            windows[self.short_window] = duration(self.short_window)
        rates = burn_rates(ctx.store, spec, windows, now=ctx.now)
        long = rates[self.window]
        if long is None:
            return Measurement(None, False, f"no requests for SLO {self.slo} in {self.window}")
        short = rates.get(self.short_window) if self.short_window else long
        active = long > self.threshold and short is not None and short > self.threshold
        detail = f"SLO {self.slo} burn rate {long:g} over {self.window}"
        if self.short_window:
            detail += f", {'n/a' if short is None else f'{short:g}'} over {self.short_window}"
        return Measurement(long, active, f"{detail} (threshold {self.threshold:g})")


class ErrorRateRule(_WindowRule):
    expr: Literal["error_rate"]
    threshold: float = Field(ge=0, lt=1)
    min_requests: int = Field(default=1, ge=1)

    def measure(self, ctx: RuleContext) -> Measurement:
        total, bad = window_counts(
            ctx.store,
            kind="error_rate",
            threshold_ms=None,
            deployment=self.deployment,
            windows={self.window: self.window_td},
            now=ctx.now,
        )[self.window]
        if total < self.min_requests:
            return Measurement(None, False, f"{total} requests in {self.window}: too few to judge")
        return self._exceeds(round(bad / total, 6), f"5xx share over {self.window}")


class LatencyRule(_WindowRule):
    expr: Literal["latency_p95_ms"]
    threshold: float = Field(gt=0)
    percentile: float = Field(default=95, gt=0, le=100)
    min_requests: int = Field(default=1, ge=1)

    def measure(self, ctx: RuleContext) -> Measurement:
        value, count = latency_percentile(
            ctx.store, self.percentile, since=ctx.now - self.window_td, until=ctx.now,
            deployment=self.deployment,
        )  # fmt: skip
        if value is None or count < self.min_requests:
            return Measurement(None, False, f"{count} requests in {self.window}: too few to judge")
        return self._exceeds(value, f"p{self.percentile:g} latency (ms) over {self.window}")


class CostRule(_WindowRule):
    expr: Literal["cost_usd"]
    threshold: float = Field(ge=0)
    key_id: str | None = None

    def measure(self, ctx: RuleContext) -> Measurement:
        query = select(func.coalesce(func.sum(RequestRow.cost_usd), 0.0)).where(
            RequestRow.created_at >= ctx.now - self.window_td, RequestRow.created_at <= ctx.now
        )
        if self.deployment is not None:
            query = query.where(RequestRow.deployment == self.deployment)
        if self.key_id is not None:
            query = query.where(RequestRow.key_id == self.key_id)
        with ctx.store.read_session() as session:
            spent = round(float(session.scalar(query) or 0.0), 8)
        return self._exceeds(spent, f"USD spent over {self.window}")


class DriftStatusRule(_Rule):
    expr: Literal["drift_status"]
    deployment: str | None = None
    statuses: list[DriftState] = Field(default_factory=lambda: list[DriftState](["drift"]))
    max_age: str | None = Field(default=None, description="Ignore older reports, e.g. 48h")

    def measure(self, ctx: RuleContext) -> Measurement:
        path = ctx.state_dir / "monitoring" / "drift" / "latest.json"
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Measurement(None, False, "no drift report yet (llmline monitor drift)")
        except (OSError, ValueError) as exc:
            return Measurement(None, False, f"unreadable drift report {path}: {exc}")
        status = str(report.get("status"))
        if self.deployment is not None and report.get("deployment") != self.deployment:
            return Measurement(None, False, f"latest drift report is not of {self.deployment}")
        if self.max_age is not None and _older(report.get("created_at"), ctx.now, self.max_age):
            return Measurement(status, False, f"latest drift report is older than {self.max_age}")
        active = status in self.statuses
        where = f" of {report['deployment']}" if report.get("deployment") else ""
        return Measurement(status, active, f"drift status{where}: {status}")


def _older(created_at: Any, now: datetime, max_age: str) -> bool:
    try:
        created = datetime.fromisoformat(str(created_at))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return now - created > duration(max_age)


AlertRule = Annotated[
    SloBurnRateRule | ErrorRateRule | LatencyRule | CostRule | DriftStatusRule,
    Field(discriminator="expr"),
]
EXPRS = ("slo_burn_rate", "error_rate", "latency_p95_ms", "cost_usd", "drift_status")
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AlertRule)


def latency_percentile(
    store: MetadataStore,
    percentile: float,
    *,
    since: datetime,
    until: datetime,
    deployment: str | None = None,
) -> tuple[float | None, int]:
    """Nearest-rank ``percentile`` of successful requests' latency, and their
    count: two indexed queries, no rows loaded into memory."""
    where = [
        RequestRow.created_at >= since,
        RequestRow.created_at <= until,
        and_(RequestRow.status >= 200, RequestRow.status < 300),
    ]
    if deployment is not None:
        where.append(RequestRow.deployment == deployment)
    with store.read_session() as session:
        count = int(session.scalar(select(func.count()).where(*where)) or 0)
        if count == 0:
            return None, 0
        rank = max(1, math.ceil(percentile / 100 * count))
        value = session.scalar(
            select(RequestRow.latency_ms)
            .where(*where)
            .order_by(RequestRow.latency_ms)
            .offset(rank - 1)
            .limit(1)
        )
    return (None if value is None else float(value)), count


# -- loading ------------------------------------------------------------------------------


def load_rules(path: Path | str, *, slos: list[SloSpec] | None = None) -> list[AlertRule]:
    """The rules of ``path``; :class:`ConfigError` naming file, rule and field.

    ``slos``: those ``slo_burn_rate`` rules may name (None: not checked).
    """
    path = Path(path)
    items = _read_items(path)
    known_slos = None if slos is None else {slo.name for slo in slos}
    rules: list[AlertRule] = []
    for index, item in enumerate(items):
        rule = _validate(path, index, item)
        where = f"{path}: rules[{index}] ({rule.name!r})"
        if any(r.name == rule.name for r in rules):
            raise ConfigError(f"{where}: name: another rule already has this name")
        if (
            isinstance(rule, SloBurnRateRule)
            and known_slos is not None
            and rule.slo not in known_slos
        ):
            choices = ", ".join(sorted(known_slos)) or "none are configured"
            raise ConfigError(f"{where}: slo: no SLO {rule.slo!r} in monitoring.slos ({choices})")
        rules.append(rule)
    return rules


def _read_items(path: Path) -> list[Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: alert rules file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read alert rules ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if isinstance(data, dict) and set(data) <= {"rules"}:
        data = data.get("rules")
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected `rules:` with a list of rules (or a list)")
    return data


def _validate(path: Path, index: int, item: Any) -> AlertRule:
    name = item.get("name") if isinstance(item, dict) else None
    where = f"{path}: rules[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping with name, expr, threshold, ...")
    if item.get("expr") not in EXPRS:
        got = f"{item['expr']!r}" if "expr" in item else "missing"
        raise ConfigError(f"{where}: expr: {got}; choose one of {', '.join(EXPRS)}")
    try:
        rule: AlertRule = _ADAPTER.validate_python(item)
    except ValidationError as exc:
        error = exc.errors()[0]
        # The first element of the location is the union's tag (the expr): not a field.
        loc = ".".join(str(part) for part in error["loc"][1:]) or "rule"
        message = str(error["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {loc}: {message}{more}") from None
    return rule
