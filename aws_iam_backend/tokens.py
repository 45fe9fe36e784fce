"""Token issuing: the :class:`TokenIssuer` protocol and the storage-backed default.

Tokens are random opaque strings (``hvs.`` service, ``hvb.`` batch, 256 random bits).
The store never holds a token in clear: a token's record lives at
``token/<HMAC-SHA256(key, token) hex>`` and its accessor at ``accessor/<accessor>``
(pointing at that HMAC). The HMAC key is given, or generated once and kept at
``sys/token-hmac-key`` so tokens survive restarts.

Lease arithmetic (role and mount defaults) happens before the issuer is called:
:class:`TokenSpec` carries the final ``ttl``, ``max_ttl``, ``explicit_max_ttl`` and
``period``. The issuer only applies them: expiry at issue, caps on :meth:`TokenIssuer.extend`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import attrs

from .clock import Clock
from .errors import InternalError, InvalidRequestError, PermissionDeniedError
from .interfaces import JSONDict, Storage
from .keys import stored_key

HMAC_KEY_PATH = "sys/token-hmac-key"
TOKEN_PREFIX = "token/"
ACCESSOR_PREFIX = "accessor/"
TOKEN_TYPES = ("service", "batch")

_RECORD_VERSION = 1
_ACCESSOR_RE = re.compile(r"[A-Za-z0-9_-]{32}")


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _str_dict(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(value).items()}


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC)


def _non_negative(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0")


def _same(a: str, b: str) -> bool:
    """Constant-time string equality."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def rfc3339(value: datetime) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: ``2024-05-01T12:00:00.5Z`` (trailing zeros dropped)."""
    value = _utc(value)
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
    issued_at: datetime = attrs.field(converter=_utc)

    @ttl.validator
    def _check_ttl(self, _: attrs.Attribute[int], value: int) -> None:
        if value <= 0:
            raise ValueError("ttl must be > 0")


@attrs.frozen
class TokenRecord:
    """A live token as stored (never holding the token itself, except right after issue).

    ``ttl`` is the lease granted by the last issue or renewal, ``creation_ttl`` the
    first one; ``num_uses`` counts the uses left (0: unlimited).
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

    @property
    def renewable(self) -> bool:
        """Service tokens are renewable; batch tokens are not."""
        return self.token_type == "service"

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
            "orphan": True,
            "path": f"auth/{self.mount}login",
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


class TokenIssuer(Protocol):
    """Issues, finds, renews and revokes tokens. Lookups of unknown or expired tokens give None."""

    def issue(self, spec: TokenSpec) -> TokenRecord:
        """Create a token; the returned record carries ``client_token`` (the only time it does)."""
        ...

    def lookup(self, token: str) -> TokenRecord | None:
        """The live token ``token``, or None."""
        ...

    def lookup_accessor(self, accessor: str) -> TokenRecord | None:
        """The live token with this accessor, or None."""
        ...

    def extend(
        self,
        token: str,
        *,
        ttl: int,
        now: datetime,
        max_ttl: int | None = None,
        period: int | None = None,
    ) -> TokenRecord:
        """Renew ``token`` at ``now`` for ``ttl`` seconds, within its max TTLs.

        ``max_ttl`` and ``period``, when given, replace the values stored at issue
        (renewal uses the role's current settings). Unknown or expired tokens raise
        :class:`PermissionDeniedError`; batch tokens and tokens past their max TTL
        raise :class:`InvalidRequestError`.
        """
        ...

    def revoke(self, token: str) -> None:
        """Revoke ``token``; no error if it does not exist."""
        ...

    def revoke_accessor(self, accessor: str) -> None:
        """Revoke the token with this accessor; no error if there is none."""
        ...

    def use(self, token: str) -> TokenRecord | None:
        """:meth:`lookup`, consuming one use of a limited-use token (revoked after its last)."""
        ...


def _to_document(record: TokenRecord) -> JSONDict:
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
    }


def _from_document(doc: JSONDict) -> TokenRecord:
    try:
        renewed = doc["last_renewal_time"]
        return TokenRecord(
            accessor=str(doc["accessor"]),
            policies=tuple(doc["policies"]),
            token_policies=tuple(doc["token_policies"]),
            metadata=_str_dict(doc["metadata"]),
            internal_data=_str_dict(doc["internal_data"]),
            display_name=str(doc["display_name"]),
            issue_time=_utc(datetime.fromisoformat(doc["issue_time"])),
            expire_time=_utc(datetime.fromisoformat(doc["expire_time"])),
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
            last_renewal_time=None if renewed is None else _utc(datetime.fromisoformat(renewed)),
        )
    except (KeyError, TypeError, ValueError):
        raise InternalError("storage error: corrupt token record") from None


class StoreTokenIssuer:
    """A :class:`TokenIssuer` keeping tokens in a :class:`Storage`, keyed by their HMAC.

    ``key`` (at least 32 bytes) is the HMAC key; without it the key at
    ``sys/token-hmac-key`` is used, created on first start. Processes sharing one
    store must not *first* start concurrently without a ``key`` (the store has no
    create-if-absent, so two could each create one). Use counts and renewals are
    serialised per instance, not across processes.
    """

    def __init__(self, storage: Storage, *, key: bytes | None = None, clock: Clock) -> None:
        if key is not None and len(key) < 32:
            raise ValueError("token HMAC key must be at least 32 bytes")
        self._storage = storage
        self._clock = clock
        self._key = key if key is not None else stored_key(storage, HMAC_KEY_PATH)
        self._lock = threading.Lock()

    def _token_key(self, token: str) -> str:
        digest = hmac.new(self._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return TOKEN_PREFIX + digest.hexdigest()

    def _load(self, token_key: str) -> TokenRecord | None:
        """The live record at ``token_key``; an expired one is deleted and gives None."""
        doc = self._storage.get(token_key)
        if doc is None:
            return None
        record = _from_document(doc)
        if self._clock.now() >= record.expire_time:
            with contextlib.suppress(InternalError):  # best effort: it is gone either way
                self._delete(token_key, record.accessor)
            return None
        return record

    def _delete(self, token_key: str, accessor: str) -> None:
        """Delete the record first, so the token stops working even if the index delete fails."""
        self._storage.delete(token_key)
        if accessor:
            self._storage.delete(ACCESSOR_PREFIX + accessor)

    def issue(self, spec: TokenSpec) -> TokenRecord:
        """Create a token; the returned record carries ``client_token`` (the only time it does).

        Batch tokens get no accessor, as in Vault.
        """
        batch = spec.token_type == "batch"
        token = ("hvb." if batch else "hvs.") + secrets.token_urlsafe(32)
        record = TokenRecord(
            accessor="" if batch else secrets.token_urlsafe(24),
            policies=spec.policies,
            token_policies=spec.token_policies,
            metadata=spec.metadata,
            internal_data=spec.internal_data,
            display_name=spec.display_name,
            issue_time=spec.issued_at,
            expire_time=spec.issued_at + timedelta(seconds=spec.ttl),
            creation_ttl=spec.ttl,
            ttl=spec.ttl,
            max_ttl=spec.max_ttl,
            explicit_max_ttl=spec.explicit_max_ttl,
            period=spec.period,
            num_uses=spec.num_uses,
            bound_cidrs=spec.bound_cidrs,
            token_type=spec.token_type,
            entity_id=spec.entity_id,
            mount=spec.mount,
            role_name=spec.role_name,
        )
        token_key = self._token_key(token)
        documents = {token_key: _to_document(record)}
        if record.accessor:
            documents[ACCESSOR_PREFIX + record.accessor] = {
                "token_hmac": token_key[len(TOKEN_PREFIX) :]
            }
        self._storage.put_many(documents)  # the record and its index: both or neither
        return attrs.evolve(record, client_token=token)

    def lookup(self, token: str) -> TokenRecord | None:
        """The live token ``token``, or None."""
        return self._load(self._token_key(token))

    def _accessor_token_key(self, accessor: str) -> str | None:
        if not _ACCESSOR_RE.fullmatch(accessor):
            return None
        index = self._storage.get(ACCESSOR_PREFIX + accessor)
        token_hmac = index.get("token_hmac") if index else None
        return TOKEN_PREFIX + token_hmac if isinstance(token_hmac, str) else None

    def lookup_accessor(self, accessor: str) -> TokenRecord | None:
        """The live token with this accessor, or None."""
        token_key = self._accessor_token_key(accessor)
        record = None if token_key is None else self._load(token_key)
        if record is None or not _same(record.accessor, accessor):
            return None
        return record

    def extend(
        self,
        token: str,
        *,
        ttl: int,
        now: datetime,
        max_ttl: int | None = None,
        period: int | None = None,
    ) -> TokenRecord:
        """Renew ``token`` at ``now`` for ``ttl`` seconds (``period`` if periodic).

        The new expiry is capped at ``issue_time + max_ttl`` (non-periodic tokens)
        and ``issue_time + explicit_max_ttl``; 0 means no cap. ``max_ttl`` and
        ``period``, when given, replace the stored values.
        """
        now = _utc(now)
        token_key = self._token_key(token)
        with self._lock:
            record = self._load(token_key)
            if record is None:
                raise PermissionDeniedError()
            if not record.renewable:
                raise InvalidRequestError("batch tokens cannot be renewed")
            max_ttl = record.max_ttl if max_ttl is None else max_ttl
            period = record.period if period is None else period
            expire = now + timedelta(seconds=period or ttl)
            caps = [record.explicit_max_ttl] + ([] if period else [max_ttl])
            for cap in caps:
                if cap > 0:
                    expire = min(expire, record.issue_time + timedelta(seconds=cap))
            granted = int((expire - now).total_seconds())
            if granted <= 0:
                raise InvalidRequestError("past the max TTL, cannot renew")
            record = attrs.evolve(
                record,
                expire_time=expire,
                ttl=granted,
                max_ttl=max_ttl,
                period=period,
                last_renewal_time=now,
            )
            self._storage.put(token_key, _to_document(record))
        return record

    def revoke(self, token: str) -> None:
        """Revoke ``token``; no error if it does not exist."""
        token_key = self._token_key(token)
        doc = self._storage.get(token_key)
        if doc is not None:
            self._delete(token_key, str(doc.get("accessor", "")))

    def revoke_accessor(self, accessor: str) -> None:
        """Revoke the token with this accessor; no error if there is none."""
        token_key = self._accessor_token_key(accessor)
        if token_key is None:
            return
        doc = self._storage.get(token_key)
        if doc is not None and _same(str(doc.get("accessor", "")), accessor):
            self._storage.delete(token_key)
        self._storage.delete(ACCESSOR_PREFIX + accessor)

    def use(self, token: str) -> TokenRecord | None:
        """:meth:`lookup`, consuming one use of a limited-use token (revoked after its last).

        The returned record's ``num_uses`` is the count left; after the last use
        it is 0 and the token is already revoked.
        """
        token_key = self._token_key(token)
        with self._lock:
            record = self._load(token_key)
            if record is None or record.num_uses == 0:
                return record
            record = attrs.evolve(record, num_uses=record.num_uses - 1)
            if record.num_uses == 0:
                self._delete(token_key, record.accessor)
            else:
                self._storage.put(token_key, _to_document(record))
        return record

    def tidy(self) -> int:
        """Delete every expired token and dangling accessor; returns how many tokens went."""
        removed = 0
        now = self._clock.now()
        for name in self._storage.list(TOKEN_PREFIX):
            doc = self._storage.get(TOKEN_PREFIX + name)
            if doc is not None and now >= _from_document(doc).expire_time:
                self._delete(TOKEN_PREFIX + name, str(doc.get("accessor", "")))
                removed += 1
        for accessor in self._storage.list(ACCESSOR_PREFIX):
            token_key = self._accessor_token_key(accessor)
            if token_key is None or self._storage.get(token_key) is None:
                self._storage.delete(ACCESSOR_PREFIX + accessor)
        return removed


__all__ = [
    "StoreTokenIssuer",
    "TokenIssuer",
    "TokenRecord",
    "TokenSpec",
    "rfc3339",
]
