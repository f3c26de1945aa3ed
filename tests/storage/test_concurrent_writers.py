"""Several OS processes writing to one metadata store at the same moment.

Each worker is a fresh ``python`` process (no shared connection pool, no
shared GIL) that waits behind a file barrier, then commits many small
transactions.  SQLite must neither lose a row nor fail with "database is
locked"; PostgreSQL must do the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import llmline
from llmline.storage.db import MetadataStore
from llmline.storage.models import Dataset, LineageEdge

WORKERS = 3
ROWS_PER_WORKER = 200
DATASET_EVERY = 10  # one Dataset row per this many edges
MIGRATE_ROWS = 20  # the migration race tests need only a few rows after it
SHARED_ROWS = 100  # edges every worker adds in "shared" mode
BARRIER_TIMEOUT_S = 60

# The worker: report ready, wait for the go file, open the store, then write
# one LineageEdge per transaction (plus a Dataset now and then) or, in
# "shared" mode, add the same edges as every other worker.
WORKER = """
import sys, time
from pathlib import Path
from llmline.storage.db import MetadataStore
from llmline.storage.lineage import ArtifactRef, add_edge
from llmline.storage.models import Dataset, LineageEdge

url, worker, mode, barrier = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
rows, every = int(sys.argv[5]), int(sys.argv[6])
(barrier / f"ready-{worker}").touch()
deadline = time.monotonic() + 60
while not (barrier / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("barrier timeout")
    time.sleep(0.005)
store = MetadataStore(url)  # after the barrier: on a fresh database, all migrate at once
for i in range(rows):
    with store.session() as session:
        if mode == "shared":
            src, dst = ArtifactRef("table", "shared"), ArtifactRef("dataset", f"d{i}")
            add_edge(session, src, dst, "read_by")
            continue
        session.add(LineageEdge(src_kind="worker", src_ref=worker, dst_kind="item",
                                dst_ref=f"{worker}-{i}", relation="wrote", attributes={"i": i}))
        if i % every == 0:
            session.add(Dataset(name=f"{worker}-{i}"))
store.dispose()
"""


def _run_workers(
    url: str,
    barrier: Path,
    *,
    mode: str = "rows",
    rows: int = ROWS_PER_WORKER,
    migrate_first: bool = True,
) -> None:
    if migrate_first:
        MetadataStore(url).dispose()
    src = str(Path(llmline.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                url,
                f"w{n}",
                mode,
                str(barrier),
                str(rows),
                str(DATASET_EVERY),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        # Release everyone at once, unless a worker already died starting up.
        while len(list(barrier.glob("ready-*"))) < WORKERS and time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.01)
        else:
            (barrier / "go").touch()
        if not (barrier / "go").exists():
            for p in procs:
                p.kill()
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * WORKERS, errors


def _check_rows(store: MetadataStore, rows: int = ROWS_PER_WORKER) -> None:
    with store.session() as session:
        refs = session.scalars(select(LineageEdge.dst_ref).where(LineageEdge.src_kind == "worker"))
        assert sorted(refs) == sorted(f"w{n}-{i}" for n in range(WORKERS) for i in range(rows))
        datasets = session.scalar(select(func.count()).select_from(Dataset))
        assert datasets == WORKERS * rows // DATASET_EVERY


def test_processes_write_to_one_sqlite_store(tmp_path: Path) -> None:
    # Nobody migrates first: the workers also race to create the schema.
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    _run_workers(url, tmp_path, migrate_first=False)
    store = MetadataStore(url, migrate=False)
    try:
        assert store.current_revision() == MetadataStore.head_revision()
        _check_rows(store)
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        store.dispose()


@pytest.mark.postgres
def test_processes_write_to_one_postgres_store(postgres_url: str, tmp_path: Path) -> None:
    _run_workers(postgres_url, tmp_path)
    store = MetadataStore(postgres_url)
    try:
        _check_rows(store)
    finally:
        store.dispose()


@pytest.mark.postgres
def test_processes_migrate_a_fresh_postgres_store_together(
    postgres_url: str, tmp_path: Path
) -> None:
    _run_workers(postgres_url, tmp_path, rows=MIGRATE_ROWS, migrate_first=False)
    store = MetadataStore(postgres_url, migrate=False)
    try:
        assert store.current_revision() == MetadataStore.head_revision()
        _check_rows(store, MIGRATE_ROWS)
    finally:
        store.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
            ],
        ),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_processes_add_the_same_edges(store_url: str, tmp_path: Path) -> None:
    _run_workers(store_url, tmp_path, mode="shared", rows=SHARED_ROWS)
    store = MetadataStore(store_url)
    try:
        with store.session() as session:
            edges = session.scalars(select(LineageEdge.dst_ref)).all()
        assert sorted(edges) == sorted(f"d{i}" for i in range(SHARED_ROWS))
    finally:
        store.dispose()
