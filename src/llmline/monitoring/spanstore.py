"""The local trace store: every finished span in one SQLite file.

Spans are handed over by :class:`LocalSpanProcessor` (the OpenTelemetry
SDK calls ``on_end`` on the thread that ended the span) and queued in
memory: appending costs a lock and a list append, nothing else, so the
request path never waits for the disk.  A background thread converts them
to rows and inserts them in batches, one transaction each, into a WAL-mode
database (several gateway worker processes may share the file: SQLite
serialises their writers with a busy timeout).

The queue is bounded: when the disk cannot keep up, or the file cannot be
written at all (a read-only folder, a full disk), new spans are dropped
and counted (``dropped``); failed writes are counted (``write_errors``),
logged once per outage and retried, and writing resumes by itself.  A
crash loses what was queued (at most ``max_pending`` spans, normally the
last ``flush_interval_s`` of traffic).

Reading (:func:`list_traces`, :func:`get_trace`) uses its own connection
and never blocks the writer (WAL readers see the last committed batch).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from llmline.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span

__all__ = [
    "LocalSpanProcessor",
    "SpanStore",
    "Trace",
    "TraceSpan",
    "TraceSummary",
    "get_trace",
    "list_traces",
]

log = logging.getLogger("llmline.tracing")

_SCHEMA_VERSION = 1
# Spans of one trace sit together (the primary key), so a trace reads in one
# range scan; local roots (is_root) are indexed by time and by deployment.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    is_root INTEGER NOT NULL,
    deployment TEXT,
    attributes TEXT NOT NULL,
    events TEXT,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_roots ON spans (start_ns) WHERE is_root = 1;
CREATE INDEX IF NOT EXISTS spans_roots_deployment
    ON spans (deployment, start_ns) WHERE is_root = 1;
"""
_INSERT = "INSERT OR IGNORE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, start_ns, end_ns, status, status_message, "
    "attributes, events"
)
_PRUNE_EVERY_S = 600.0

Row = tuple[Any, ...]


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    if connection.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    return connection


_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_STATUSES = {code: code.name.lower() for code in StatusCode}
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def span_row(span: ReadableSpan) -> Row:
    """The ``spans`` row of a finished span."""
    context, parent = span.context, span.parent
    assert context is not None
    attributes = span.attributes or {}
    deployment = attributes.get("llmline.deployment")
    events = span.events
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        None if parent is None else format(parent.span_id, "016x"),
        span.name,
        _KINDS[span.kind],
        span.start_time or 0,
        span.end_time or span.start_time or 0,
        _STATUSES[span.status.status_code],
        span.status.description,
        int(parent is None or parent.is_remote),  # the root of what this process did
        None if deployment is None else str(deployment),
        _encode(dict(attributes)),
        _encode([_event_json(e) for e in events]) if events else None,
    )


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "name": event.name,
        "time_ns": event.timestamp,
        "attributes": dict(event.attributes or {}),
    }


class SpanStore:
    """The writer side: a bounded queue drained by one background thread."""

    def __init__(
        self,
        path: Path,
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 0.5,
        max_pending: int = 100_000,
        retention_days: float | None = 7.0,
    ) -> None:
        self.path = path
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.retention_days = retention_days
        self.dropped = 0
        self.write_errors = 0
        self.stored = 0
        self.degraded = False
        self._queue: list[ReadableSpan] = []
        self._writing = 0  # spans taken from the queue, not yet committed
        self._attempts = 0  # batches the writer tried to write
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._pruned_at = 0.0

    @property
    def pending(self) -> int:
        return len(self._queue) + self._writing

    def add(self, span: ReadableSpan) -> None:
        """Queue a finished span (any thread; never blocks on the disk)."""
        with self._lock:
            if len(self._queue) >= self.max_pending or self._closing:
                self.dropped += 1
                return
            self._queue.append(span)
            full = len(self._queue) >= self.batch_size
        if full:
            self._wake.set()

    def start(self) -> SpanStore:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llmline-spans", daemon=True)
            self._thread.start()
        return self

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Write everything queued now; False when that did not succeed in time
        (or failed: a store that is down is not waited for)."""
        if self._thread is None:
            self._write_queued()
            return self.pending == 0
        deadline = time.monotonic() + timeout_s
        with self._lock:
            attempts = self._attempts
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0 or (self.degraded and self._attempts > attempts):
                    return False
                self._wake.set()
                self._idle.wait(min(left, 0.1))
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush (bounded wait: a dead disk must not hang shutdown), then stop."""
        self.flush(timeout_s)
        with self._lock:
            self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    # -- the writer thread ------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._write_queued()
            if self._closing:
                return

    def _write_queued(self) -> None:
        while True:
            with self._lock:
                batch = self._queue[: self.batch_size]
                del self._queue[: len(batch)]
                self._writing = len(batch)
            if not batch:
                return
            written = self._write(batch)
            with self._lock:
                self._writing = 0
                self._attempts += 1
                if not written:  # back to the front of the queue, within the bound
                    room = max(0, self.max_pending - len(self._queue))
                    self._queue[:0] = batch[:room]
                    self.dropped += len(batch) - min(room, len(batch))
                self._idle.notify_all()
            if not written:
                return  # retry at the next tick
            self._prune()

    def _write(self, batch: Sequence[ReadableSpan]) -> bool:
        try:
            rows = [span_row(span) for span in batch]
            connection = self._connection or self._open()
            with _transaction(connection):
                connection.executemany(_INSERT, rows)
        except (sqlite3.Error, OSError) as exc:
            self.write_errors += 1
            if not self.degraded:  # once per outage, not at every retry
                log.warning("traces: writing %s failed (%s); will retry", self.path, exc)
            self.degraded = True
            self._drop_connection()
            return False
        if self.degraded:
            log.warning("traces: writing %s works again", self.path)
            self.degraded = False
        self.stored += len(batch)
        return True

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = _connect(self.path)
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    def _prune(self) -> None:
        """Delete traces older than the retention (every few minutes)."""
        now = time.monotonic()
        if self.retention_days is None or now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        cutoff = time.time_ns() - int(self.retention_days * 86400 * 1e9)
        with contextlib.suppress(sqlite3.Error):
            assert self._connection is not None
            with _transaction(self._connection):
                self._connection.execute(
                    "DELETE FROM spans WHERE trace_id IN "
                    "(SELECT trace_id FROM spans WHERE is_root = 1 AND start_ns < ?)",
                    (cutoff,),
                )


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class LocalSpanProcessor(SpanProcessor):
    """Hands every finished span to a :class:`SpanStore`."""

    def __init__(self, store: SpanStore) -> None:
        self.store = store

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.store.add(span)

    def shutdown(self) -> None:
        self.store.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.store.flush(timeout_millis / 1000)


# -- reading ----------------------------------------------------------------------


def _when(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _ms(start_ns: int, end_ns: int) -> float:
    return round((end_ns - start_ns) / 1e6, 3)


@dataclass
class TraceSummary:
    """One request's trace, as listed: its root span and how many spans it has."""

    trace_id: str
    name: str
    started_at: datetime
    duration_ms: float
    status: str  # ok | error | unset
    deployment: str | None
    request_id: str | None
    http_status: int | None
    span_count: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "started_at": self.started_at.isoformat()}


@dataclass
class TraceSpan:
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    started_at: datetime
    duration_ms: float
    status: str
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]  # name, at_ms (since the span started), attributes
    children: list[TraceSpan] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if k != "children"},
            "started_at": self.started_at.isoformat(),
            "children": [c.to_dict() for c in self.children],
        }

    def walk(self, depth: int = 0) -> Iterator[tuple[int, TraceSpan]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class Trace:
    trace_id: str
    spans: list[TraceSpan]  # the roots; each span holds its children, by start time
    span_count: int

    @property
    def started_at(self) -> datetime:
        return min(s.started_at for s in self.spans)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_count": self.span_count,
            "started_at": self.started_at.isoformat(),
            "spans": [s.to_dict() for s in self.spans],
        }

    def find(self, name: str) -> list[TraceSpan]:
        """Every span called ``name`` (tests, tools)."""
        return [s for root in self.spans for _, s in root.walk() if s.name == name]


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection | None]:
    if not path.is_file():
        yield None
        return
    try:
        connection = sqlite3.connect(path, timeout=10.0)
    except sqlite3.Error as exc:
        raise UserError(f"cannot read the trace store {path}: {exc}") from None
    try:
        yield connection
    except sqlite3.OperationalError as exc:
        raise UserError(f"cannot read the trace store {path}: {exc}") from None
    finally:
        connection.close()


def list_traces(
    path: Path,
    *,
    limit: int = 20,
    deployment: str | None = None,
    since: datetime | None = None,
) -> list[TraceSummary]:
    """The newest traces first (at most ``limit``)."""
    where: list[str] = ["is_root = 1"]
    parameters: list[str | int] = []
    if deployment is not None:
        where.append("deployment = ?")
        parameters.append(deployment)
    if since is not None:
        since_utc = since if since.tzinfo else since.replace(tzinfo=UTC)
        where.append("start_ns >= ?")
        parameters.append(int(since_utc.timestamp() * 1e9))
    with _reader(path) as connection:
        if connection is None:
            return []
        roots = connection.execute(
            "SELECT trace_id, name, start_ns, end_ns, status, deployment, attributes "
            f"FROM spans WHERE {' AND '.join(where)} ORDER BY start_ns DESC LIMIT ?",
            (*parameters, max(0, limit)),
        ).fetchall()
        counts = _span_counts(connection, [r[0] for r in roots])
    return [_summary(row, counts.get(row[0], 0)) for row in roots]


def _span_counts(connection: sqlite3.Connection, trace_ids: list[str]) -> dict[str, int]:
    if not trace_ids:
        return {}
    marks = ",".join("?" * len(trace_ids))
    rows = connection.execute(
        f"SELECT trace_id, count(*) FROM spans WHERE trace_id IN ({marks}) GROUP BY trace_id",
        trace_ids,
    )
    return {trace_id: int(count) for trace_id, count in rows}


def _summary(row: Row, span_count: int) -> TraceSummary:
    trace_id, name, start_ns, end_ns, status, deployment, attributes = row
    attrs = json.loads(attributes)
    http_status = attrs.get("http.response.status_code")
    return TraceSummary(
        trace_id=trace_id,
        name=name,
        started_at=_when(start_ns),
        duration_ms=_ms(start_ns, end_ns),
        status=status,
        deployment=deployment,
        request_id=attrs.get("llmline.request_id"),
        http_status=int(http_status) if http_status is not None else None,
        span_count=span_count,
    )


def get_trace(path: Path, trace_id: str) -> Trace:
    """Every span of a trace (its id, or a unique prefix of 8+ hex digits) as a tree."""
    wanted = trace_id.strip().lower()
    if len(wanted) < 8 or len(wanted) > 32 or any(c not in "0123456789abcdef" for c in wanted):
        raise UserError(f"{trace_id!r} is not a trace id (32 hex digits, or a prefix of 8 or more)")
    with _reader(path) as connection:
        rows = [] if connection is None else _trace_rows(connection, wanted)
    if not rows:
        raise NotFoundError(f"no trace {wanted} in {path}")
    return _tree(rows[0][0], rows)


def _trace_rows(connection: sqlite3.Connection, prefix: str) -> list[Row]:
    # Hex digits sort before "g": [prefix, prefix + "g") is every id with that prefix.
    found = connection.execute(
        "SELECT DISTINCT trace_id FROM spans WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
        (prefix, prefix + "g"),
    ).fetchall()
    if len(found) > 1:
        raise UserError(f"trace id prefix {prefix} is ambiguous: give more digits")
    if not found:
        return []
    return connection.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns", (found[0][0],)
    ).fetchall()


def _event(event: dict[str, Any], span_start_ns: int) -> dict[str, Any]:
    at_ms = _ms(span_start_ns, event["time_ns"])
    return {"name": event["name"], "at_ms": at_ms, "attributes": event["attributes"]}


def _tree(trace_id: str, rows: list[Row]) -> Trace:
    spans: dict[str, TraceSpan] = {}
    for _, span_id, parent_id, name, kind, start, end, status, message, attrs, events in rows:
        spans[span_id] = TraceSpan(
            span_id=span_id,
            parent_id=parent_id,
            name=name,
            kind=kind,
            started_at=_when(start),
            duration_ms=_ms(start, end),
            status=status,
            status_message=message,
            attributes=json.loads(attrs),
            events=[
                {
                    "name": e["name"],
                    "at_ms": _ms(start, e["time_ns"]),
                    "attributes": e["attributes"],
                }
                for e in json.loads(events or "[]")
            ],
        )
    roots: list[TraceSpan] = []
    for span in spans.values():  # rows come by start time: children stay in that order
        parent = spans.get(span.parent_id or "")
        (parent.children if parent is not None else roots).append(span)
    return Trace(trace_id=trace_id, spans=roots, span_count=len(spans))
