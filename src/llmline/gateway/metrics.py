"""Prometheus metrics of one gateway app (its own registry: no globals, so
several apps in one process — tests — never mix their numbers)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU seconds, RSS, open fds
        labels = ("deployment", "model_version", "route", "status")
        self.requests = Counter(
            "llmline_requests", "Completed requests", labels, registry=self.registry
        )
        self.latency = Histogram(
            "llmline_request_latency_seconds",
            "Request latency",
            ("deployment", "model_version", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "llmline_time_to_first_token_seconds",
            "Time to first token",
            ("deployment", "model_version"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "llmline_tokens",
            "Tokens in and out",
            ("deployment", "model_version", "direction"),
            registry=self.registry,
        )
        self.cache = Counter(
            "llmline_cache_lookups",
            "Cache lookups",
            ("deployment", "result"),
            registry=self.registry,
        )
        self.blocked = Counter(
            "llmline_blocked",
            "Blocked prompts and outputs",
            ("deployment", "stage", "category"),
            registry=self.registry,
        )
        self.cost = Counter(
            "llmline_cost_usd",
            "Cost in USD",
            ("deployment", "model_version"),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "llmline_in_flight_requests",
            "Requests in flight",
            ("deployment",),
            registry=self.registry,
        )
        self.backend_up = Gauge(
            "llmline_backend_up", "1 when a backend is ready", ("target",), registry=self.registry
        )
        self.shadow = Counter(
            "llmline_shadow_comparisons",
            "Shadow answers compared",
            ("deployment", "model_version"),
            registry=self.registry,
        )
        self.shadow_similarity = Histogram(
            "llmline_shadow_similarity",
            "Similarity of shadow to served answers",
            ("deployment", "model_version"),
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0),
            registry=self.registry,
        )
        self.errors = Counter("llmline_errors", "Errors by type", ("type",), registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
