"""The auth mount table's documents: which mounts exist, kept in storage at ``sys/mounts``.

The table lives at ``sys/mounts``: ``auth`` holds the AWS mounts, ``token`` the tuning of
the built-in ``token/`` mount (absent while untuned). Each mount's backend sees its own
``auth/<uuid>/`` view of the storage, so disabling a mount and enabling it again
starts afresh; every mount shares one token issuer (see
:class:`~aws_iam_backend.server._async.mount_table.AsyncMountTable`).
:func:`parse_tune` and :meth:`Tune.apply` are Vault's ``sys/auth/<path>/tune``.
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
from aws_iam_backend.vault.fields import (
    FieldType,
    parse_fields,
    to_duration,
    unrecognized_warning,
)
from aws_iam_backend.vault.gocompat import go_quote

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
    """One enabled auth method (``kind`` ``aws``, or the built-in ``token``). TTLs of 0
    mean "the server's default"."""

    path: str
    uuid: str
    accessor: str
    description: str = ""
    default_lease_ttl: int = 0
    max_lease_ttl: int = 0
    kind: str = MOUNT_TYPE

    def to_storage(self) -> JSONDict:
        """The mount's entry in ``sys/mounts``."""
        return {
            "type": self.kind,
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
            self.kind,
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


def lease_ttls(mount: Mount, default_ttl: int, max_ttl: int) -> tuple[int, int]:
    """``mount``'s default and max lease TTLs, the server's ``default_ttl``/``max_ttl``
    where the mount has none of its own."""
    return mount.default_lease_ttl or default_ttl, mount.max_lease_ttl or max_ttl


def ttl_field(config: Mapping[str, Any], name: str) -> int:
    value = config.get(name)
    if value is None or value == "":
        return 0
    try:
        return to_duration(value)
    except ValueError as exc:
        raise InvalidRequestError(f"error parsing {name}: {exc}") from None


def parse_table(doc: Document | None) -> dict[str, Mount]:
    """The AWS mounts of the stored table, by path."""
    table = {} if doc is None else dict(doc.value.get("auth", {}))
    return {p: _from_storage(p, d) for p, d in table.items()}


TOKEN_DESCRIPTION = "token based credentials"
DEFAULT_TOKEN_MOUNT = Mount(
    path=TOKEN_MOUNT,
    uuid="token",
    accessor="auth_token_root",
    description=TOKEN_DESCRIPTION,
    kind="token",
)
"""The built-in ``token/`` mount as it is until tuned."""


def parse_token_mount(doc: Document | None) -> Mount:
    """The built-in ``token/`` mount with the tuning the stored table holds."""
    entry = None if doc is None else doc.value.get("token")
    if not entry:
        return DEFAULT_TOKEN_MOUNT
    tuned = _from_storage(TOKEN_MOUNT, entry)
    return attrs.evolve(
        DEFAULT_TOKEN_MOUNT,
        description=tuned.description,
        default_lease_ttl=tuned.default_lease_ttl,
        max_lease_ttl=tuned.max_lease_ttl,
    )


def table_document(mounts: Mapping[str, Mount], token: Mount = DEFAULT_TOKEN_MOUNT) -> JSONDict:
    """The ``sys/mounts`` document of AWS ``mounts`` and the ``token/`` mount's tuning."""
    document: JSONDict = {"auth": {p: m.to_storage() for p, m in mounts.items()}}
    if token != DEFAULT_TOKEN_MOUNT:
        document["token"] = token.to_storage()
    return document


# ------------------------------------------------------------------------ tuning

TUNE_FIELDS = {
    "default_lease_ttl": FieldType.STRING,
    "max_lease_ttl": FieldType.STRING,
    "description": FieldType.STRING,
}
UNSUPPORTED_TUNE_FIELDS = (
    "allowed_managed_keys",
    "allowed_response_headers",
    "audit_non_hmac_request_keys",
    "audit_non_hmac_response_keys",
    "delegated_auth_accessors",
    "identity_token_key",
    "listing_visibility",
    "options",
    "passthrough_request_headers",
    "plugin_version",
    "token_type",
    "user_lockout_config",
)
"""Fields Vault's tune takes that this server has no use for: refused, not ignored."""


@attrs.frozen
class Tune:
    """A parsed ``sys/auth/<path>/tune`` write: None keeps the current value, a TTL of 0
    is the server's (``"system"``)."""

    default_lease_ttl: int | None = None
    max_lease_ttl: int | None = None
    description: str | None = None
    warnings: tuple[str, ...] = ()

    def apply(self, mount: Mount) -> Mount:
        """``mount`` tuned; 400 (Vault's ``tuneMountTTLs`` text) if both TTLs end up set and
        the max is below the default after a TTL change."""
        default = (
            mount.default_lease_ttl if self.default_lease_ttl is None else self.default_lease_ttl
        )
        maximum = mount.max_lease_ttl if self.max_lease_ttl is None else self.max_lease_ttl
        changed = (default, maximum) != (mount.default_lease_ttl, mount.max_lease_ttl)
        if changed and default and maximum and maximum < default:
            raise InvalidRequestError(
                f"backend max lease TTL of {maximum} would be less than backend default "
                f"lease TTL of {default}"
            )
        return attrs.evolve(
            mount,
            default_lease_ttl=default,
            max_lease_ttl=maximum,
            description=mount.description if self.description is None else self.description,
        )


def _tune_ttl(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if value == "system":
        return 0
    try:
        return to_duration(value)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


def parse_tune(data: Mapping[str, object]) -> Tune:
    """The tune ``data`` asks for (Vault's ``handleTuneWriteCommon`` fields); 400 for a
    field conversion error, a bad duration, or a tuning field this server does not keep.
    Unknown fields give Vault's "ignored these unrecognized parameters" warning."""
    unsupported = [name for name in UNSUPPORTED_TUNE_FIELDS if name in data]
    if unsupported:
        raise InvalidRequestError(
            f"tuning {go_quote(unsupported[0])} is not supported by this server"
        )
    fields = parse_fields(data, TUNE_FIELDS)
    return Tune(
        default_lease_ttl=_tune_ttl(fields.string("default_lease_ttl")),
        max_lease_ttl=_tune_ttl(fields.string("max_lease_ttl")),
        description=fields.string("description"),
        warnings=tuple(unrecognized_warning(data, TUNE_FIELDS)),
    )


def tuning_data(mount: Mount, default_ttl: int, max_ttl: int) -> dict[str, Any]:
    """``GET sys/auth/<path>/tune``: the mount's effective TTLs (``default_ttl``/``max_ttl``
    where it has none) and description, as Vault's ``handleTuneReadCommon`` shows them."""
    default, maximum = lease_ttls(mount, default_ttl, max_ttl)
    return {
        "description": mount.description,
        "default_lease_ttl": default,
        "max_lease_ttl": maximum,
        "force_no_cache": False,
        "token_type": "default-service",
    }


def tune_not_found(path: str) -> InvalidRequestError:
    """Vault's error for tuning a path no mount is at."""
    return InvalidRequestError(
        f"tune of path {go_quote('auth/' + path)} failed: no mount entry found"
    )


def tuning_not_found(path: str) -> InvalidRequestError:
    """Vault's error for reading the tuning of a path no mount is at."""
    return InvalidRequestError(f"cannot fetch sysview for path {go_quote('auth/' + path)}")
