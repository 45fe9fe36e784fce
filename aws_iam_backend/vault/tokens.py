"""Tokens as values: :class:`TokenSpec` (what to issue), :class:`TokenRecord` (what is
stored and looked up) and their storage documents. The issuers are in the drivers
(:class:`~aws_iam_backend.StoreTokenIssuer`, :class:`~aws_iam_backend.AsyncStoreTokenIssuer`).

Tokens are random opaque strings (``hvs.`` service, ``hvb.`` batch, 256 random bits).
The store never holds a token in clear: a token's record lives at
``token/<HMAC-SHA256(key, token) hex>`` and its accessor at ``accessor/<accessor>``
(pointing at that HMAC). Lease arithmetic happens before an issuer is called:
:class:`TokenSpec` carries the final ``ttl``, ``max_ttl``, ``explicit_max_ttl`` and ``period``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from aws_iam_backend.errors import (
    InternalError,
)
from aws_iam_backend.io.protocols import Delete, JSONDict, Operation, Put

HMAC_KEY_PATH = "sys/token-hmac-key"
TOKEN_PREFIX = "token/"
ACCESSOR_PREFIX = "accessor/"
TOKEN_TYPES = ("service", "batch")

_RECORD_VERSION = 1
ACCESSOR_RE = re.compile(r"[A-Za-z0-9_-]{32}")


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    if type(value) is tuple:  # already a tuple of exact strings: kept as it is (immutable)
        for item in value:
            if type(item) is not str:
                break
        else:
            return value
    return tuple(str(v) for v in value)


def _str_dict(value: Any) -> dict[str, str]:
    copy = dict(value)  # always a copy: the caller keeps no handle on the spec's dict
    for key, item in copy.items():
        if type(key) is not str or type(item) is not str:
            return {str(k): str(v) for k, v in copy.items()}
    return copy


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC)


def _non_negative(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0")


def same(a: str, b: str) -> bool:
    """Constant-time string equality."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def rfc3339(value: datetime) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: ``2024-05-01T12:00:00.5Z`` (trailing zeros dropped)."""
    value = utc(value)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


@attrs.frozen
class TokenSpec:
    """What to issue. Durations are whole seconds, already computed from role and mount.

    ``ttl`` (> 0) is the first lease; ``max_ttl`` caps the lifetime reached by
    renewals of non-periodic tokens; ``explicit_max_ttl`` caps every token's
    lifetime; ``period`` > 0 makes renewals reset the TTL to ``period``. 0 means unset.
    ``path`` is the creation path lookups show (empty: the mount's ``login``);
    ``orphan`` and ``renewable`` are false only for ``auth/token/create`` tokens that ask.
    """

    policies: tuple[str, ...] = attrs.field(converter=_str_tuple)
    token_policies: tuple[str, ...] = attrs.field(converter=_str_tuple)
    metadata: dict[str, str] = attrs.field(converter=_str_dict)
    internal_data: dict[str, str] = attrs.field(converter=_str_dict, repr=False)
    display_name: str
    ttl: int = attrs.field()
    max_ttl: int = attrs.field(validator=_non_negative)
    explicit_max_ttl: int = attrs.field(validator=_non_negative)
    period: int = attrs.field(validator=_non_negative)
    num_uses: int = attrs.field(validator=_non_negative)
    bound_cidrs: tuple[str, ...] = attrs.field(converter=_str_tuple)
    token_type: str = attrs.field(validator=attrs.validators.in_(TOKEN_TYPES))
    entity_id: str
    mount: str
    role_name: str
    issued_at: datetime = attrs.field(converter=utc)
    path: str = ""
    orphan: bool = True
    renewable: bool = True

    @ttl.validator
    def _check_ttl(self, _: attrs.Attribute[int], value: int) -> None:
        if value <= 0:
            raise ValueError("ttl must be > 0")


@attrs.frozen
class TokenRecord:
    """A live token as stored (never holding the token itself, except right after issue).

    ``ttl`` is the lease granted by the last issue or renewal, ``creation_ttl`` the
    first one; ``num_uses`` counts the uses left (0: unlimited). ``path``, ``orphan``
    and ``renewable`` are as in :class:`TokenSpec`.
    """

    accessor: str
    policies: tuple[str, ...]
    token_policies: tuple[str, ...]
    metadata: dict[str, str]
    internal_data: dict[str, str] = attrs.field(repr=False)
    display_name: str
    issue_time: datetime
    expire_time: datetime
    creation_ttl: int
    ttl: int
    max_ttl: int
    explicit_max_ttl: int
    period: int
    num_uses: int
    bound_cidrs: tuple[str, ...]
    token_type: str
    entity_id: str
    mount: str
    role_name: str
    last_renewal_time: datetime | None = None
    client_token: str | None = attrs.field(default=None, repr=False)
    path: str = ""
    orphan: bool = True
    # Batch tokens never are; service tokens unless created with ``renewable=false``.
    renewable: bool = attrs.field(
        default=attrs.Factory(lambda self: self.token_type == "service", takes_self=True)
    )

    def remaining(self, now: datetime) -> int:
        """Whole seconds until expiry (0 once expired)."""
        return max(0, int((self.expire_time - now).total_seconds()))

    def lookup_data(self, now: datetime) -> dict[str, Any]:
        """The ``data`` of Vault's ``auth/token/lookup-self`` for this token at ``now``.

        ``id`` is present only when the record carries ``client_token``.
        """
        data: dict[str, Any] = {
            "accessor": self.accessor,
            "creation_time": int(self.issue_time.timestamp()),
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": rfc3339(self.expire_time),
            "explicit_max_ttl": self.explicit_max_ttl,
            "issue_time": rfc3339(self.issue_time),
            "meta": dict(self.metadata) or None,
            "num_uses": self.num_uses,
            "orphan": self.orphan,
            "path": self.path or f"auth/{self.mount}login",
            "policies": list(self.policies),
            "renewable": self.renewable,
            "ttl": self.remaining(now),
            "type": self.token_type,
        }
        if self.client_token is not None:
            data["id"] = self.client_token
        if self.period:
            data["period"] = self.period
        if self.bound_cidrs:
            data["bound_cidrs"] = list(self.bound_cidrs)
        if self.last_renewal_time is not None:
            data["last_renewal"] = rfc3339(self.last_renewal_time)
            data["last_renewal_time"] = int(self.last_renewal_time.timestamp())
        return data


def to_document(record: TokenRecord) -> JSONDict:
    return {
        "version": _RECORD_VERSION,
        "accessor": record.accessor,
        "policies": list(record.policies),
        "token_policies": list(record.token_policies),
        "metadata": dict(record.metadata),
        "internal_data": dict(record.internal_data),
        "display_name": record.display_name,
        "issue_time": record.issue_time.isoformat(),
        "expire_time": record.expire_time.isoformat(),
        "creation_ttl": record.creation_ttl,
        "ttl": record.ttl,
        "max_ttl": record.max_ttl,
        "explicit_max_ttl": record.explicit_max_ttl,
        "period": record.period,
        "num_uses": record.num_uses,
        "bound_cidrs": list(record.bound_cidrs),
        "token_type": record.token_type,
        "entity_id": record.entity_id,
        "mount": record.mount,
        "role_name": record.role_name,
        "last_renewal_time": (
            None if record.last_renewal_time is None else record.last_renewal_time.isoformat()
        ),
        "path": record.path,
        "orphan": record.orphan,
        "renewable": record.renewable,
    }


def from_document(doc: JSONDict) -> TokenRecord:
    try:
        renewed = doc["last_renewal_time"]
        return TokenRecord(
            accessor=str(doc["accessor"]),
            policies=tuple(doc["policies"]),
            token_policies=tuple(doc["token_policies"]),
            metadata=_str_dict(doc["metadata"]),
            internal_data=_str_dict(doc["internal_data"]),
            display_name=str(doc["display_name"]),
            issue_time=utc(datetime.fromisoformat(doc["issue_time"])),
            expire_time=utc(datetime.fromisoformat(doc["expire_time"])),
            creation_ttl=int(doc["creation_ttl"]),
            ttl=int(doc["ttl"]),
            max_ttl=int(doc["max_ttl"]),
            explicit_max_ttl=int(doc["explicit_max_ttl"]),
            period=int(doc["period"]),
            num_uses=int(doc["num_uses"]),
            bound_cidrs=tuple(doc["bound_cidrs"]),
            token_type=str(doc["token_type"]),
            entity_id=str(doc["entity_id"]),
            mount=str(doc["mount"]),
            role_name=str(doc["role_name"]),
            last_renewal_time=None if renewed is None else utc(datetime.fromisoformat(renewed)),
            # absent from records written before tokens could be created directly
            path=str(doc.get("path", "")),
            orphan=bool(doc.get("orphan", True)),
            renewable=bool(doc.get("renewable", doc["token_type"] == "service")),
        )
    except (KeyError, TypeError, ValueError):
        raise InternalError("storage error: corrupt token record") from None


def put_record(token_key: str, record: TokenRecord, expect: int) -> Put:
    return Put(
        token_key, to_document(record), expect=expect, expires_at=record.expire_time.timestamp()
    )


def deletion(token_key: str, accessor: str, version: int | None = None) -> list[Operation]:
    """Delete the record (at ``version``, or whatever it is) and its accessor, in one commit."""
    operations: list[Operation] = [Delete(token_key, expect=version)]
    if accessor:
        operations.append(Delete(ACCESSOR_PREFIX + accessor))
    return operations


__all__ = [
    "ACCESSOR_PREFIX",
    "TOKEN_PREFIX",
    "TokenRecord",
    "TokenSpec",
    "rfc3339",
]
