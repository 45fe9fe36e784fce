"""The server's uvicorn configuration (``serve.uvicorn_config``) in a thread on a loopback
port, for tests that talk raw HTTP to it."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from aws_iam_backend.server.asgi import ASGIApp
from aws_iam_backend.server.serve import uvicorn_config


class ThreadServer:
    """``app`` served as :func:`~aws_iam_backend.server.serve.serve` would, with
    ``limits`` (``header_read_timeout``, ``idle_timeout``, ``max_connections``)."""

    def __init__(self, app: ASGIApp, **limits: Any) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        config = uvicorn_config(app, log_level="warning", log_config=None, **limits)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def connect(self, timeout: float) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
