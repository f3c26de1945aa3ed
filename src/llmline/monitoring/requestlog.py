"""The gateway's request log: one row per request, written off the request
path, with a local journal so that a killed process loses nothing.

Each record is first appended to a journal segment on local disk (one
JSON line, one ``write`` call: microseconds, and it survives the process
being killed because the kernel already holds it) and then queued for the
metadata store, where a background task inserts it in batches.  A segment
is deleted once every record in it is in the store.  At start,
:meth:`RequestLog.recover` inserts what dead processes' segments still hold
(inserts are idempotent by request id) and returns those records so that
budget charges they carry can be replayed.

The journal holds no prompt or answer text: texts go to the store only,
PII-redacted, so no raw personal data is left on disk by a crash.  A
segment being written is locked (``flock``), so recovery never touches the
journal of a live process, even one on another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from llmline.storage.request_tables import RequestRow

if TYPE_CHECKING:
    from llmline.storage.db import MetadataStore

__all__ = ["RequestLog", "RequestRecord", "spending_since"]

log = logging.getLogger("llmline.requestlog")

_TEXT_FIELDS = ("input_text", "output_text")


@dataclass
class RequestRecord:
    request_id: str
    endpoint: str
    status: int
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    key_id: str | None = None
    user: str | None = None
    deployment: str | None = None
    model_version: str | None = None
    route_reason: str | None = None
    prompt_version: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    stream: bool = False
    cache: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    input_text: str | None = None
    output_text: str | None = None
    safety: dict[str, Any] | None = None
    trace_id: str | None = None
    # Budget ledger scopes this request was charged to (replayed after a crash).
    charges: list[str] = field(default_factory=list)

    def journal_line(self) -> bytes:
        data = dict(self.__dict__)  # shallow: asdict's deep copy costs more than the write
        for name in _TEXT_FIELDS:
            data[name] = None
        data["created_at"] = self.created_at.isoformat()
        return (json.dumps(data, separators=(",", ":"), default=str) + "\n").encode()

    @classmethod
    def from_journal(cls, line: str) -> RequestRecord:
        data = json.loads(line)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def row(self, redact: Callable[[str], str] | None) -> dict[str, Any]:
        data = asdict(self)
        data.pop("charges")
        for name in _TEXT_FIELDS:
            text = data[name]
            if text is not None and redact is not None:
                data[name] = redact(text)
        return data


class _Segment:
    """One journal file, locked while this process appends to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.written = 0
        self.stored = 0
        self.sealed = False

    def append(self, line: bytes) -> None:
        os.write(self.fd, line)
        self.written += 1

    @property
    def done(self) -> bool:
        return self.sealed and self.stored >= self.written

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Detached(_Segment):
    """No file: records the journal could not take (counted, never removed)."""

    def __init__(self) -> None:
        self.path = Path()
        self.fd = -1
        self.written = 1
        self.stored = 0
        self.sealed = True

    def remove(self) -> None:
        pass


class RequestLog:
    """Journal + batched writer.  ``record`` is synchronous and cheap; call
    :meth:`start` on the event loop, and :meth:`close` to flush at shutdown.

    ``max_pending`` bounds the records waiting for the store (when the store
    is down): beyond it the oldest wait only in the journal, which the next
    start recovers, and ``dropped`` counts them.
    """

    def __init__(
        self,
        store: MetadataStore,
        journal_dir: Path,
        *,
        redact: Callable[[str], str] | None = None,
        batch_size: int = 500,
        flush_interval_s: float = 0.25,
        segment_records: int = 10_000,
        max_pending: int = 50_000,
    ) -> None:
        self.store = store
        self.journal_dir = journal_dir
        self.redact = redact
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.segment_records = segment_records
        self.max_pending = max_pending
        self.dropped = 0
        self.write_errors = 0
        self.stored = 0
        self.journal_errors = 0
        self.degraded = False  # the last store write failed
        self._pending: list[tuple[_Segment, RequestRecord]] = []
        self._segment: _Segment | None = None
        self._segments: list[_Segment] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- writing ---------------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        try:
            segment = self._current_segment()
            segment.append(record.journal_line())
        except OSError as exc:  # a full or read-only disk: serve on, the store still gets it
            segment = self._unjournaled(exc)
        self._pending.append((segment, record))
        if len(self._pending) > self.max_pending:
            self._pending.pop(0)
            self.dropped += 1
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Records waiting for the store."""
        return len(self._pending)

    def _unjournaled(self, exc: OSError) -> _Segment:
        """A stand-in segment for records the journal could not take."""
        self.journal_errors += 1
        if self.journal_errors == 1 or self.journal_errors % 1000 == 0:
            log.warning("request log: journal write failed (%s); a crash may lose records", exc)
        if self._segment is not None:  # try a fresh segment next time (space may come back)
            self._segment.sealed = True
            self._segment = None
        return _Detached()

    def _current_segment(self) -> _Segment:
        segment = self._segment
        if segment is None or segment.written >= self.segment_records:
            if segment is not None:
                segment.sealed = True
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
            segment = self._segment = _Segment(self.journal_dir / name)
            self._segments.append(segment)
        return segment

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            await self.flush()
            if self._closing and not self._pending:
                return

    async def flush(self) -> None:
        """Write every pending record to the store (in batches)."""
        while self._pending:
            batch = self._pending[: self.batch_size]
            try:
                await asyncio.to_thread(self._insert, [r for _, r in batch])
            except Exception as exc:  # store down: keep them, retry at the next tick
                self.write_errors += 1
                if not self.degraded:  # once per outage, not at every retry
                    log.warning("request log: store write failed (%s); will retry", exc)
                self.degraded = True
                return
            if self.degraded:
                log.warning("request log: store writes work again (%d pending)", self.pending)
                self.degraded = False
            del self._pending[: len(batch)]
            self.stored += len(batch)
            for segment, _ in batch:
                segment.stored += 1
            self._remove_done()

    def _remove_done(self) -> None:
        for segment in [s for s in self._segments if s.done]:
            segment.remove()
            self._segments.remove(segment)

    def _insert(self, records: Iterable[RequestRecord]) -> None:
        rows = [r.row(self.redact) for r in records]
        if rows:
            insert_ignoring_duplicates(self.store, rows)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            # A store that stays down must not hang shutdown: the journal keeps the rest.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 10.0)
        else:
            await self.flush()
        if self._segment is not None:
            self._segment.sealed = True
        self._remove_done()

    # -- recovery ----------------------------------------------------------------

    def recover(self) -> list[RequestRecord]:
        """Store what dead processes' journals hold; those records."""
        recovered: list[RequestRecord] = []
        if not self.journal_dir.is_dir():
            return recovered
        for path in sorted(self.journal_dir.glob("*.jsonl")):
            records = _read_unlocked(path)
            if records is None:
                continue  # a live process's journal
            if records:
                self._insert(records)
            path.unlink(missing_ok=True)
            recovered += records
        if recovered:
            log.warning("request log: recovered %d records from the journal", len(recovered))
        return recovered


def _read_unlocked(path: Path) -> list[RequestRecord] | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        with os.fdopen(os.dup(fd), encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    finally:
        os.close(fd)
    records = []
    for line in lines:
        # The last line of a killed process may be cut short: skip what does not parse.
        with contextlib.suppress(ValueError, TypeError, KeyError):
            records.append(RequestRecord.from_journal(line))
    return records


def insert_ignoring_duplicates(store: MetadataStore, rows: list[dict[str, Any]]) -> None:
    table: Any = RequestRow.__table__
    dialect = store.engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).on_conflict_do_nothing(index_elements=["request_id"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing(index_elements=["request_id"])
    with store.session() as session:
        session.execute(statement, rows)


def spending_since(store: MetadataStore, since: datetime, *, by: str) -> dict[str, float]:
    """USD spent since ``since`` per key id (``by="key_id"``) or deployment."""
    column = getattr(RequestRow, by)
    with store.read_session() as session:
        rows = session.execute(
            select(column, func.sum(RequestRow.cost_usd))
            .where(RequestRow.created_at >= since, column.is_not(None))
            .group_by(column)
        ).all()
    return {str(name): float(total or 0.0) for name, total in rows}
