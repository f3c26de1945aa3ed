"""The metadata store: an SQLAlchemy engine migrated to the newest schema.

SQLite (the default) runs in WAL mode with ``BEGIN IMMEDIATE`` transactions
and a busy timeout, so several processes can write at once without
"database is locked" errors or lost rows; PostgreSQL needs nothing special.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from llmline.errors import ConfigError

__all__ = ["MetadataStore"]

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 60_000
_OPEN_ATTEMPTS = 5
_MIGRATION_LOCK = 7_236_021_897  # any constant key, shared by every llmline process
_READ_ONLY = "llmline_read_only"


class MetadataStore:
    """Owns the engine and hands out sessions; migrates on first use."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        if migrate:
            self.upgrade()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only unit of work: on SQLite it takes no write lock, so reads
        run beside a writer (WAL) instead of queueing behind it."""
        with self._read_sessions() as session, session.begin():
            yield session

    def current_revision(self) -> str | None:
        with self.engine.execution_options(**{_READ_ONLY: True}).connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    def upgrade(self) -> None:
        """Apply pending migrations (a no-op, and cheap, when already at head)."""
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                self._upgrade()
                return
            except ConfigError as exc:
                # Processes opening a fresh SQLite file at once can see
                # SQLITE_BUSY from the journal-mode switch itself (no busy
                # handler there); another try after a pause succeeds.
                locked = "database is locked" in str(exc) and self.engine.dialect.name == "sqlite"
                if not locked or attempt == _OPEN_ATTEMPTS - 1:
                    raise
                self.engine.dispose()
                time.sleep(0.1 * 2**attempt)

    def _upgrade(self) -> None:
        try:
            if self.current_revision() == self.head_revision():
                return
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Two processes opening an empty database at once must not
                    # both run the first migration: serialise on a lock.
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                    if (
                        MigrationContext.configure(conn).get_current_revision()
                        == self.head_revision()
                    ):
                        return
                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise ConfigError(f"cannot open metadata store {self.safe_url}: {exc.orig}") from None

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _create_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url)
        if url.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(f"invalid metadata store URL {url!r}: {exc}") from None


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own
        # transaction handling would defer the write lock and deadlock writers).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: two deferred transactions that
        # both try to upgrade to writers would otherwise fail with SQLITE_BUSY.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
