"""aws_iam_backend: Vault's AWS auth method (IAM login type) as an embeddable library.

Start with :class:`Backend`, or :class:`AsyncBackend` in an asyncio host (the same methods,
awaitable). Plug in storage, STS transport, IAM lookups, token issuer and clock through the
protocols in :mod:`aws_iam_backend.io.protocols` (:class:`Storage`, :class:`AsyncStorage`,
...), :class:`TokenIssuer` / :class:`AsyncTokenIssuer` and :class:`Clock`.
"""

from __future__ import annotations

from aws_iam_backend.drivers._async.backend import AsyncBackend
from aws_iam_backend.drivers._async.claims import AsyncStorageReplayCache
from aws_iam_backend.drivers._async.tokens import AsyncStoreTokenIssuer, AsyncTokenIssuer
from aws_iam_backend.drivers._sync.backend import Backend
from aws_iam_backend.drivers._sync.claims import StorageReplayCache
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer, TokenIssuer
from aws_iam_backend.drivers.ratelimit import RateLimits
from aws_iam_backend.drivers.replay import (
    AsyncMemoryReplayCache,
    AsyncReplayCache,
    MemoryReplayCache,
    ReplayCache,
)
from aws_iam_backend.drivers.shapes import BackendSettings, Request, Response
from aws_iam_backend.errors import (
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
from aws_iam_backend.io.clock import Clock, SystemClock
from aws_iam_backend.io.protocols import (
    ABSENT,
    AsyncStorage,
    AsyncSTSTransport,
    AwsAccess,
    Check,
    Delete,
    Document,
    IamLookups,
    Put,
    Storage,
    STSTransport,
)
from aws_iam_backend.io.storage import (
    AsyncMemoryStorage,
    AsyncSQLiteStorage,
    MemoryStorage,
    SQLiteStorage,
    open_async_storage,
    open_storage,
)
from aws_iam_backend.login.rebuild import RequestPolicy
from aws_iam_backend.vault.tokens import TokenRecord, TokenSpec

__all__ = [
    "ABSENT",
    "AsyncBackend",
    "AsyncMemoryReplayCache",
    "AsyncMemoryStorage",
    "AsyncReplayCache",
    "AsyncSQLiteStorage",
    "AsyncSTSTransport",
    "AsyncStorage",
    "AsyncStorageReplayCache",
    "AsyncStoreTokenIssuer",
    "AsyncTokenIssuer",
    "AwsAccess",
    "Backend",
    "BackendError",
    "BackendSettings",
    "Check",
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
    "open_async_storage",
    "open_storage",
]
