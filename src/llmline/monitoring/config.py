"""The ``monitoring:`` section of ``llmline.yaml``: tracing, logs, SLOs, alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmline.errors import UserError

__all__ = ["MonitoringSettings", "SloSpec", "duration"]


def duration(text: str) -> timedelta:
    """``"30d"``, ``"6h"``, ``"5m"``, ``"90s"`` as a timedelta; ``ValueError``
    (what pydantic validators must raise) when it is not one."""
    from llmline.guard.keys import parse_duration

    try:
        return parse_duration(text)
    except UserError as exc:
        raise ValueError(str(exc)) from None


class SloSpec(BaseModel):
    """One service-level objective over the request log.

    ``latency``: a successful (2xx) request is good when it answered within
    ``threshold_ms`` (so ``objective: 0.95, threshold_ms: 800`` reads "p95
    under 800 ms"); ``error_rate``: any request is good when it did not fail
    with a server-side error (5xx); ``availability``: good when a backend
    answered at all (not 502/503/504).  ``llmline.monitoring.slo`` reports them.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["latency", "error_rate", "availability"]
    objective: float = Field(gt=0, lt=1, description="Share of good requests, e.g. 0.99")
    threshold_ms: float | None = Field(default=None, gt=0, description="latency SLOs only")
    deployment: str | None = Field(default=None, description="Default: every deployment")
    window: str = Field(default="30d", description="Compliance window, e.g. 30d, 7d, 24h")

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        duration(value)
        return value

    @model_validator(mode="after")
    def _check_threshold(self) -> SloSpec:
        # A latency SLO without a threshold has no meaning; elsewhere one is a typo.
        if self.kind == "latency" and self.threshold_ms is None:
            raise ValueError(f"SLO {self.name!r}: a latency SLO needs threshold_ms")
        if self.kind != "latency" and self.threshold_ms is not None:
            raise ValueError(f"SLO {self.name!r}: threshold_ms applies to latency SLOs only")
        return self

    @property
    def window_td(self) -> timedelta:
        return duration(self.window)


class MonitoringSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracing: bool = Field(default=True, description="Record a trace of every request")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP endpoint traces are also exported to "
        "(default: OTEL_EXPORTER_OTLP_ENDPOINT, else none)",
    )
    json_logs: bool = Field(default=True, description="One JSON log line per request")
    request_log: bool = Field(default=True, description="Store every request in the log")
    slos: list[SloSpec] = Field(default_factory=list)
    alert_rules: str | None = Field(
        default=None, description="YAML file of alert rules (relative to the workspace)"
    )
    alert_webhook: str | None = Field(default=None, description="URL alerts are POSTed to")
    alert_interval_s: float = Field(default=60, gt=0, description="How often rules are checked")

    @field_validator("slos")
    @classmethod
    def _unique_slo_names(cls, value: list[SloSpec]) -> list[SloSpec]:
        names = [slo.name for slo in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"SLO names must be unique: {', '.join(duplicates)} repeated")
        return value
