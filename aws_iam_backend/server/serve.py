"""Run an ASGI app under uvicorn on a socket we bind ourselves (so bind errors are ours)."""

from __future__ import annotations

import os
import socket
import ssl

from .asgi import ASGIApp


class ServeError(Exception):
    """The server cannot start; the message says why."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; :class:`ServeError` if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ServeError(f"cannot listen on {host}:{port}: {reason}") from None


def check_tls(cert_file: str, key_file: str) -> None:
    """Load the certificate and key once, to fail with a clear message before serving."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot load TLS certificate/key: {exc}") from None


def serve(
    app: ASGIApp,
    sock: socket.socket,
    *,
    log_level: str = "info",
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM (graceful shutdown)."""
    try:
        import uvicorn
    except ImportError:
        raise ServeError(
            "the server needs uvicorn: pip install 'aws_iam_backend[server]'"
        ) from None
    config = uvicorn.Config(
        app,
        log_level=log_level,
        http="h11",  # httptools (llhttp) rejects Vault's LIST method
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is ours to judge (trusted_proxies)
        server_header=False,
        lifespan="on",
        ssl_certfile=tls_cert_file,
        ssl_keyfile=tls_key_file,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])
