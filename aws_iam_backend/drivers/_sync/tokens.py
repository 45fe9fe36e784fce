# Generated from ../_async/tokens.py by scripts/unasync.py: do not edit.
"""Token issuing: the :class:`TokenIssuer` protocol and the storage-backed default.

The HMAC key is given, or generated once and kept at ``sys/token-hmac-key`` (read on
first use) so tokens survive restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from aws_iam_backend.drivers._sync.keys import stored_key
from aws_iam_backend.drivers.metrics import (
    EXPIRED,
    ISSUED,
    NO_METRICS,
    RENEWED,
    REVOKED,
    Metrics,
)
from aws_iam_backend.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    PermissionDeniedError,
)
from aws_iam_backend.io.clock import Clock
from aws_iam_backend.io.protocols import ABSENT, Storage, Check, Delete, Operation, Put
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.vault.tokens import (
    ACCESSOR_PREFIX,
    ACCESSOR_RE,
    HMAC_KEY_PATH,
    TOKEN_PREFIX,
    TokenRecord,
    TokenSpec,
    deletion,
    from_document,
    put_record,
    same,
    utc,
)


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


class StoreTokenIssuer:
    """The :class:`TokenIssuer` keeping tokens in a :class:`Storage`, keyed by their HMAC.

    ``key`` (at least 32 bytes) is the HMAC key; without it the key at
    ``sys/token-hmac-key`` is used, created race-free on first start.

    Every change to a record is a conditional write on the version just read, so
    processes and hosts sharing one store agree: a ``num_uses=N`` token is honoured at
    most N times in all, and a revocation (an unconditional delete of the record and
    its accessor, in one commit) can never be undone by a renewal or use that read the
    record before it: their write-back fails its condition and finds the token gone.

    ``metrics`` hears of each token issued, renewed, revoked (a limited-use token's last
    use included) and removed by :meth:`tidy` once expired.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        key: bytes | None = None,
        clock: Clock,
        attempts: int = 32,
        metrics: Metrics | None = None,
    ) -> None:
        if key is not None and len(key) < 32:
            raise ValueError("token HMAC key must be at least 32 bytes")
        self._metrics: Metrics = metrics if metrics is not None else NO_METRICS
        self._storage = storage
        self._clock = clock
        self._key = key
        self._attempts = attempts

    def _token_key(self, token: str) -> str:
        if self._key is None:
            self._key = stored_key(self._storage, HMAC_KEY_PATH)
        digest = hmac.new(self._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return TOKEN_PREFIX + digest.hexdigest()

    def _load(self, token_key: str) -> tuple[TokenRecord, int] | None:
        """The live record at ``token_key`` and its version; an expired one is deleted."""
        doc = self._storage.read(token_key)
        if doc is None:
            return None
        record = from_document(doc.value)
        if self._clock.now() >= record.expire_time:
            with contextlib.suppress(InternalError):  # best effort: it is dead either way
                self._storage.commit(deletion(token_key, record.accessor, doc.version))
            return None
        return record, doc.version

    def issue(self, spec: TokenSpec, *, guard: Check | None = None) -> TokenRecord:
        """Create a token; the returned record carries ``client_token`` (the only time it does).

        Batch tokens get no accessor, as in Vault. The record and its accessor index are
        one commit, each required to be new; with ``guard``, that commit also requires the
        guarded document's version (:class:`ConflictError` if it moved: nothing issued).
        """
        batch = spec.token_type == "batch"
        token = ("hvb." if batch else "hvs.") + secrets.token_urlsafe(32)
        record = TokenRecord(
            client_token=token,
            # Hex: never starts with "-", which a command line would read as a flag.
            accessor="" if batch else secrets.token_hex(16),
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
            path=spec.path,
            orphan=spec.orphan,
            renewable=spec.renewable and not batch,
        )
        token_key = self._token_key(token)
        operations: list[Operation] = [put_record(token_key, record, ABSENT)]
        if record.accessor:
            index = {"token_hmac": token_key[len(TOKEN_PREFIX) :]}
            operations.append(Put(ACCESSOR_PREFIX + record.accessor, index, expect=ABSENT))
        if guard is not None:
            operations.append(guard)
        self._storage.commit(operations)
        self._metrics.token(ISSUED)
        return record

    def lookup(self, token: str) -> TokenRecord | None:
        """The live token ``token``, or None."""
        loaded = self._load(self._token_key(token))
        return None if loaded is None else loaded[0]

    def _accessor_token_key(self, accessor: str) -> str | None:
        if not ACCESSOR_RE.fullmatch(accessor):
            return None
        index = self._storage.read(ACCESSOR_PREFIX + accessor)
        token_hmac = index.value.get("token_hmac") if index else None
        return TOKEN_PREFIX + token_hmac if isinstance(token_hmac, str) else None

    def lookup_accessor(self, accessor: str) -> TokenRecord | None:
        """The live token with this accessor, or None."""
        token_key = self._accessor_token_key(accessor)
        loaded = None if token_key is None else self._load(token_key)
        if loaded is None or not same(loaded[0].accessor, accessor):
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
                deletion(token_key, record.accessor, version)
                if updated is None
                else [put_record(token_key, updated, version)]
            )
            try:
                self._storage.commit(operations)
            except ConflictError:
                ops.backoff(attempt)
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
        now = utc(now)

        def renew(record: TokenRecord) -> TokenRecord:
            if record.token_type == "batch":
                raise InvalidRequestError("batch tokens cannot be renewed")
            if not record.renewable:
                raise InvalidRequestError("lease is not renewable")
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
        self._metrics.token(RENEWED)
        return result[0]

    def revoke(self, token: str) -> None:
        """Revoke ``token``; no error if it does not exist."""
        token_key = self._token_key(token)
        doc = self._storage.read(token_key)
        if doc is not None:
            self._storage.commit(deletion(token_key, str(doc.value.get("accessor", ""))))
            self._metrics.token(REVOKED)

    def revoke_accessor(self, accessor: str) -> None:
        """Revoke the token with this accessor; no error if there is none."""
        token_key = self._accessor_token_key(accessor)
        if token_key is None:
            return
        doc = self._storage.read(token_key)
        if doc is not None and same(str(doc.value.get("accessor", "")), accessor):
            self._storage.commit(deletion(token_key, accessor))
            self._metrics.token(REVOKED)
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
        if deleted:
            self._metrics.token(REVOKED)
            return attrs.evolve(record, num_uses=0)
        return record

    def revoke_mount(self, mount: str) -> int:
        """Revoke every token issued by ``mount`` (a disabled mount); returns how many."""
        revoked = 0
        for name in self._storage.list(TOKEN_PREFIX):
            doc = self._storage.read(TOKEN_PREFIX + name)
            if doc is not None and doc.value.get("mount") == mount:
                self._storage.commit(
                    deletion(TOKEN_PREFIX + name, str(doc.value.get("accessor", "")))
                )
                self._metrics.token(REVOKED)
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
                    self._storage.commit(deletion(doc.key, accessor, doc.version))
                except ConflictError:
                    continue
                self._metrics.token(EXPIRED)
                removed += 1
            if len(due) < batch:
                return removed


__all__ = ["StoreTokenIssuer", "TokenIssuer"]
