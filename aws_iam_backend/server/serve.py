"""Run an ASGI app under uvicorn on a socket we bind ourselves (so bind errors are ours)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable
from http import HTTPStatus
from types import FrameType
from typing import TYPE_CHECKING, Any

from aws_iam_backend.server.asgi import ASGIApp
from aws_iam_backend.server.metrics import MULTIPROC_ENV

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
    """Load the certificate and key once, to fail before serving with a message that names
    the file at fault: ``cannot load TLS certificate/key: <file>: <reason>``."""
    prefix = "cannot load TLS certificate/key"
    for path in (cert_file, key_file):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ServeError(f"{prefix}: {path}: {reason}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ServeError(
                f"{prefix}: {key_file}: the key does not match the certificate in {cert_file}"
            ) from None
        try:  # the certificate alone: its file must hold a PEM certificate
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_verify_locations(cert_file)
        except ssl.SSLError:
            raise ServeError(f"{prefix}: {cert_file}: no PEM certificate in it") from None
        raise ServeError(f"{prefix}: {key_file}: not a usable PEM private key") from None
    except OSError as exc:
        raise ServeError(f"{prefix}: {cert_file}, {key_file}: {exc}") from None


DEFAULT_HEADER_READ_TIMEOUT = 10  # seconds, Vault's http_read_header_timeout
DEFAULT_IDLE_TIMEOUT = 300  # seconds, Vault's http_idle_timeout
DEFAULT_MAX_CONNECTIONS = 4096
HEADER_TIMEOUT_MESSAGE = "request header read timed out"
TOO_MANY_CONNECTIONS_MESSAGE = "too many open connections"
REFUSAL_LOG_INTERVAL = 10.0  # seconds between warnings about refused connections
MAX_INCOMPLETE_HEAD = 16 * 1024  # bytes of a request head still incomplete: past it, 431


def _json_refusal(status: int, message: str) -> bytes:
    """A whole ``Connection: close`` response carrying Vault's JSON error envelope."""
    body = json.dumps({"errors": [message]}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\ncache-control: no-store\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _MalformedHead(Exception):
    """A request head llhttp accepts but Go's ``net/http`` (Vault) refuses."""


@functools.cache
def json_httptools_protocol(
    header_read_timeout: float | None = DEFAULT_HEADER_READ_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> type[asyncio.Protocol]:
    """uvicorn's httptools (llhttp) protocol, answering in Vault's JSON, accepting Vault's
    ``LIST`` method, and bounding slow or idle clients.

    Malformed HTTP (a bad request line or method, header syntax or ``Content-Length``,
    ``Content-Length`` with ``Transfer-Encoding``, a ``Transfer-Encoding`` other than
    ``chunked``, an HTTP/1.1 head without exactly one ``Host``, a bad chunk) is refused
    before there is a request for the ASGI app (uvicorn would answer plain text ``Invalid
    HTTP request received.``): this subclass answers ``{"errors": ["malformed HTTP
    request"]}`` (400, or 431 once an incomplete head exceeds 16 KiB) as
    ``application/json`` and closes the connection. Such requests never reach
    :class:`~aws_iam_backend.server.AsyncVaultAPI`, so they cannot be audited: the parser's
    reason is logged at debug level instead (uvicorn itself also logs a one-line warning).
    A refusal of a head pipelined behind a request still being answered waits for that
    answer; a bad chunk in a body whose answer has begun only closes the connection.

    ``LIST``: llhttp knows no such method. A request that begins with ``LIST `` at a
    message boundary (the start of the connection, or of a read after the previous
    request was complete, which is how clients that wait for each answer send it) is fed
    to llhttp as ``GET`` and its ASGI scope says ``LIST`` again. A ``LIST`` request
    pipelined in the same read as the end of the previous request is refused as malformed.

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
    uvicorn's own ``limit_concurrency`` (plain text, counting the new one) is not used.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    refusals = [0.0, -math.inf]  # refused since the last warning, when it was logged

    class JsonHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_size = -1  # bytes of the request head being read so far; -1: none begun
        _in_message = False  # from a request's first byte to its end
        _held = b""  # a beginning of "LIST " at a message boundary, not yet parsed
        _list = False  # the request being parsed began "LIST ", fed to llhttp as "GET "
        _deferred: tuple[int, str] | None = None  # a refusal waiting for an answer to end

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
            if self._deferred is not None:
                return
            if not self._in_message:  # a message boundary: LIST is ours to translate
                data = self._held + data
                self._held = b""
                start = data.lstrip(b"\r\n")
                if start.startswith(b"LIST "):
                    data = b"GET " + start[5:]
                    self._list = True
                elif start and b"LIST ".startswith(start):
                    self._held = start  # wait for the rest of the method
                    self._track_head()
                    return
            in_head = self._head_size >= 0
            super().data_received(data)
            if self.transport.is_closing() or self._deferred is not None:
                self._cancel_head_timer()
                return
            if self._head_size >= 0:  # a head still incomplete: how big is it now?
                if in_head:
                    self._head_size += len(data)
                else:  # begun in this read: at most what follows any end of a head in it
                    end = data.rfind(b"\r\n\r\n")
                    self._head_size = len(data) - (end + 4 if end >= 0 else 0)
                if self._head_size > MAX_INCOMPLETE_HEAD:
                    self._refuse(431, f"request head over {MAX_INCOMPLETE_HEAD} bytes")
                    return
            self._track_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_size = 0
            self._in_message = True

        def on_headers_complete(self) -> None:
            hosts = 0
            codings: list[bytes] = []
            for name, value in self.headers:
                if name == b"host":
                    hosts += 1
                elif name == b"transfer-encoding":
                    codings += [coding.strip().lower() for coding in value.split(b",")]
            if hosts > 1 or (not hosts and self.parser.get_http_version() == "1.1"):
                raise _MalformedHead("an HTTP/1.1 request needs exactly one Host header")
            if codings and codings != [b"chunked"]:
                raise _MalformedHead("only Transfer-Encoding: chunked is supported")
            self._head_size = -1
            self._cancel_head_timer()
            super().on_headers_complete()  # builds the scope, schedules the ASGI task
            if self._list:  # the task has not run yet: it sees LIST
                self._list = False
                self.scope["method"] = "LIST"

        def on_message_complete(self) -> None:
            self._in_message = False
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # arms uvicorn's idle (keep-alive) timer
            if self._deferred is not None and not self.pipeline and self.cycle.response_complete:
                self._send_json_and_close(*self._deferred)
            else:
                self._track_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _answering(self) -> bool:
            """Whether the app has yet to finish answering the latest request."""
            return self.cycle is not None and not self.cycle.response_complete

        def _in_head(self) -> bool:
            return self._head_size >= 0 or bool(self._held)

        def _track_head(self) -> None:
            """Run the header clock only while a request head is awaited and begun."""
            if self.transport.is_closing():
                self._cancel_head_timer()
            elif self._in_head():
                if not self._answering():  # the idle wait is over
                    self._unset_keepalive_if_required()
                    self._arm_head_timer()
            elif (
                self.cycle is not None
                and not self._in_message
                and not self._answering()
                and self._head_timer is None
                and self.timeout_keep_alive_task is None
            ):
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
            if self.transport.is_closing() or self._answering():
                return
            if self._in_head():
                _log.debug("closed %s: %s (not audited)", self.client, HEADER_TIMEOUT_MESSAGE)
                self._send_json_and_close(408, HEADER_TIMEOUT_MESSAGE)
                return
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            error = sys.exception()
            self._refuse(400, str((error and error.__context__) or error))

        def _refuse(self, status: int, reason: str) -> None:
            _log.debug("refused malformed HTTP from %s (not audited): %s", self.client, reason)
            if self._in_head() or not self._in_message:  # a new request's head
                if self._answering():  # pipelined behind one being answered: after it
                    self._deferred = (status, MALFORMED_MESSAGE)
                    self.flow.pause_reading()
                    return
            elif self.cycle.response_started:  # the body of a request already answered
                self.transport.close()
                return
            self._send_json_and_close(status, MALFORMED_MESSAGE)

        def _send_json_and_close(self, status: int, message: str) -> None:
            self._cancel_head_timer()
            if not self.transport.is_closing():
                self.transport.write(_json_refusal(status, message))
                self.transport.close()

    return JsonHttpToolsProtocol


def uvicorn_config(
    app: ASGIApp,
    *,
    log_level: str = "info",
    log_format: str = "standard",
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
    ``max_connections`` are enforced by :func:`json_httptools_protocol`. The whole-request
    (body read) deadline belongs to the app: ``make_asgi_app(..., request_timeout=...)``.
    With ``log_format="json"`` uvicorn's own records go to the root logger's handlers
    (:func:`~aws_iam_backend.server.logs.configure_logging`) instead of its own format.
    """
    try:
        import uvicorn
    except ImportError:
        raise ServeError(
            "the server needs uvicorn: pip install 'aws_iam_backend[server]'"
        ) from None
    if log_format == "json":
        options = {"log_config": None, **options}
    return uvicorn.Config(
        app,
        log_level=log_level,
        http=json_httptools_protocol(header_read_timeout, max_connections),
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
    log_format: str = "standard",
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
        log_format=log_format,
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
    log_format: str = "standard",
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

    Metrics: unless ``PROMETHEUS_MULTIPROC_DIR`` is set already, it is pointed at a new
    private directory (removed when the workers are gone) before the fork, so the
    workers' metrics are one set, which a scrape of any of them shows (prometheus-client's
    multiprocess mode, see :mod:`aws_iam_backend.server.metrics`).
    """
    owned_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        owned_dir = tempfile.mkdtemp(prefix="aws-iam-backend-metrics-")
        os.environ[MULTIPROC_ENV] = owned_dir
    try:
        return _fork_workers(
            make_app,
            sock,
            workers,
            log_level=log_level,
            log_format=log_format,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            header_read_timeout=header_read_timeout,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
        )
    finally:
        if owned_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(owned_dir, ignore_errors=True)


def _fork_workers(
    make_app: Callable[[], ASGIApp],
    sock: socket.socket,
    workers: int,
    *,
    log_level: str,
    log_format: str,
    tls_cert_file: str | None,
    tls_key_file: str | None,
    header_read_timeout: float | None,
    idle_timeout: float,
    max_connections: int,
) -> int:
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
                    log_format=log_format,
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
