"""A throwaway ``redis-server`` on a free loopback port, for tests.

Started from the Debian package's binary (``make test`` installs it), with
persistence off; stopped (and its folder removed) on exit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from llmline.testing._running import StartStop
from llmline.testing.server import free_port

__all__ = ["RedisNotFoundError", "RedisServer"]


class RedisNotFoundError(RuntimeError):
    """``redis-server`` is not installed (``apt-get install redis-server``)."""


class RedisServer(StartStop):
    def __init__(self, *, host: str = "127.0.0.1") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFoundError("redis-server not found; install the redis-server package")
        self.binary = binary
        self.host = host
        self.port = free_port(host)
        self._dir = Path(tempfile.mkdtemp(prefix="llmline-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
        ]  # fmt: skip
        log = (self._dir / "redis.log").open("wb")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self._dir, ignore_errors=True)
