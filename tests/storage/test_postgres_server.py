"""llmline.testing.PostgresServer: the throwaway server the PostgreSQL tests run on."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from llmline.testing import PostgresNotFoundError, PostgresServer, PostgresServerError
from llmline.testing.postgres import BINDIR_ENV, find_bindir


@pytest.mark.postgres
def test_start_serve_and_stop_leaves_nothing() -> None:
    with PostgresServer(database="app") as server:
        assert server.url.startswith("postgresql://postgres@127.0.0.1:")
        assert server.url.endswith("/app")
        root = server.root
        assert root is not None
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("app",)
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
        other = server.create_database("other")
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("other",)
        # Also reachable on the unix socket in the server's folder.
        with psycopg.connect(host=str(root), port=server.port, user="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        port = server.port
    assert not server.running
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/app", connect_timeout=2)
    server.stop()  # a second stop is harmless
    with pytest.raises(PostgresServerError, match="not running"):
        _ = server.url


@pytest.mark.postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_root_needs_a_folder_the_service_user_can_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(PostgresServerError, match="cannot enter"):
        PostgresServer(base_dir=private).start()
    assert list(private.iterdir()) == []  # the half-made folder is gone


def test_missing_binaries_are_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PostgresNotFoundError, match="apt-get install -y postgresql"):
        PostgresServer(bindir=tmp_path).start()
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path))
    with pytest.raises(PostgresNotFoundError, match=str(tmp_path)):
        find_bindir()
