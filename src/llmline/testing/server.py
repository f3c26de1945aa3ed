"""Run an ASGI app on a real loopback port in a background thread.

Integration tests talk to the gateway (and to stub upstreams) over real
HTTP with real clients, the way httpx tests its transports.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from llmline.testing._running import StartStop

__all__ = ["ServerThread", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerThread(StartStop):
    """``with ServerThread(app) as server: httpx.get(server.url + "/healthz")``."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int | None = None, **config: Any
    ) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        options = {"log_level": "warning", "lifespan": "on", **config}
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, **options))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="uvicorn")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server on {self.url} did not start in {timeout_s:.0f} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
