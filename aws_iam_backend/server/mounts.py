"""The auth mount table's documents: which mounts exist, kept in storage at ``sys/mounts``.

The table lives at ``sys/mounts``. Each mount's backend sees its own
``auth/<uuid>/`` view of the storage, so disabling a mount and enabling it again
starts afresh; every mount shares one token issuer (see :class:`MountTable`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from aws_iam_backend.drivers.ratelimit import AsyncRateLimiter, RateLimiter, RateLimits
from aws_iam_backend.drivers.replay import AsyncReplayCache, ReplayCache
from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.io.protocols import Document, JSONDict
from aws_iam_backend.vault.fields import to_duration

MOUNTS_KEY = "sys/mounts"
MOUNT_TYPE = "aws"
TOKEN_MOUNT = "token/"
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)



class AsyncSharedCache(Protocol):
    """:class:`SharedCache` for asyncio (:class:`~aws_iam_backend.io.cache.AsyncRedisCache`)."""

    def replay_cache(self) -> AsyncReplayCache:
        """One-time claims of signatures and challenge nonces, server-wide."""
        ...

    def rate_limiter(self, limits: RateLimits, scope: str) -> AsyncRateLimiter:
        """Login rate limits for one mount (``scope``), shared by every process."""
        ...

    async def ping(self) -> None:
        """Raise :class:`~aws_iam_backend.errors.StorageUnavailableError` if unreachable."""
        ...


class SharedCache(Protocol):
    """Ephemeral state shared by every server process (Redis: :mod:`aws_iam_backend.io.cache`)."""

    def replay_cache(self) -> ReplayCache:
        """One-time claims of signatures and challenge nonces, server-wide."""
        ...

    def rate_limiter(self, limits: RateLimits, scope: str) -> RateLimiter:
        """Login rate limits for one mount (``scope``), shared by every process."""
        ...

    def ping(self) -> None:
        """Raise :class:`~aws_iam_backend.errors.StorageUnavailableError` if unreachable."""
        ...


@attrs.frozen
class Mount:
    """One enabled AWS auth method. TTLs of 0 mean "the server's default"."""

    path: str
    uuid: str
    accessor: str
    description: str = ""
    default_lease_ttl: int = 0
    max_lease_ttl: int = 0

    def to_storage(self) -> JSONDict:
        """The mount's entry in ``sys/mounts``."""
        return {
            "type": MOUNT_TYPE,
            "uuid": self.uuid,
            "accessor": self.accessor,
            "description": self.description,
            "config": {
                "default_lease_ttl": self.default_lease_ttl,
                "max_lease_ttl": self.max_lease_ttl,
            },
        }

    def describe(self) -> dict[str, Any]:
        """The mount as ``GET /v1/sys/auth`` shows it."""
        return describe_entry(
            MOUNT_TYPE,
            self.description,
            self.accessor,
            self.uuid,
            self.default_lease_ttl,
            self.max_lease_ttl,
        )


def describe_entry(
    kind: str, description: str, accessor: str, mount_uuid: str, default_ttl: int, max_ttl: int
) -> dict[str, Any]:
    """One entry of Vault's ``sys/auth`` listing."""
    return {
        "type": kind,
        "description": description,
        "accessor": accessor,
        "uuid": mount_uuid,
        "config": {
            "default_lease_ttl": default_ttl,
            "max_lease_ttl": max_ttl,
            "force_no_cache": False,
            "token_type": "default-service",
        },
        "local": False,
        "seal_wrap": False,
        "external_entropy_access": False,
        "options": None,
    }


def mount_path(raw: str) -> str:
    """``raw`` normalised to ``a/b/`` form; 400 unless every segment is ``[A-Za-z0-9_.-]+``."""
    segments = raw.strip("/").split("/")
    if not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise InvalidRequestError(f"invalid mount path: {raw!r}")
    return "/".join(segments) + "/"


def _from_storage(path: str, doc: Mapping[str, Any]) -> Mount:
    config = doc.get("config") or {}
    return Mount(
        path=path,
        uuid=str(doc["uuid"]),
        accessor=str(doc["accessor"]),
        description=str(doc.get("description", "")),
        default_lease_ttl=int(config.get("default_lease_ttl", 0)),
        max_lease_ttl=int(config.get("max_lease_ttl", 0)),
    )


def ttl_field(config: Mapping[str, Any], name: str) -> int:
    value = config.get(name)
    if value is None or value == "":
        return 0
    try:
        return to_duration(value)
    except ValueError as exc:
        raise InvalidRequestError(f"error parsing {name}: {exc}") from None


def parse_table(doc: Document | None) -> dict[str, Mount]:
    table = {} if doc is None else dict(doc.value.get("auth", {}))
    return {p: _from_storage(p, d) for p, d in table.items()}


def table_document(mounts: Mapping[str, Mount]) -> JSONDict:
    return {"auth": {p: m.to_storage() for p, m in mounts.items()}}
