"""Run an ASGI app under uvicorn on a socket we bind ourselves (so bind errors are ours)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from http import HTTPStatus
from types import FrameType

from .asgi import ASGIApp

_log = logging.getLogger("aws_iam_backend.server")
MALFORMED_MESSAGE = "malformed HTTP request"


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


@functools.cache
def json_h11_protocol() -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, answering what h11 cannot parse with Vault's JSON error.

    h11 refuses malformed HTTP (a bad request line, header syntax or ``Content-Length``,
    a bad chunk, headers over the size limit) before there is a request for the ASGI app,
    and uvicorn then answers plain text ``Invalid HTTP request received.``. This subclass
    answers ``{"errors": ["malformed HTTP request"]}`` (400, or 431 for headers too large)
    as ``application/json`` and closes the connection. Such requests never reach
    :class:`~aws_iam_backend.server.api.VaultAPI`, so they cannot be audited: h11's reason
    is logged at debug level instead (uvicorn itself also logs a one-line warning).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JsonH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            error = sys.exception()
            status = getattr(error, "error_status_hint", 400)
            status = 431 if status == 431 else 400
            reason = HTTPStatus(status).phrase.encode()
            _log.debug("refused malformed HTTP from %s (not audited): %s", self.client, error)
            body = json.dumps({"errors": [MALFORMED_MESSAGE]}, separators=(",", ":")).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            try:
                for event in (
                    h11.Response(status_code=status, headers=headers, reason=reason),
                    h11.Data(data=body),
                    h11.EndOfMessage(),
                ):
                    self.transport.write(self.conn.send(event) or b"")
            except h11.LocalProtocolError:  # a response had begun already: only close
                pass
            self.transport.close()

    return JsonH11Protocol


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
        http=json_h11_protocol(),  # h11: httptools (llhttp) rejects Vault's LIST method
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


def serve_workers(
    make_app: Callable[[], ASGIApp],
    sock: socket.socket,
    workers: int,
    *,
    log_level: str = "info",
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
) -> int:
    """Pre-fork ``workers`` processes that all serve ``make_app()`` on the shared ``sock``.

    Each child builds its own app after the fork, so no storage connection crosses a
    fork. SIGINT/SIGTERM to the parent are passed on to every child; when one child exits,
    the others are stopped too. Returns 0 when every child ended cleanly, else 1.
    """
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the child never returns into the parent's code
            code = 0
            try:
                serve(
                    make_app(),
                    sock,
                    log_level=log_level,
                    tls_cert_file=tls_cert_file,
                    tls_key_file=tls_key_file,
                )
            except BaseException as exc:
                print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        children.append(pid)
    sock.close()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    remaining = set(children)
    while remaining:
        pid, code = os.wait()
        if pid not in remaining:
            continue
        remaining.discard(pid)
        # uvicorn re-raises the signal it stopped on, so death by SIGTERM/SIGINT is clean
        if os.waitstatus_to_exitcode(code) not in (0, -signal.SIGTERM, -signal.SIGINT):
            status = 1
        forward(signal.SIGTERM, None)  # one worker gone: stop the others
    return status
