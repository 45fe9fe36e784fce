"""The STS transport: sends a rebuilt GetCallerIdentity request over pooled urllib3.

TLS settings come from botocore (its SSL context factory, CA bundle and connection
classes). On top of that:

- one overall deadline per ``send`` covers pool waits, connect, TLS, retries, backoff and
  the body. A watchdog thread shuts the socket down when the deadline passes, so a peer
  that trickles bytes cannot hold a worker past it;
- redirects are never followed, bodies are never decompressed (``Accept-Encoding:
  identity``) and are read capped at 64 KiB: never more than the cap plus one byte is
  asked of the response, and a body shorter than its ``Content-Length`` is an error;
- retries on connection errors, 429 and 5xx (not 501), with full-jitter exponential
  backoff that never sleeps past the deadline (these rules, shared with the asyncio
  transport, live in :mod:`~aws_iam_backend.io.transport_rules`);
- proxies only when configured, never from the environment;
- at most ``max_pool_connections`` connections per host (callers wait, inside their deadline).

Error texts name a short reason only, never the URL (a presigned query carries the
signature), headers or body.

Works with every urllib3 botocore allows (1.25.4 and later, 1.x and 2.x): only API
present in all of them is used, or the difference is handled here (``read1`` arrived in
2.2, ``NameResolutionError`` and the top-level ``HTTPHeaderDict`` in 2.0). CI runs the
transport tests against the lowest allowed versions (``.ci/lowest``).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random as random_module
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.client import HTTPException
from typing import Any, TypeVar

import urllib3
from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)
from botocore.httpsession import create_urllib3_context, get_cert_path
from urllib3._collections import HTTPHeaderDict  # urllib3.HTTPHeaderDict: 2.0+ only
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
)

from aws_iam_backend.io.transport_rules import (
    MAX_BODY,
    READ_CHUNK,
    check_declared_length,
    check_scheme,
    connect_reason,
    deadline_exceeded,
    in_chain,
    retry_budget,
    settle,
    tls_reason,
    too_large,
)
from aws_iam_backend.login.messages import OutboundRequest, STSResponse

__all__ = ["MAX_BODY", "BotocoreTransport"]


class BotocoreTransport:
    """:class:`~aws_iam_backend.io.protocols.STSTransport` over botocore's urllib3 machinery.

    Thread-safe: one instance serves every login. ``verify`` is True (botocore's CA
    bundle), False, or a CA bundle path; ``proxies`` maps a URL scheme to a proxy URL.
    ``sleep`` and ``random`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        max_pool_connections: int = 50,
        connect_timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._sleep = sleep
        self._random = random
        pool_kwargs: dict[str, Any] = {
            "maxsize": max_pool_connections,
            "block": True,
            "ssl_context": create_urllib3_context(
                cert_reqs=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
            ),
            "cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE",
            "ca_certs": get_cert_path(verify) if verify else None,
        }
        self._direct = _with_our_pools(urllib3.PoolManager(num_pools=20, **pool_kwargs))
        self._proxied = {
            scheme: _with_our_pools(urllib3.ProxyManager(url, num_pools=20, **pool_kwargs))
            for scheme, url in (proxies or {}).items()
        }

    def close(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        for manager in self._proxied.values():
            manager.clear()

    def send(self, request: OutboundRequest, *, timeout: float, max_retries: int) -> STSResponse:
        """Send ``request``; return STS's response, or raise an upstream error."""
        deadline = time.monotonic() + timeout
        retries = retry_budget(max_retries)
        scheme = check_scheme(request)
        manager = self._proxied.get(scheme, self._direct)
        headers = HTTPHeaderDict()
        for name, value in request.headers:
            headers.add(name, value)
        headers["Host"] = request.host
        headers.setdefault("Accept-Encoding", "identity")
        attempt = 0
        while True:
            attempt += 1
            try:
                response = _attempt(manager, request, headers, deadline, self._connect_timeout)
                failure = ""
            except _DeadlineExceeded:
                raise deadline_exceeded(attempt) from None
            except _ConnectionFailed as exc:
                response, failure = None, str(exc)
            outcome = settle(
                response, failure, attempt=attempt, retries=retries,
                now=time.monotonic(), deadline=deadline, random=self._random,
            )  # fmt: skip
            if isinstance(outcome, STSResponse):
                return outcome
            self._sleep(outcome)


class _DeadlineExceeded(Exception):
    """Internal: the overall deadline passed during an attempt."""


class _ConnectionFailed(Exception):
    """Internal: the attempt failed before a complete response; the text is a safe reason."""


def _attempt(
    manager: urllib3.PoolManager,
    request: OutboundRequest,
    headers: HTTPHeaderDict,
    deadline: float,
    connect_timeout: float,
) -> STSResponse:
    """One request/response exchange under ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlineExceeded
    guard = _Guard()
    _WATCHDOG.watch(deadline, guard)
    _current.guard = guard
    raw: urllib3.BaseHTTPResponse | None = None
    complete = False
    try:
        raw = manager.urlopen(
            request.method,
            request.url,
            body=request.body or None,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            enforce_content_length=True,  # urllib3 1.x defaults to False: a cut body passes
            timeout=urllib3.Timeout(connect=min(connect_timeout, remaining), read=remaining),
            pool_timeout=remaining,
        )
        body = _read_capped(raw)
        if guard.fired:  # the socket was shut down under us: what we read may be cut short
            raise _DeadlineExceeded
        complete = True
        return STSResponse(
            status=raw.status,
            headers=tuple((name.lower(), value) for name, value in raw.headers.iteritems()),
            body=body,
        )
    except (HTTPError, OSError, HTTPException) as exc:
        if guard.fired or time.monotonic() >= deadline:
            raise _DeadlineExceeded from None
        raise _ConnectionFailed(_reason(exc)) from None
    finally:
        _current.guard = None
        guard.finish()
        if raw is not None:
            if not complete or guard.fired:
                raw.close()
            raw.release_conn()


def _read_capped(raw: urllib3.BaseHTTPResponse) -> bytes:
    """The raw (never decoded) body, refusing more than :data:`MAX_BODY` bytes.

    Never asks for more than ``MAX_BODY + 1`` bytes in all. ``read1`` (urllib3 2.2+)
    returns what has arrived, up to ``amt``; older urllib3 has only ``read``, which waits
    for ``amt`` bytes or the end of the body (the deadline watchdog bounds that wait).
    Both return raw bytes with ``decode_content=False``, and b"" (or None, once the
    response is closed) at the end.
    """
    check_declared_length(raw.headers.get("content-length"))
    read1: Callable[..., bytes] | None = getattr(raw, "read1", None)
    chunks: list[bytes] = []
    size = 0
    while True:
        amt = min(READ_CHUNK, MAX_BODY + 1 - size)
        if read1 is not None:
            chunk = read1(amt, decode_content=False) or b""
        else:
            chunk = raw.read(amt, decode_content=False) or b""
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large()
        chunks.append(chunk)


def _reason(exc: BaseException) -> str:
    """A short description of a connection failure, free of URLs, headers and bodies."""
    # urllib3 2.x raises NameResolutionError (a NewConnectionError) from the gaierror;
    # 1.x raises a plain NewConnectionError while handling it.
    if isinstance(exc, NewConnectionError) and in_chain(exc, socket.gaierror) is not None:
        return "name resolution failed"
    if isinstance(exc, ProxyError):
        return "proxy connection failed"
    tls = tls_reason(exc)
    if tls is not None:
        return tls
    if isinstance(exc, NewConnectionError | ConnectTimeoutError):
        return connect_reason(exc)
    if isinstance(exc, ProtocolError | HTTPException | ConnectionError):
        return "connection closed before a complete response"
    return f"connection failed ({type(exc).__name__})"


# ------------------------------------------------------------------ deadline watchdog

_current = threading.local()


class _Guard:
    """The socket of one attempt, shut down if the attempt outlives its deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._done = False
        self.fired = False

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def finish(self) -> None:
        """After this returns the guard never touches the socket again."""
        with self._lock:
            self._done = True
            self._sock = None


def _shutdown(sock: socket.socket) -> None:
    # The plain-socket method also works on SSL sockets, without touching TLS state.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread firing guards whose deadline has passed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, guard: _Guard) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), guard))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sts-transport-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)[2].fire()
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


_WATCHDOG = _Watchdog()
_M = TypeVar("_M", bound=urllib3.PoolManager)


def _watch_socket(sock: socket.socket | None) -> None:
    guard: _Guard | None = getattr(_current, "guard", None)
    if guard is not None and sock is not None:
        guard.attach(sock)


class _WatchedConnection:
    """Mixin for botocore's connections: register the socket with the attempt's guard."""

    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _watch_socket(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch_socket(self.sock)  # a pooled connection being reused
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnection, AWSHTTPConnection):  # type: ignore[misc]
    pass


class _WatchedHTTPSConnection(_WatchedConnection, AWSHTTPSConnection):  # type: ignore[misc]
    pass


class _HTTPPool(AWSHTTPConnectionPool):  # type: ignore[misc]
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(AWSHTTPSConnectionPool):  # type: ignore[misc]
    ConnectionCls = _WatchedHTTPSConnection


def _with_our_pools(manager: _M) -> _M:
    """Make ``manager`` build connections whose sockets the watchdog can shut down."""
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager
