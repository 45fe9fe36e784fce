"""The I/O parts a driver uses when the host gives none: in-memory storage and the STS
transport of its kind (urllib3 for :class:`~aws_iam_backend.Backend`, our pooled asyncio
HTTP/1.1 client for :class:`~aws_iam_backend.AsyncBackend`)."""

from __future__ import annotations

from aws_iam_backend.io.protocols import AsyncSTSTransport, STSTransport


def pool_size(max_concurrent_sts_calls: int) -> int:
    """Connections per STS host: one for every call allowed at once (256 when unlimited),
    so the pool never caps what the concurrency limit admits."""
    return max_concurrent_sts_calls or 256


def default_transport(max_concurrent_sts_calls: int) -> STSTransport:
    """The sync driver's STS transport."""
    from aws_iam_backend.io.transport import BotocoreTransport

    return BotocoreTransport(max_pool_connections=pool_size(max_concurrent_sts_calls))


def async_default_transport(max_concurrent_sts_calls: int) -> AsyncSTSTransport:
    """The async driver's STS transport."""
    try:
        from aws_iam_backend.io.aio_transport import AsyncHttpTransport
    except ImportError:
        raise ImportError(
            "the async STS transport needs httptools: pip install 'aws_iam_backend[async]'"
        ) from None
    return AsyncHttpTransport(max_pool_connections=pool_size(max_concurrent_sts_calls))
