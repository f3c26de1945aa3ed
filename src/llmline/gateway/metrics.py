"""Prometheus metrics of one gateway app (its own registry: no globals, so
several apps in one process — tests — never mix their numbers).

Every name is listed in ``docs/observability.md``; the Grafana dashboard and
the alert rules in ``deploy/`` use them.  Counts owned by other parts (the
request log's queue, the span store's) are read at scrape time by a
collector, so they cost nothing on the request path.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "QueueCounts"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKENS_PER_S_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class QueueCounts(Protocol):
    """What the request log and the span store count about their writes."""

    @property
    def dropped(self) -> int: ...
    @property
    def write_errors(self) -> int: ...
    @property
    def stored(self) -> int: ...
    @property
    def pending(self) -> int: ...


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
        self.tokens_per_second = Histogram(
            "llmline_tokens_per_second",
            "Output tokens per second of a generated (not cached) answer",
            ("deployment", "model_version"),
            buckets=_TOKENS_PER_S_BUCKETS,
            registry=self.registry,
        )
        self.request_errors = Counter(
            "llmline_request_errors",
            "Requests answered with an HTTP error (refused at auth included)",
            ("endpoint", "status"),
            registry=self.registry,
        )
        self.queues = _QueueCollector(registry=self.registry)
        _GpuCollector(registry=self.registry)

    def watch_queue(self, prefix: str, counts: QueueCounts) -> None:
        """Export ``counts`` as ``llmline_<prefix>_{dropped,write_errors,stored}_total``
        and ``llmline_<prefix>_pending`` (read at each scrape)."""
        self.queues.watched[prefix] = counts

    def render(self) -> bytes:
        return generate_latest(self.registry)


_QUEUE_HELP = {
    "requestlog": "request-log records",
    "spans": "trace spans",
}


class _QueueCollector(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.watched: dict[str, QueueCounts] = {}
        registry.register(self)

    def describe(self) -> list[Metric]:
        return []  # names depend on what is watched: collected, not described

    def collect(self) -> Iterator[Metric]:
        for prefix, counts in self.watched.items():
            what = _QUEUE_HELP.get(prefix, prefix)
            name = f"llmline_{prefix}"
            yield _counter(f"{name}_dropped", f"{what} dropped (queue full)", counts.dropped)
            yield _counter(
                f"{name}_write_errors", f"failed writes of {what} (retried)", counts.write_errors
            )
            yield _counter(f"{name}_stored", f"{what} written to their store", counts.stored)
            yield GaugeMetricFamily(
                f"{name}_pending", f"{what} waiting to be written", value=counts.pending
            )
            yield GaugeMetricFamily(
                f"{name}_degraded",
                f"1 while writes of {what} fail",
                value=1 if getattr(counts, "degraded", False) else 0,
            )
            journal_errors = getattr(counts, "journal_errors", None)
            if journal_errors is not None:
                yield _counter(
                    f"{name}_journal_errors",
                    f"{what} the local journal could not take",
                    journal_errors,
                )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class _GpuCollector(Collector):
    """GPU memory of this process, per device, when it uses CUDA.

    torch is only looked at when something already imported it (a loaded
    model), and only devices of an initialised CUDA runtime are read: a
    scrape never imports torch nor initialises CUDA.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        cuda = _initialised_cuda()
        if cuda is None:
            return
        allocated = GaugeMetricFamily(
            "llmline_gpu_memory_allocated_bytes", "GPU memory held by tensors", labels=["device"]
        )
        reserved = GaugeMetricFamily(
            "llmline_gpu_memory_reserved_bytes",
            "GPU memory reserved by the caching allocator",
            labels=["device"],
        )
        for index in range(cuda.device_count()):
            allocated.add_metric([str(index)], float(cuda.memory_allocated(index)))
            reserved.add_metric([str(index)], float(cuda.memory_reserved(index)))
        yield allocated
        yield reserved


def _initialised_cuda() -> Any:
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return None
    except Exception:  # a broken driver must not break /metrics
        return None
    return cuda
