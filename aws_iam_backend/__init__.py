"""aws_iam_backend: Vault's AWS auth method (IAM login type) as an embeddable library.

Start with :class:`Backend`; plug in storage, STS transport, IAM lookups, token issuer
and clock through the protocols in :mod:`aws_iam_backend.io.protocols`,
:mod:`aws_iam_backend.drivers._sync.tokens` and :mod:`aws_iam_backend.io.clock`.
"""

from __future__ import annotations

from aws_iam_backend.drivers._sync.backend import Backend, BackendSettings, Request, Response
from aws_iam_backend.drivers._sync.ratelimit import RateLimits
from aws_iam_backend.drivers._sync.replay import MemoryReplayCache, ReplayCache, StorageReplayCache
from aws_iam_backend.drivers._sync.tokens import (
    StoreTokenIssuer,
    TokenIssuer,
    TokenRecord,
    TokenSpec,
)
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
    AwsAccess,
    Delete,
    Document,
    IamLookups,
    Put,
    Storage,
    STSTransport,
)
from aws_iam_backend.io.storage import MemoryStorage, SQLiteStorage, open_storage
from aws_iam_backend.login.rebuild import RequestPolicy

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
