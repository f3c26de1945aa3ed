"""The ``monitoring:`` section of ``llmline.yaml``: tracing, logs, SLOs, alerts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MonitoringSettings", "SloSpec"]


class SloSpec(BaseModel):
    """One service-level objective over the request log.

    ``latency``: a request is good when it answered within ``threshold_ms``
    (so ``objective: 0.95, threshold_ms: 800`` reads "p95 under 800 ms");
    ``error_rate``: good when it did not fail with a server-side error;
    ``availability``: good when a backend answered at all (not 502/503/504).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["latency", "error_rate", "availability"]
    objective: float = Field(gt=0, lt=1, description="Share of good requests, e.g. 0.99")
    threshold_ms: float | None = Field(default=None, gt=0, description="latency SLOs only")
    deployment: str | None = Field(default=None, description="Default: every deployment")
    window: str = Field(default="30d", description="Compliance window, e.g. 30d, 7d, 24h")


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
