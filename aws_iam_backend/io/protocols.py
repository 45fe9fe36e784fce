"""The I/O the core needs, as small protocols. Implement these to embed the backend.

- :class:`Storage`: a versioned JSON document store with conditional writes (the
  backend's only durable state), with :class:`Document` and the operations of a commit,
  :class:`Put`, :class:`Delete` and :class:`Check`.
- :class:`STSTransport`: sends the rebuilt GetCallerIdentity request.
- :class:`AsyncStorage`, :class:`AsyncSTSTransport`: the same, awaitable, for
  :class:`~aws_iam_backend.AsyncBackend`.
- :class:`IamLookups`: IAM queries for unique IDs and full ARNs.
- :class:`Ec2Lookups`: EC2 instance descriptions and an instance profile's role.

The token issuer lives in :mod:`aws_iam_backend.drivers._sync.tokens`, the clock in
:mod:`aws_iam_backend.io.clock`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from aws_iam_backend.ec2.instance import Ec2Instance
from aws_iam_backend.login.arn import IamEntity
from aws_iam_backend.login.messages import OutboundRequest, STSResponse

JSONDict = dict[str, Any]


@attrs.frozen
class Document:
    """A stored document: its ``key``, JSON ``value``, ``version`` and optional expiry.

    ``version`` (>= 1) changes on every write and never repeats for a key, even after a
    delete and re-create, so a write conditioned on it cannot succeed against a document
    that was replaced in between. ``expires_at`` (epoch seconds) is only an index for
    :meth:`Storage.expired`; storage never drops a document by itself.
    """

    key: str
    value: JSONDict = attrs.field(repr=False)
    version: int
    expires_at: float | None = None


ABSENT = 0
"""The ``expect`` of a write that requires the key to be absent."""


def _check_expect(_: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 0):
        raise ValueError(f"{attribute.name} must be None, ABSENT (0) or a version >= 1")


@attrs.frozen
class Put:
    """Write ``value`` at ``key``. ``expect``: None (unconditional), :data:`ABSENT`, or the
    version the key must be at. ``expires_at`` (epoch seconds) indexes it for tidying."""

    key: str
    value: JSONDict = attrs.field(repr=False)
    expect: int | None = attrs.field(default=None, validator=_check_expect)
    expires_at: float | None = None


@attrs.frozen
class Delete:
    """Delete ``key``. ``expect``: None (unconditional, no error if absent) or the version
    the key must be at (a conflict if it is absent or at another version)."""

    key: str
    expect: int | None = attrs.field(default=None, validator=_check_expect)

    @expect.validator
    def _not_absent(self, _: attrs.Attribute[int | None], value: int | None) -> None:
        if value == ABSENT:
            raise ValueError("a delete cannot expect the key to be absent")


def _check_version(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be a version >= 1")


@attrs.frozen
class Check:
    """Require ``key`` to be at version ``expect`` when the commit applies; writes nothing.

    A commit holding it fails with :class:`~aws_iam_backend.errors.ConflictError` (and
    changes nothing) otherwise, and the check holds until the commit ends, so a commit
    can depend on a document it does not change (a token on its mount table). Its entry
    in the commit's result is ``expect``. ``absolute``: in a
    :class:`~aws_iam_backend.io.storage._sync.prefixed.PrefixedStorage` view, ``key``
    names a key of the underlying store, not of the view.
    """

    key: str
    expect: int = attrs.field(validator=_check_version)
    absolute: bool = False


Operation = Put | Delete | Check


class Storage(Protocol):
    """A store of versioned JSON documents with conditional, atomic multi-key writes.

    Keys are ``/``-separated strings. :meth:`commit` applies every operation (a
    :class:`Put`, :class:`Delete` or :class:`Check`) or none;
    when any ``expect`` does not hold it raises
    :class:`~aws_iam_backend.errors.ConflictError` and changes nothing. A commit is
    durable when it returns and readers never see part of one. Failures raise
    :class:`~aws_iam_backend.errors.InternalError` (or
    :class:`~aws_iam_backend.errors.StorageUnavailableError` while the store cannot be
    reached). :mod:`aws_iam_backend.io.storage._sync.ops` builds ``get``/``put``/``create``/
    ``update`` on these four methods (``_async.ops`` on :class:`AsyncStorage`, the async
    twin with the same methods, awaitable).
    """

    def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        ...

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply ``operations`` atomically (each key at most once); the new version of each
        (0 for a delete)."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        ...

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` whose ``expires_at`` <= ``before``,
        soonest first (keys in full, prefix included)."""
        ...


class AsyncStorage(Protocol):
    """:class:`Storage` for asyncio: the same four methods and guarantees, awaitable."""

    async def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        ...

    async def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply ``operations`` atomically; the new version of each (0 for a delete)."""
        ...

    async def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        ...

    async def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` whose ``expires_at`` <= ``before``."""
        ...


class STSTransport(Protocol):
    """Sends one GetCallerIdentity request to STS.

    Must not follow redirects, must cap the response body, and must give up
    within ``timeout`` seconds overall (raising
    :class:`~aws_iam_backend.errors.UpstreamTimeoutError`). Connection failures
    raise :class:`~aws_iam_backend.errors.UpstreamError`. ``max_retries`` retries
    are allowed on connection errors, 429 and 5xx (except 501), inside the timeout.
    """

    def send(
        self, request: OutboundRequest, *, timeout: float, max_retries: int
    ) -> STSResponse: ...


class AsyncSTSTransport(Protocol):
    """:class:`STSTransport` for asyncio: the same rules, ``send`` awaitable. Cancelling
    the awaiting task abandons the request and frees its connection."""

    async def send(
        self, request: OutboundRequest, *, timeout: float, max_retries: int
    ) -> STSResponse: ...


@attrs.frozen
class AwsAccess:
    """Which AWS credentials and endpoints an IAM or EC2 lookup must use.

    ``sts_role`` is the ``config/sts/<account>`` role to assume for the target
    account (None: use the server's own credentials, which must belong to that
    account). ``ec2_endpoint`` is ``config/client``'s ``endpoint`` (the EC2 API).
    """

    access_key: str = ""
    secret_key: str = attrs.field(default="", repr=False)
    iam_endpoint: str = ""
    sts_endpoint: str = ""
    sts_region: str = ""
    sts_role: str | None = None
    external_id: str | None = None
    max_retries: int = -1
    ec2_endpoint: str = ""


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


class Ec2Lookups(Protocol):
    """EC2 and IAM queries about an instance, made with credentials for its account only
    (the same rules as :class:`IamLookups`).

    Errors raise :class:`~aws_iam_backend.errors.BackendError` subclasses with messages
    safe to show to the caller: :class:`~aws_iam_backend.errors.InvalidRequestError` for
    what the caller named (no such instance, not running, an account without credentials),
    :class:`~aws_iam_backend.errors.UpstreamError` when AWS fails or answers wrongly.
    """

    def describe_instance(
        self, instance_id: str, region: str, account_id: str, access: AwsAccess
    ) -> Ec2Instance:
        """``ec2:DescribeInstances`` of one instance in ``region`` (Vault's
        ``validateInstance``): the instance must be described exactly once, under its own
        ID, in a reservation owned by ``account_id``, and be ``running``. Messages are the
        bare reasons (``instance is not in 'running' state``, ...); the caller adds
        Vault's ``failed to verify ...`` wrapping for its flow."""
        ...

    def instance_profile_role_arn(self, profile_arn: str, access: AwsAccess) -> str:
        """The ARN of the one role in the instance profile ``profile_arn``
        (``iam:GetInstanceProfile`` by its friendly name, in its own account); messages
        carry Vault's ``IAM role ARN could not be fetched: ...`` wrapping."""
        ...
