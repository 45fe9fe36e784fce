"""The asyncio STS transport: sends a rebuilt GetCallerIdentity request over pooled aiohttp.

The same rules as the sync :class:`~aws_iam_backend.io.transport.BotocoreTransport` (the
pure ones are shared through :mod:`~aws_iam_backend.io.transport_rules`):

- TLS is verified against botocore's CA bundle (or the given one), with botocore's SSL
  context settings, and the certificate must name the host;
- one overall deadline per ``send`` (``asyncio.timeout``) covers pool waits, connect,
  TLS, retries, backoff and the body, so a peer that trickles bytes cannot hold a task
  past it;
- redirects are never followed, bodies are never decompressed (``Accept-Encoding:
  identity``) and are read capped at 64 KiB; no cookies are kept;
- retries on connection errors, 429 and 5xx (not 501), with full-jitter exponential
  backoff (or a short ``Retry-After``) that never sleeps past the deadline;
- proxies only when configured, never from the environment;
- keep-alive connections, at most ``max_pool_connections`` per host (callers wait,
  inside their deadline);
- cancelling the awaiting task abandons the request: its connection is closed, never
  returned to the pool half-read.

Error texts name a short reason only, never the URL (a presigned query carries the
signature), headers or body. aiohttp was chosen over httpx by measurement
(``python -m benchmarks.async_transport``).
"""

from __future__ import annotations

import asyncio
import random as random_module
import ssl
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self

import aiohttp
from botocore.httpsession import create_urllib3_context, get_cert_path
from multidict import CIMultiDict
from yarl import URL

from aws_iam_backend.io.transport_rules import (
    MAX_BODY,
    READ_CHUNK,
    check_declared_length,
    check_scheme,
    connect_reason,
    deadline_exceeded,
    retry_budget,
    settle,
    tls_reason,
    too_large,
)
from aws_iam_backend.login.messages import OutboundRequest, STSResponse

__all__ = ["AsyncHttpTransport"]


class AsyncHttpTransport:
    """:class:`~aws_iam_backend.io.protocols.AsyncSTSTransport` over one aiohttp session.

    One instance serves every login on one event loop; the session is opened by the first
    ``send`` (or ``async with``). ``verify`` is True (botocore's CA bundle), False, or a
    CA bundle path; ``proxies`` maps a URL scheme to a proxy URL (credentials in it are
    sent as ``Proxy-Authorization``). ``sleep`` and ``random`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        max_pool_connections: int = 50,
        connect_timeout: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self._sleep = sleep
        self._random = random
        self._max_pool_connections = max_pool_connections
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._ssl = _ssl_context(verify)
        self._proxies = {scheme: URL(proxy) for scheme, proxy in (proxies or {}).items()}
        # One session (connection pool) per event loop: a session belongs to its loop.
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, aiohttp.ClientSession
        ] = weakref.WeakKeyDictionary()

    async def __aenter__(self) -> Self:
        self._session_here()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the running loop's pooled connections (a later ``send`` opens a new pool)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    async def send(
        self, request: OutboundRequest, *, timeout: float, max_retries: int
    ) -> STSResponse:
        """Send ``request``; return STS's response, or raise an upstream error."""
        retries = retry_budget(max_retries)
        scheme = check_scheme(request)
        session = self._session_here()
        url = URL(request.url, encoded=True)  # the client's raw query, byte for byte
        headers: CIMultiDict[str] = CIMultiDict(request.headers)
        headers["Host"] = request.host
        headers.setdefault("Accept-Encoding", "identity")
        proxy = self._proxies.get(scheme)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempt = 0
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                while True:
                    attempt += 1
                    try:
                        response: STSResponse | None = await _attempt(
                            session, request, url, headers, proxy
                        )
                        failure = ""
                    except _ConnectionFailed as exc:
                        response, failure = None, str(exc)
                    outcome = settle(
                        response, failure, attempt=attempt, retries=retries,
                        now=loop.time(), deadline=deadline, random=self._random,
                    )  # fmt: skip
                    if isinstance(outcome, STSResponse):
                        return outcome
                    await self._sleep(outcome)
        except TimeoutError:
            if scope.expired():
                raise deadline_exceeded(attempt) from None
            raise

    def _session_here(self) -> aiohttp.ClientSession:
        """The session of the running loop, opened on its first use there."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=self._max_pool_connections, ssl=self._ssl
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                trust_env=False,  # no proxies (or .netrc) from the environment
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
            )
            self._sessions[loop] = session
        return session


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """botocore's client context, loaded with its CA bundle and checking host names."""
    context: ssl.SSLContext
    if not verify:
        context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
        return context
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_verify_locations(cafile=get_cert_path(verify))
    context.check_hostname = True  # urllib3 matches names itself; here OpenSSL must
    return context


class _ConnectionFailed(Exception):
    """Internal: the attempt failed before a complete response; the text is a safe reason."""


async def _attempt(
    session: aiohttp.ClientSession,
    request: OutboundRequest,
    url: URL,
    headers: CIMultiDict[str],
    proxy: URL | None,
) -> STSResponse:
    """One request/response exchange; the caller's deadline bounds it."""
    try:
        raw = await session.request(
            request.method,
            url,
            data=request.body or None,
            headers=headers,
            allow_redirects=False,
            proxy=proxy,
        )
    except (aiohttp.ClientError, OSError) as exc:  # aiohttp closed the connection
        raise _ConnectionFailed(_reason(exc)) from None
    complete = False
    try:
        check_declared_length(raw.headers.get("Content-Length"))
        body = await _read_capped(raw.content)
        complete = True
        return STSResponse(
            status=raw.status,
            headers=tuple(
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in raw.raw_headers
            ),
            body=body,
        )
    except (aiohttp.ClientError, OSError) as exc:
        raise _ConnectionFailed(_reason(exc)) from None
    finally:
        if complete:
            raw.release()  # fully read: the connection may be reused
        else:
            raw.close()  # refused, failed, timed out or cancelled: never reused


async def _read_capped(content: aiohttp.StreamReader) -> bytes:
    """The raw (never decoded) body, refusing more than ``MAX_BODY`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.read(READ_CHUNK):
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    """A short description of a connection failure, free of URLs, headers and bodies."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "name resolution failed"
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return "proxy connection failed"
    tls = tls_reason(exc)
    if tls is not None:
        return tls
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return connect_reason(exc)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientResponseError
        | aiohttp.ClientOSError
        | ConnectionError,
    ):
        return "connection closed before a complete response"
    return f"connection failed ({type(exc).__name__})"
