"""A throwaway PostgreSQL server for tests: ``initdb`` into a temp folder, then ``pg_ctl``.

    with PostgresServer() as pg:
        url = pg.create_database("case1")   # postgresql://postgres@127.0.0.1:PORT/case1

The cluster trades durability for speed (``fsync=off``) and trusts every
loopback connection, so it is only fit for tests.  PostgreSQL refuses to run
as root; under root the server runs as the unprivileged ``postgres`` user that
Debian's ``postgresql`` package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from llmline.testing._running import StartStop

__all__ = ["PostgresNotFoundError", "PostgresServer", "PostgresServerError", "find_bindir"]

INSTALL_HINT = "install it with `apt-get install -y postgresql` (Debian/Ubuntu)"
BINDIR_ENV = "LLMLINE_PG_BINDIR"
SERVICE_USER = "postgres"
START_ATTEMPTS = 3
START_TIMEOUT_S = 60
# Settings for a disposable cluster: nothing needs to survive a crash.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "'32MB'",
    "log_min_messages": "warning",
}


class PostgresServerError(RuntimeError):
    """The test server could not be set up, started or used."""


class PostgresNotFoundError(PostgresServerError):
    """The PostgreSQL server programs (``initdb``, ``pg_ctl``) are not installed."""


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``.

    Looks at ``$LLMLINE_PG_BINDIR``, ``pg_config --bindir``, the newest
    ``/usr/lib/postgresql/*/bin`` (Debian keeps the server programs off PATH),
    then PATH.
    """
    explicit = os.environ.get(BINDIR_ENV)
    if explicit:
        # A folder the user named must be right; falling back would hide the mistake.
        return _check_bindir(Path(explicit))
    for candidate in _bindir_candidates():
        if _has_server(candidate):
            return candidate
    raise PostgresNotFoundError(
        f"PostgreSQL server programs (initdb, pg_ctl) not found; {INSTALL_HINT} "
        f"or point ${BINDIR_ENV} at the folder that holds them"
    )


def _has_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()


def _check_bindir(bindir: Path) -> Path:
    if not _has_server(bindir):
        raise PostgresNotFoundError(f"no initdb and pg_ctl in {bindir}; {INSTALL_HINT}")
    return bindir


def _bindir_candidates() -> list[Path]:
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        # libpq-dev ships pg_config without the server, so the answer is only a hint.
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            found.append(Path(out.stdout.strip()))

    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)", path)
        return int(match.group(1)) if match else 0

    found += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version)[::-1]]
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(initdb).resolve().parent)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer(StartStop):
    """A private PostgreSQL cluster on 127.0.0.1 (and a unix socket in its folder).

    ``url`` points at ``database`` (created on start unless it is ``postgres``);
    :meth:`create_database` makes more.  The server is stopped by :meth:`stop`,
    on leaving the ``with`` block, or at interpreter exit at the latest.
    """

    def __init__(
        self,
        *,
        user: str = "postgres",
        database: str = "postgres",
        bindir: str | Path | None = None,
        base_dir: str | Path | None = None,
    ) -> None:
        self.user = user
        self.database = database
        self._bindir = Path(bindir) if bindir else None
        self._base_dir = base_dir
        self.port: int | None = None
        self.root: Path | None = None
        self._finalizer: weakref.finalize[[_Runner, Path], PostgresServer] | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> PostgresServer:
        if self.running:
            return self
        bindir = _check_bindir(self._bindir) if self._bindir else find_bindir()
        run_as = _service_user() if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="llmline-pg-", dir=self._base_dir))
        if run_as is not None:
            # The server's user must own its folder and be able to reach it.
            os.chown(self.root, run_as.pw_uid, run_as.pw_gid)
            _check_reachable(self.root, run_as)
        runner = _Runner(bindir, run_as, self.root)
        # Registered before anything can fail so a half-started cluster is still removed.
        self._finalizer = weakref.finalize(self, _shutdown, runner, self.root)
        try:
            # --no-sync: the cluster is thrown away, so skip flushing it to disk.
            options = ["-U", self.user, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
            runner.run("initdb", "-D", "data", *options)
            self._start_on_free_port(runner)
            if self.database != "postgres":
                self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on_free_port(self, runner: _Runner) -> None:
        assert self.root is not None
        # Another process may grab the port between probing and binding; retry.
        for attempt in range(1, START_ATTEMPTS + 1):
            port = _free_port()
            socket_dir = str(self.root).replace("'", "''")
            settings = {
                **_SETTINGS,
                "port": str(port),
                "unix_socket_directories": f"'{socket_dir}'",
            }
            conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
            runner.write(self.root / "data" / "postgresql.auto.conf", conf)
            try:
                wait = ["-w", "-t", str(START_TIMEOUT_S)]
                runner.run("pg_ctl", "start", *wait, "-D", "data", "-l", "server.log")
            except PostgresServerError:
                if attempt == START_ATTEMPTS:
                    raise
                continue
            self.port = port
            return

    def stop(self) -> None:
        """Stop the server and delete its files (safe to call twice)."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self.port = None

    @property
    def running(self) -> bool:
        return self.port is not None

    # -- databases ----------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        if self.port is None:
            raise PostgresServerError("PostgresServer is not running; call start() first")
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections tests left open to it."""
        with self._admin() as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
            if conn.info.server_version >= 130000:
                conn.execute(drop + sql.SQL(" WITH (FORCE)"))
                return
            # Before 13 there is no FORCE: end the sessions ourselves.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            conn.execute(drop)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        return psycopg.connect(self.url_for("postgres"), autocommit=True)


class _Runner:
    """Runs the server programs, as ``run_as`` when we are root."""

    def __init__(self, bindir: Path, run_as: pwd.struct_passwd | None, cwd: Path) -> None:
        self.bindir = bindir
        self.run_as = run_as
        self.cwd = cwd

    def command(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bindir / program), *args]
        if self.run_as is None:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", self.run_as.pw_name, "--", *argv]
        return ["su", "-s", "/bin/sh", self.run_as.pw_name, "-c", shlex.join(argv)]

    def run(self, program: str, *args: str, check: bool = True) -> None:
        argv = self.command(program, *args)
        # cwd matters: the service user may not be allowed into the caller's cwd.
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        done = subprocess.run(
            argv, cwd=self.cwd, env=env, capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise PostgresServerError(_failure(argv, done, self.cwd / "server.log"))

    def write(self, path: Path, text: str) -> None:
        path.write_text(text)
        if self.run_as is not None:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)


def _failure(argv: Sequence[str], done: subprocess.CompletedProcess[str], log: Path) -> str:
    output = (done.stdout + done.stderr).strip()
    log_tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
    return f"{shlex.join(argv)} failed ({done.returncode}): {output}\n{log_tail}".strip()


def _service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresNotFoundError(
            f"PostgreSQL will not run as root and there is no {SERVICE_USER!r} user; "
            f"{INSTALL_HINT} (it creates the user) or run the tests as another user"
        ) from None


def _check_reachable(folder: Path, user: pwd.struct_passwd) -> None:
    """Fail early, and clearly, if ``user`` cannot walk down to ``folder``."""
    for parent in folder.parents:
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            shutil.rmtree(folder, ignore_errors=True)
            raise PostgresServerError(
                f"PostgreSQL runs as {user.pw_name!r} (it refuses root), who cannot enter "
                f"{parent}; give PostgresServer a base_dir it can reach, such as /tmp"
            )


def _shutdown(runner: _Runner, root: Path) -> None:
    # "immediate" skips the shutdown checkpoint: the files are deleted next anyway.
    if (root / "data" / "postmaster.pid").exists():
        runner.run("pg_ctl", "stop", "-D", "data", "-m", "immediate", "-w", check=False)
    shutil.rmtree(root, ignore_errors=True)
