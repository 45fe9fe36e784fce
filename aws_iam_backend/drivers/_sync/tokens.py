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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import attrs

from aws_iam_backend.drivers._sync.keys import stored_key
from aws_iam_backend.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    PermissionDeniedError,
)
from aws_iam_backend.io.clock import Clock
from aws_iam_backend.io.protocols import ABSENT, Delete, JSONDict, Operation, Put, Storage
from aws_iam_backend.io.storage.ops import backoff

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
    ``sys/token-hmac-key`` is used, created race-free on first start.

    Every change to a record is a conditional write on the version just read, so
    processes and hosts sharing one store agree: a ``num_uses=N`` token is honoured at
    most N times in all, and a revocation (an unconditional delete of the record and
    its accessor, in one commit) can never be undone by a renewal or use that read the
    record before it: their write-back fails its condition and finds the token gone.
    """

    def __init__(
        self, storage: Storage, *, key: bytes | None = None, clock: Clock, attempts: int = 32
    ) -> None:
        if key is not None and len(key) < 32:
            raise ValueError("token HMAC key must be at least 32 bytes")
        self._storage = storage
        self._clock = clock
        self._key = key if key is not None else stored_key(storage, HMAC_KEY_PATH)
        self._attempts = attempts

    def _token_key(self, token: str) -> str:
        digest = hmac.new(self._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return TOKEN_PREFIX + digest.hexdigest()

    def _load(self, token_key: str) -> tuple[TokenRecord, int] | None:
        """The live record at ``token_key`` and its version; an expired one is deleted."""
        doc = self._storage.read(token_key)
        if doc is None:
            return None
        record = _from_document(doc.value)
        if self._clock.now() >= record.expire_time:
            with contextlib.suppress(InternalError):  # best effort: it is dead either way
                self._storage.commit(_deletion(token_key, record.accessor, doc.version))
            return None
        return record, doc.version

    def issue(self, spec: TokenSpec) -> TokenRecord:
        """Create a token; the returned record carries ``client_token`` (the only time it does).

        Batch tokens get no accessor, as in Vault. The record and its accessor index are
        one commit, each required to be new.
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
        operations: list[Operation] = [_put_record(token_key, record, ABSENT)]
        if record.accessor:
            index = {"token_hmac": token_key[len(TOKEN_PREFIX) :]}
            operations.append(Put(ACCESSOR_PREFIX + record.accessor, index, expect=ABSENT))
        self._storage.commit(operations)
        return attrs.evolve(record, client_token=token)

    def lookup(self, token: str) -> TokenRecord | None:
        """The live token ``token``, or None."""
        loaded = self._load(self._token_key(token))
        return None if loaded is None else loaded[0]

    def _accessor_token_key(self, accessor: str) -> str | None:
        if not _ACCESSOR_RE.fullmatch(accessor):
            return None
        index = self._storage.read(ACCESSOR_PREFIX + accessor)
        token_hmac = index.value.get("token_hmac") if index else None
        return TOKEN_PREFIX + token_hmac if isinstance(token_hmac, str) else None

    def lookup_accessor(self, accessor: str) -> TokenRecord | None:
        """The live token with this accessor, or None."""
        token_key = self._accessor_token_key(accessor)
        loaded = None if token_key is None else self._load(token_key)
        if loaded is None or not _same(loaded[0].accessor, accessor):
            return None
        return loaded[0]

    def _change(
        self, token_key: str, change: Callable[[TokenRecord], TokenRecord | None]
    ) -> tuple[TokenRecord, bool] | None:
        """Apply ``change`` to the live record until no other writer got in between.

        ``change`` returns the new record, the same record (nothing to write), or None
        to delete the token. Returns the record ``change`` produced (or the last one it
        saw) and whether it was deleted; None if the token is gone.
        """
        for attempt in range(1, self._attempts + 1):
            loaded = self._load(token_key)
            if loaded is None:
                return None
            record, version = loaded
            updated = change(record)
            if updated is record:
                return record, False
            operations = (
                _deletion(token_key, record.accessor, version)
                if updated is None
                else [_put_record(token_key, updated, version)]
            )
            try:
                self._storage.commit(operations)
            except ConflictError:
                backoff(attempt)
                continue
            return (record, True) if updated is None else (updated, False)
        raise InternalError("storage error: too many concurrent updates of one token; retry")

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

        def renew(record: TokenRecord) -> TokenRecord:
            if not record.renewable:
                raise InvalidRequestError("batch tokens cannot be renewed")
            new_max_ttl = record.max_ttl if max_ttl is None else max_ttl
            new_period = record.period if period is None else period
            expire = now + timedelta(seconds=new_period or ttl)
            caps = [record.explicit_max_ttl] + ([] if new_period else [new_max_ttl])
            for cap in caps:
                if cap > 0:
                    expire = min(expire, record.issue_time + timedelta(seconds=cap))
            granted = int((expire - now).total_seconds())
            if granted <= 0:
                raise InvalidRequestError("past the max TTL, cannot renew")
            return attrs.evolve(
                record,
                expire_time=expire,
                ttl=granted,
                max_ttl=new_max_ttl,
                period=new_period,
                last_renewal_time=now,
            )

        result = self._change(self._token_key(token), renew)
        if result is None:
            raise PermissionDeniedError()
        return result[0]

    def revoke(self, token: str) -> None:
        """Revoke ``token``; no error if it does not exist."""
        token_key = self._token_key(token)
        doc = self._storage.read(token_key)
        if doc is not None:
            self._storage.commit(_deletion(token_key, str(doc.value.get("accessor", ""))))

    def revoke_accessor(self, accessor: str) -> None:
        """Revoke the token with this accessor; no error if there is none."""
        token_key = self._accessor_token_key(accessor)
        if token_key is None:
            return
        doc = self._storage.read(token_key)
        if doc is not None and _same(str(doc.value.get("accessor", "")), accessor):
            self._storage.commit(_deletion(token_key, accessor))
        else:
            self._storage.commit([Delete(ACCESSOR_PREFIX + accessor)])

    def use(self, token: str) -> TokenRecord | None:
        """:meth:`lookup`, consuming one use of a limited-use token (revoked after its last).

        The returned record's ``num_uses`` is the count left; after the last use
        it is 0 and the token is already revoked.
        """

        def spend(record: TokenRecord) -> TokenRecord | None:
            if record.num_uses == 0:  # unlimited
                return record
            if record.num_uses == 1:
                return None
            return attrs.evolve(record, num_uses=record.num_uses - 1)

        result = self._change(self._token_key(token), spend)
        if result is None:
            return None
        record, deleted = result
        return attrs.evolve(record, num_uses=0) if deleted else record

    def revoke_mount(self, mount: str) -> int:
        """Revoke every token issued by ``mount`` (a disabled mount); returns how many."""
        revoked = 0
        for name in self._storage.list(TOKEN_PREFIX):
            doc = self._storage.read(TOKEN_PREFIX + name)
            if doc is not None and doc.value.get("mount") == mount:
                self._storage.commit(
                    _deletion(TOKEN_PREFIX + name, str(doc.value.get("accessor", "")))
                )
                revoked += 1
        return revoked

    def tidy(self, *, now: datetime | None = None, batch: int = 500) -> int:
        """Delete expired tokens (and their accessors), by expiry index, ``batch`` at a time.

        A token renewed after it was found is left alone (its delete is conditional).
        Returns how many were deleted.
        """
        cutoff = (now or self._clock.now()).timestamp()
        removed = 0
        while True:
            due = self._storage.expired(TOKEN_PREFIX, cutoff, batch)
            for doc in due:
                accessor = str(doc.value.get("accessor", ""))
                try:
                    self._storage.commit(_deletion(doc.key, accessor, doc.version))
                except ConflictError:
                    continue
                removed += 1
            if len(due) < batch:
                return removed


def _put_record(token_key: str, record: TokenRecord, expect: int) -> Put:
    return Put(
        token_key, _to_document(record), expect=expect, expires_at=record.expire_time.timestamp()
    )


def _deletion(token_key: str, accessor: str, version: int | None = None) -> list[Operation]:
    """Delete the record (at ``version``, or whatever it is) and its accessor, in one commit."""
    operations: list[Operation] = [Delete(token_key, expect=version)]
    if accessor:
        operations.append(Delete(ACCESSOR_PREFIX + accessor))
    return operations


__all__ = [
    "StoreTokenIssuer",
    "TokenIssuer",
    "TokenRecord",
    "TokenSpec",
    "rfc3339",
]
