"""aws_iam_backend: Vault's AWS auth method (IAM login type) as an embeddable library.

Start with :class:`Backend`; plug in storage, STS transport, IAM lookups, token issuer
and clock through the protocols in :mod:`aws_iam_backend.interfaces`,
:mod:`aws_iam_backend.tokens` and :mod:`aws_iam_backend.clock`.
"""

from __future__ import annotations

from .backend import Backend, BackendSettings, Request, Response
from .clock import Clock, SystemClock
from .errors import (
    BackendError,
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
    StorageUnavailableError,
    UnsupportedOperationError,
    UpstreamError,
    UpstreamThrottledError,
    UpstreamTimeoutError,
)
from .interfaces import ABSENT, AwsAccess, Delete, Document, IamLookups, Put, Storage, STSTransport
from .ratelimit import RateLimits
from .replay import MemoryReplayCache, ReplayCache, StorageReplayCache
from .storage import MemoryStorage, SQLiteStorage, open_storage
from .sts_request import RequestPolicy
from .tokens import StoreTokenIssuer, TokenIssuer, TokenRecord, TokenSpec

__all__ = [
    "ABSENT",
    "AwsAccess",
    "Backend",
    "BackendError",
    "BackendSettings",
    "Clock",
    "ConflictError",
    "Delete",
    "Document",
    "IamLookups",
    "InternalError",
    "InvalidRequestError",
    "MemoryReplayCache",
    "MemoryStorage",
    "NotFoundError",
    "PermissionDeniedError",
    "Put",
    "RateLimitedError",
    "RateLimits",
    "ReplayCache",
    "Request",
    "RequestPolicy",
    "RequestTooLargeError",
    "Response",
    "SQLiteStorage",
    "STSTransport",
    "Storage",
    "StorageReplayCache",
    "StorageUnavailableError",
    "StoreTokenIssuer",
    "SystemClock",
    "TokenIssuer",
    "TokenRecord",
    "TokenSpec",
    "UnsupportedOperationError",
    "UpstreamError",
    "UpstreamThrottledError",
    "UpstreamTimeoutError",
    "open_storage",
]
