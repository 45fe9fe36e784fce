"""Run an ASGI app under uvicorn on a socket we bind ourselves (so bind errors are ours)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from http import HTTPStatus
from types import FrameType
from typing import TYPE_CHECKING, Any

from aws_iam_backend.server.asgi import ASGIApp

if TYPE_CHECKING:
    import uvicorn

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


DEFAULT_HEADER_READ_TIMEOUT = 10  # seconds, Vault's http_read_header_timeout
DEFAULT_IDLE_TIMEOUT = 300  # seconds, Vault's http_idle_timeout
DEFAULT_MAX_CONNECTIONS = 4096
HEADER_TIMEOUT_MESSAGE = "request header read timed out"
TOO_MANY_CONNECTIONS_MESSAGE = "too many open connections"
REFUSAL_LOG_INTERVAL = 10.0  # seconds between warnings about refused connections


@functools.cache
def json_h11_protocol(
    header_read_timeout: float | None = DEFAULT_HEADER_READ_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, answering in Vault's JSON and bounding slow or idle clients.

    h11 refuses malformed HTTP (a bad request line, header syntax or ``Content-Length``,
    a bad chunk, headers over the size limit) before there is a request for the ASGI app,
    and uvicorn then answers plain text ``Invalid HTTP request received.``. This subclass
    answers ``{"errors": ["malformed HTTP request"]}`` (400, or 431 for headers too large)
    as ``application/json`` and closes the connection. Such requests never reach
    :class:`~aws_iam_backend.server.api.VaultAPI`, so they cannot be audited: h11's reason
    is logged at debug level instead (uvicorn itself also logs a one-line warning).

    Header-read deadline (``header_read_timeout`` seconds, None for none): a new
    connection must deliver a complete request head that long after it is accepted; on a
    kept-alive connection the clock starts at the first byte of the next request, the wait
    for that byte being uvicorn's ``timeout_keep_alive`` (the idle timeout), as in Go's
    ``net/http``. Past the deadline a connection that sent nothing is closed silently, and
    one holding a partial head is answered ``408 {"errors": ["request header read timed
    out"]}`` with ``Connection: close`` and closed (logged at debug level, not audited).

    Connection cap (``max_connections``, 0 for none): a connection accepted while that many
    are open in this process is answered ``503 {"errors": ["too many open connections"]}``
    with ``Connection: close`` and closed at once; it is never counted, so the open ones are
    not starved. Refusals are logged as one warning every 10 s at most, with their count.
    uvicorn's own ``limit_concurrency`` (plain text, counting the new one) is
    not used.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    refusals = [0.0, -math.inf]  # refused since the last warning, when it was logged

    class JsonH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            over_cap = 0 < max_connections <= len(self.connections)
            super().connection_made(transport)
            if over_cap:
                self.connections.discard(self)  # never counted, never starves the others
                self._log_refusal()
                self._send_json_and_close(503, TOO_MANY_CONNECTIONS_MESSAGE)
                return
            self._arm_head_timer()  # a new connection: the clock starts at accept

        def _log_refusal(self) -> None:
            """A warning at most every ``REFUSAL_LOG_INTERVAL`` s, with the count since."""
            refusals[0] += 1
            now = self.loop.time()
            if now - refusals[1] >= REFUSAL_LOG_INTERVAL:
                _log.warning(
                    "refused %d connection(s) over max_connections=%d (latest from %s)",
                    int(refusals[0]),
                    max_connections,
                    self.client,
                )
                refusals[0], refusals[1] = 0.0, now

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._track_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # arms uvicorn's idle (keep-alive) timer
            self._track_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _track_head(self) -> None:
            """Run the header clock only while a request head is awaited and begun."""
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                self._cancel_head_timer()  # closing, or the head is in (or a body, or done)
            elif self.conn.trailing_data[0]:  # part of a head: the idle wait is over
                self._unset_keepalive_if_required()
                self._arm_head_timer()
            elif self._head_timer is None and self.timeout_keep_alive_task is None:
                # between requests with no clock running (a body read after an early
                # response): wait for the next request as an idle connection does
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

        def _arm_head_timer(self) -> None:
            if header_read_timeout is not None and self._head_timer is None:
                self._head_timer = self.loop.call_later(header_read_timeout, self._head_timeout)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0]:
                _log.debug("closed %s: %s (not audited)", self.client, HEADER_TIMEOUT_MESSAGE)
                self._send_json_and_close(408, HEADER_TIMEOUT_MESSAGE)
                return
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            error = sys.exception()
            status = getattr(error, "error_status_hint", 400)
            status = 431 if status == 431 else 400
            _log.debug("refused malformed HTTP from %s (not audited): %s", self.client, error)
            self._send_json_and_close(status, MALFORMED_MESSAGE)

        def _send_json_and_close(self, status: int, message: str) -> None:
            reason = HTTPStatus(status).phrase.encode()
            body = json.dumps({"errors": [message]}, separators=(",", ":")).encode()
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


def uvicorn_config(
    app: ASGIApp,
    *,
    log_level: str = "info",
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    header_read_timeout: float | None = DEFAULT_HEADER_READ_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` as :func:`serve` runs it; ``options`` are
    further ``uvicorn.Config`` keywords (a host's ``log_config``, say).

    ``idle_timeout`` is how long a kept-alive connection may wait for the first byte of
    its next request (uvicorn's ``timeout_keep_alive``); ``header_read_timeout`` and
    ``max_connections`` are enforced by :func:`json_h11_protocol`. The whole-request
    (body read) deadline belongs to the app: ``make_asgi_app(..., request_timeout=...)``.
    """
    try:
        import uvicorn
    except ImportError:
        raise ServeError(
            "the server needs uvicorn: pip install 'aws_iam_backend[server]'"
        ) from None
    return uvicorn.Config(
        app,
        log_level=log_level,
        # h11: httptools (llhttp) rejects Vault's LIST method
        http=json_h11_protocol(header_read_timeout, max_connections),
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is ours to judge (trusted_proxies)
        server_header=False,
        lifespan="on",
        ssl_certfile=tls_cert_file,
        ssl_keyfile=tls_key_file,
        timeout_keep_alive=idle_timeout,  # type: ignore[arg-type]  # call_later takes floats
        timeout_graceful_shutdown=10,
        **options,
    )


def serve(
    app: ASGIApp,
    sock: socket.socket,
    *,
    log_level: str = "info",
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    header_read_timeout: float | None = DEFAULT_HEADER_READ_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM (graceful shutdown).

    The listener settings are those of :func:`uvicorn_config`.
    """
    import uvicorn

    config = uvicorn_config(
        app,
        log_level=log_level,
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        header_read_timeout=header_read_timeout,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
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
    header_read_timeout: float | None = DEFAULT_HEADER_READ_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> int:
    """Pre-fork ``workers`` processes that all serve ``make_app()`` on the shared ``sock``.

    Each child builds its own app after the fork, so no storage connection crosses a
    fork. SIGINT/SIGTERM to the parent are passed on to every child; when one child exits,
    the others are stopped too. The listener limits apply per process (``max_connections``
    each). Returns 0 when every child ended cleanly, else 1.
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
                    header_read_timeout=header_read_timeout,
                    idle_timeout=idle_timeout,
                    max_connections=max_connections,
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
