"""The I/O parts a driver uses when the host gives none: in-memory storage and the STS
transport of its kind (urllib3 for :class:`~aws_iam_backend.Backend`, aiohttp-style pooled
asyncio for :class:`~aws_iam_backend.AsyncBackend`)."""

from __future__ import annotations

from aws_iam_backend.io.protocols import AsyncSTSTransport, STSTransport


def default_transport() -> STSTransport:
    """The sync driver's STS transport."""
    from aws_iam_backend.io.transport import BotocoreTransport

    return BotocoreTransport()


def async_default_transport() -> AsyncSTSTransport:
    """The async driver's STS transport."""
    try:
        from aws_iam_backend.io.aio_transport import AsyncHttpTransport
    except ImportError:
        raise ImportError(
            "the async STS transport needs aiohttp: pip install 'aws_iam_backend[async]'"
        ) from None
    return AsyncHttpTransport()
