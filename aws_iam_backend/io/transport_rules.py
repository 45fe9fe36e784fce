"""The rules both STS transports share (sync :mod:`~aws_iam_backend.io.transport` and
asyncio :mod:`~aws_iam_backend.io.aio_transport`), free of any I/O.

- the body cap (:data:`MAX_BODY`), the retry budget and which statuses are retried
  (429 and 5xx except 501);
- full-jitter exponential backoff, or a short ``Retry-After`` (at most 5 s; a longer one
  ends the retries), never sleeping past the deadline (:func:`settle`);
- error texts: a short reason, never the URL (a presigned query carries the signature),
  headers or body.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit

from aws_iam_backend.errors import UpstreamError, UpstreamTimeoutError
from aws_iam_backend.login.messages import OutboundRequest, STSResponse

__all__ = [
    "MAX_BODY",
    "READ_CHUNK",
    "check_declared_length",
    "check_scheme",
    "connect_reason",
    "deadline_exceeded",
    "in_chain",
    "retry_budget",
    "retryable_status",
    "settle",
    "tls_reason",
    "too_large",
]

MAX_BODY = 64 * 1024
READ_CHUNK = 16 * 1024
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
MAX_RETRY_AFTER = 5
PREFIX = "error making upstream request: "
REQUEST_ERROR = PREFIX + "error making request: "
DEFAULT_RETRIES = 3


def retry_budget(max_retries: int) -> int:
    """Retries allowed after the first attempt; a negative setting means the default (3)."""
    return DEFAULT_RETRIES if max_retries < 0 else max_retries


def check_scheme(request: OutboundRequest) -> str:
    """The request's URL scheme (``http`` or ``https``); anything else is refused."""
    scheme = urlsplit(request.url).scheme
    if scheme not in ("http", "https"):
        raise UpstreamError(REQUEST_ERROR + "unsupported URL scheme")
    return scheme


def retryable_status(status: int) -> bool:
    """429 and 5xx except 501 are retried; every other status is final."""
    return status == 429 or (500 <= status < 600 and status != 501)


def retry_delay(attempt: int, response: STSResponse | None, random: float) -> float | None:
    """Seconds to wait after attempt number ``attempt``; None to give up (a long
    ``Retry-After``). ``random`` is a uniform draw in [0, 1) for the full jitter."""
    retry_after = response.header("retry-after") if response is not None else None
    if retry_after is not None and retry_after.strip().isdecimal():
        seconds = int(retry_after.strip())
        return float(seconds) if seconds <= MAX_RETRY_AFTER else None
    return random * min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))


def settle(
    response: STSResponse | None,
    failure: str,
    *,
    attempt: int,
    retries: int,
    now: float,
    deadline: float,
    random: Callable[[], float],
) -> STSResponse | float:
    """After attempt number ``attempt``: the final response, or the seconds to wait
    before trying again. Raises :class:`UpstreamError` (with the safe reason ``failure``)
    when a connection failure is final. ``response`` is None when the attempt failed."""
    if response is not None and not retryable_status(response.status):
        return response
    delay = retry_delay(attempt, response, random())
    if attempt > retries or delay is None or now + delay >= deadline:
        if response is not None:
            return response
        raise UpstreamError(REQUEST_ERROR + failure)
    return delay


def deadline_exceeded(attempts: int) -> UpstreamTimeoutError:
    """The error for a send that ran out of time."""
    return UpstreamTimeoutError(f"{PREFIX}deadline exceeded after {attempts} attempt(s)")


def too_large() -> UpstreamError:
    """The error for a body over :data:`MAX_BODY`."""
    return UpstreamError(PREFIX + "STS response too large")


def check_declared_length(value: str | None) -> None:
    """Refuse a ``Content-Length`` over :data:`MAX_BODY` before reading anything."""
    if value is not None and value.isdecimal() and int(value) > MAX_BODY:
        raise too_large()


def tls_reason(exc: BaseException) -> str | None:
    """``TLS error: <reason>`` when an :class:`ssl.SSLError` caused ``exc``, else None."""
    found = False
    for seen in _chain(exc):
        if isinstance(seen, ssl.SSLError):
            found = True
            if getattr(seen, "reason", None):  # wrappers may carry none; their cause does
                return f"TLS error: {seen.reason}"
    return "TLS error: handshake failed" if found else None


def connect_reason(exc: BaseException) -> str:
    """``connection failed``, with the OS error text when an errno caused ``exc``."""
    os_error = in_chain(exc, OSError)
    if os_error is not None and os_error.errno:
        return f"connection failed: {os.strerror(os_error.errno).lower()}"
    return "connection failed"


_E = TypeVar("_E", bound=BaseException)


def in_chain(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of type ``kind`` in ``exc``'s cause/context chain."""
    for seen in _chain(exc):
        if isinstance(seen, kind):
            return seen
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, at most ten deep."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__
