"""Structured logs: one JSON line per gateway request on ``llmline.requests``.

The line goes through the standard ``logging`` stack, so a user's own
configuration (``dictConfig``, a log shipper's handler) takes it as is;
:func:`configure_request_logs` only adds a stderr handler with
:class:`JsonFormatter` when the logger has none.  Its fields are those of
the request log's record, without the prompt and answer texts (those go
to the metadata store only, PII-redacted) and without budget internals.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmline.monitoring.requestlog import RequestRecord

__all__ = ["REQUEST_LOGGER", "JsonFormatter", "configure_request_logs", "log_request"]

REQUEST_LOGGER = "llmline.requests"
_request_log = logging.getLogger(REQUEST_LOGGER)
# RequestRecord's fields in the line; texts and budget scopes stay out.
_FIELDS = (
    "request_id",
    "trace_id",
    "endpoint",
    "status",
    "key_id",
    "user",
    "deployment",
    "model_version",
    "route_reason",
    "prompt_version",
    "finish_reason",
    "error",
    "stream",
    "cache",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "tokens_per_s",
    "safety",
)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the
    record's ``extra`` fields (a request's fields for ``llmline.requests``)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":"))


class _BatchedWriter(logging.Handler):
    """Collects records and writes them from a background thread every
    ``interval_s``: formatting and the write happen off the event loop, and
    a request costs a list append (no thread wake-up per line).  Bounded:
    what does not fit is counted (``dropped``) rather than waited for."""

    def __init__(self, stream: IO[str], *, interval_s: float, max_pending: int) -> None:
        super().__init__()
        self.stream = stream
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: list[logging.LogRecord] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmline-logs", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            if len(self._pending) < self.max_pending:
                self._pending.append(record)
                return
        self.dropped += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.write_pending()

    def write_pending(self) -> None:
        with self._guard:
            records, self._pending = self._pending, []
        if not records:
            return
        lines = []
        for record in records:
            try:
                lines.append(self.format(record) + "\n")
            except Exception:
                self.handleError(record)
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # a closed or full stream: serving goes on
            self.dropped += len(lines)

    def close(self) -> None:
        self._stop.set()
        self.write_pending()
        super().close()


def configure_request_logs(stream: IO[str] | None = None, *, interval_s: float = 0.1) -> None:
    """JSON lines on stderr (or ``stream``), written by a background thread,
    unless the logger is already configured; idempotent (every app of a
    process shares the logger).  Lines still pending are written at exit."""
    if _request_log.handlers:
        return
    writer = _BatchedWriter(stream or sys.stderr, interval_s=interval_s, max_pending=50_000)
    writer.setFormatter(JsonFormatter())
    atexit.register(writer.close)
    _request_log.addHandler(writer)
    if _request_log.level == logging.NOTSET:
        _request_log.setLevel(logging.INFO)
    _request_log.propagate = False  # not twice, through whatever the root logger prints


def log_request(record: RequestRecord) -> None:
    if not _request_log.isEnabledFor(logging.INFO):
        return
    fields = {name: getattr(record, name, None) for name in _FIELDS}
    fields["tokens_per_s"] = tokens_per_second(record)
    fields["created_at"] = record.created_at.isoformat()
    _request_log.info(
        "%s %s %s", record.endpoint, record.deployment or "-", record.status, extra=fields
    )


def tokens_per_second(record: RequestRecord) -> float | None:
    """Output tokens per second of a generated answer (None for cache hits,
    blocked prompts and errors without output)."""
    if record.completion_tokens <= 0 or record.latency_ms <= 0 or record.cache != "miss":
        return None
    return round(record.completion_tokens / (record.latency_ms / 1000), 3)
