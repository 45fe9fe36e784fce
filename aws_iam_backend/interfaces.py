"""The I/O the core needs, as small protocols. Implement these to embed the backend.

- :class:`Storage`: a JSON document store (the backend's only state).
- :class:`STSTransport`: sends the rebuilt GetCallerIdentity request.
- :class:`IamLookups`: IAM queries for unique IDs and full ARNs.

The token issuer lives in :mod:`aws_iam_backend.tokens`, the clock in
:mod:`aws_iam_backend.clock`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from .arn import IamEntity
from .messages import OutboundRequest, STSResponse

JSONDict = dict[str, Any]


class Storage(Protocol):
    """A key/value store of JSON documents.

    Keys are ``/``-separated strings. Every ``put`` and ``delete`` is atomic and
    durable when it returns; readers never see half a document. Implementations
    raise :class:`aws_iam_backend.errors.InternalError` on failure.
    """

    def get(self, key: str) -> JSONDict | None:
        """The document at ``key``, or None."""
        ...

    def put(self, key: str, value: JSONDict) -> None:
        """Store ``value`` at ``key``, replacing any previous document."""
        ...

    def put_many(self, items: Mapping[str, JSONDict]) -> None:
        """Store several documents in one atomic write: all of them, or none."""
        ...

    def create(self, key: str, value: JSONDict) -> bool:
        """Store ``value`` only if ``key`` is absent, atomically; True if it was stored."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if absent."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        ...


class STSTransport(Protocol):
    """Sends one GetCallerIdentity request to STS.

    Must not follow redirects, must cap the response body, and must give up
    within ``timeout`` seconds overall (raising
    :class:`~aws_iam_backend.errors.UpstreamTimeoutError`). Connection failures
    raise :class:`~aws_iam_backend.errors.UpstreamError`. ``max_retries`` retries
    are allowed on connection errors, 429 and 5xx (except 501), inside the timeout.
    """

    def send(self, request: OutboundRequest, *, timeout: float, max_retries: int) -> STSResponse:
        ...


@attrs.frozen
class AwsAccess:
    """Which AWS credentials and endpoints an IAM lookup must use.

    ``sts_role`` is the ``config/sts/<account>`` role to assume for the target
    account (None: use the server's own credentials, which must belong to that
    account).
    """

    access_key: str = ""
    secret_key: str = attrs.field(default="", repr=False)
    iam_endpoint: str = ""
    sts_endpoint: str = ""
    sts_region: str = ""
    sts_role: str | None = None
    external_id: str | None = None
    max_retries: int = -1


class IamLookups(Protocol):
    """IAM queries, always made with credentials for the entity's own account.

    Errors raise :class:`~aws_iam_backend.errors.UpstreamError` (or a subclass)
    with a message safe to show to the caller.
    """

    def unique_id(self, entity: IamEntity, access: AwsAccess) -> str:
        """``UserId``/``RoleId``/``InstanceProfileId`` of a user, role or instance profile."""
        ...

    def full_arn(self, entity: IamEntity, access: AwsAccess) -> str:
        """The ARN (with path) IAM reports for the user or role named by ``entity``."""
        ...
