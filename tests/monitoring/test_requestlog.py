"""The request log: batched writes, a journal that survives a killed
process, idempotent recovery, and spending sums for budgets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from llmline.monitoring.requestlog import RequestLog, RequestRecord, spending_since
from llmline.storage.db import MetadataStore
from llmline.storage.request_tables import RequestRow


def _store(tmp_path: Path) -> MetadataStore:
    return MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")


def _count(store: MetadataStore) -> int:
    with store.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(RequestRow)) or 0)


def _record(i: int, **fields: object) -> RequestRecord:
    values: dict[str, object] = {"cost_usd": 0.01, **fields}
    return RequestRecord(request_id=f"r{i}", endpoint="chat", status=200, **values)  # type: ignore[arg-type]


def test_batched_writes_then_segments_removed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    log = RequestLog(store, tmp_path / "journal", batch_size=7, segment_records=10)

    async def scenario() -> None:
        log.start()
        for i in range(25):
            log.record(_record(i, key_id="k1", input_text="mail me at a@b.example"))
        await log.close()

    asyncio.run(scenario())
    assert _count(store) == 25
    assert list((tmp_path / "journal").glob("*.jsonl")) == []  # all stored: journal gone


def test_texts_are_redacted_and_never_journaled(tmp_path: Path) -> None:
    store = _store(tmp_path)
    log = RequestLog(store, tmp_path / "journal", redact=lambda t: t.replace("secret", "[X]"))
    log.record(_record(1, input_text="my secret", output_text="the secret"))
    journal = next((tmp_path / "journal").glob("*.jsonl")).read_text()
    assert "secret" not in journal
    asyncio.run(log.flush())
    with store.read_session() as session:
        row = session.get(RequestRow, "r1")
        assert row is not None and (row.input_text, row.output_text) == ("my [X]", "the [X]")


def test_a_killed_process_loses_nothing(tmp_path: Path) -> None:
    """Records journaled by a process killed before its batch was written
    are recovered at the next start, once, and the journal is removed."""
    store = _store(tmp_path)
    store.engine.dispose()
    script = textwrap.dedent(
        f"""
        import os, signal
        from llmline.monitoring.requestlog import RequestLog, RequestRecord
        from llmline.storage.db import MetadataStore
        log = RequestLog(MetadataStore({f"sqlite:///{tmp_path / 'meta.db'}"!r}),
                         __import__("pathlib").Path({str(tmp_path / "journal")!r}))
        for i in range(40):
            log.record(RequestRecord(request_id=f"k{{i}}", endpoint="chat", status=200,
                                     key_id="k1", cost_usd=0.5, charges=["key:k1:m2026-12"]))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == -9
    assert _count(store) == 0
    log = RequestLog(store, tmp_path / "journal")
    recovered = log.recover()
    assert len(recovered) == 40 and recovered[0].charges == ["key:k1:m2026-12"]
    assert _count(store) == 40
    assert log.recover() == []  # nothing twice
    assert list((tmp_path / "journal").glob("*.jsonl")) == []


def test_recovery_skips_live_journals_and_torn_lines(tmp_path: Path) -> None:
    store = _store(tmp_path)
    live = RequestLog(store, tmp_path / "journal")
    live.record(_record(1))  # this process holds its segment's lock
    torn = tmp_path / "journal" / "dead.jsonl"
    torn.write_bytes(_record(2).journal_line() + b'{"request_id": "r3", "endp')
    recovered = RequestLog(store, tmp_path / "journal").recover()
    assert [r.request_id for r in recovered] == ["r2"]
    assert not torn.exists()
    assert len(list((tmp_path / "journal").glob("*.jsonl"))) == 1  # the live one stays
    asyncio.run(live.close())
    assert _count(store) == 2


def test_store_down_keeps_records_and_recovers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    log = RequestLog(store, tmp_path / "journal")
    log.record(_record(1))
    os.chmod(tmp_path, 0o500)  # the SQLite file's folder is read-only: writes fail
    try:
        asyncio.run(log.flush())
    finally:
        os.chmod(tmp_path, 0o700)
    if log.write_errors:  # (root ignores permissions; then the write simply succeeded)
        assert _count(store) == 0
        asyncio.run(log.flush())
    assert _count(store) == 1


def test_spending_since(tmp_path: Path) -> None:
    store = _store(tmp_path)
    log = RequestLog(store, tmp_path / "journal")
    now = datetime.now(UTC)
    log.record(_record(1, key_id="k1", deployment="chat", cost_usd=0.25))
    log.record(_record(2, key_id="k1", deployment="chat", cost_usd=0.5))
    old = _record(3, key_id="k1", deployment="chat", cost_usd=9.0)
    old.created_at = now - timedelta(days=40)
    log.record(old)
    log.record(_record(4, key_id="k2", deployment="other", cost_usd=1.0))
    asyncio.run(log.close())
    since = now - timedelta(days=1)
    assert spending_since(store, since, by="key_id") == {"k1": 0.75, "k2": 1.0}
    assert spending_since(store, since, by="deployment") == {"chat": 0.75, "other": 1.0}
