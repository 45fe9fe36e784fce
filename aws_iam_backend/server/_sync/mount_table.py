# Generated from ../_async/mount_table.py by scripts/unasync.py: do not edit.
"""The mount table's state: which backend serves each mount, kept in storage (see
:mod:`..mounts` for the table's documents)."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from aws_iam_backend.drivers._sync.backend import Backend
from aws_iam_backend.drivers._sync.claims import StorageReplayCache
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer
from aws_iam_backend.drivers.replay import ReplayCache
from aws_iam_backend.drivers.shapes import BackendSettings
from aws_iam_backend.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from aws_iam_backend.io.clock import Clock
from aws_iam_backend.io.concurrency import Lock
from aws_iam_backend.io.protocols import Storage, Check, Document, Operation, Put
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.cached import uncached
from aws_iam_backend.io.storage._sync.prefixed import PrefixedStorage
from aws_iam_backend.server.mounts import (
    DEFAULT_TOKEN_MOUNT,
    MOUNT_TYPE,
    MOUNTS_KEY,
    TOKEN_MOUNT,
    SharedCache,
    Mount,
    lease_ttls,
    mount_path,
    parse_table,
    parse_token_mount,
    parse_tune,
    table_document,
    ttl_field,
    tune_not_found,
    tuning_data,
    tuning_not_found,
)
from aws_iam_backend.vault.tokens import TokenRecord, TokenSpec

BackendFactory = Callable[..., Backend]


_ISSUE_ATTEMPTS = 8


class _MountIssuer:
    """The shared issuer as one mount's backend sees it: no token outlives its mount, and
    none outlives the mount's max lease TTL as it is when the token is committed.

    A token's commit requires the mount table to be at the version this process last
    adopted (a :class:`~aws_iam_backend.io.protocols.Check`, held until the commit ends).
    If the table moved, the mount is looked up past the cache: gone (or replaced), the
    login is refused and nothing was issued; still there (perhaps tuned), the token's
    lease is capped at the mount's current max lease TTL and the commit is tried again on
    the current version. A disable commits the table first and then revokes every token
    of the mount, so a token committed before it is revoked, and one after it cannot
    commit. A renewal reads the mount past the cache and is capped the same way, so a
    tune that lowers the max holds at once in every process; other changes of a tune
    hold once a process adopts the new table (within the cache's interval)."""

    def __init__(self, issuer: StoreTokenIssuer, table: MountTable, mount: Mount) -> None:
        self._issuer = issuer
        self._table = table
        self._mount = mount

    def issue(self, spec: TokenSpec) -> TokenRecord:
        version = self._table.adopted_version
        for _ in range(_ISSUE_ATTEMPTS):
            if version < 1:  # no table adopted yet: read it
                version, spec = self._current(spec)
            try:
                return self._issuer.issue(
                    spec, guard=Check(MOUNTS_KEY, version, absolute=True)
                )
            except ConflictError:
                version, spec = self._current(spec)
        raise InternalError("storage error: the mount table keeps changing; retry")

    def _limit(self) -> tuple[int, int] | None:
        """The stored table's version and this mount's max lease TTL in it, or None if
        the mount is gone."""
        current = self._table.mounted(self._mount)
        if current is None:
            return None
        version, mount = current
        return version, self._table.lease_ttls(mount)[1]

    def _current(self, spec: TokenSpec) -> tuple[int, TokenSpec]:
        """The stored table's version and ``spec`` capped at the mount's max in it; 404
        (nothing issued) if the mount is gone."""
        found = self._limit()
        if found is None:
            raise NotFoundError(f'no handler for route "auth/{self._mount.path}login"')
        version, limit = found
        if max(spec.ttl, spec.max_ttl, spec.period) <= limit:
            return version, spec
        capped = attrs.evolve(
            spec,
            ttl=min(spec.ttl, limit),
            max_ttl=min(spec.max_ttl, limit),
            period=min(spec.period, limit),
        )
        return version, capped

    def lookup(self, token: str) -> TokenRecord | None:
        return self._issuer.lookup(token)

    def lookup_accessor(self, accessor: str) -> TokenRecord | None:
        return self._issuer.lookup_accessor(accessor)

    def extend(
        self,
        token: str,
        *,
        ttl: int,
        now: datetime,
        max_ttl: int | None = None,
        period: int | None = None,
    ) -> TokenRecord:
        found = self._limit()
        if found is None:  # the mount was disabled: its tokens are being revoked
            raise PermissionDeniedError()
        limit = found[1]
        return self._issuer.extend(
            token,
            ttl=min(ttl, limit),
            now=now,
            max_ttl=None if max_ttl is None else min(max_ttl or limit, limit),
            period=None if period is None else min(period, limit),
        )

    def revoke(self, token: str) -> None:
        self._issuer.revoke(token)

    def revoke_accessor(self, accessor: str) -> None:
        self._issuer.revoke_accessor(accessor)

    def use(self, token: str) -> TokenRecord | None:
        return self._issuer.use(token)


class MountTable:
    """Enabled mounts and their backends; changes are conditional writes to storage.

    ``issuer`` is shared by every mount, so a token from any mount works with the
    token endpoints and records its mount in ``TokenRecord.mount``. ``storage`` is
    normally a :class:`~aws_iam_backend.io.storage._sync.cached.CachedStorage`: the table is
    re-read from its cache on each request and backends are rebuilt only when the
    stored table's version moved, so an enable, disable or tune on any process holds on
    every process within the cache's interval (a tune's lowered max lease TTL at once,
    see :class:`_MountIssuer`). ``backend_options`` are further
    keywords for ``backend_factory`` (the audit sink). Signature and nonce claims are
    server-wide, not per mount: in ``cache`` when given, else in ``storage``; so are
    rate limits (per mount) when ``cache`` is given, else they are per process.
    """

    def __init__(
        self,
        *,
        storage: Storage,
        issuer: StoreTokenIssuer,
        settings: BackendSettings,
        backend_factory: BackendFactory,
        backend_options: Mapping[str, Any] | None = None,
        cache: SharedCache | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._options = dict(backend_options or {})
        self._cache = cache
        self._replay = (
            cache.replay_cache()
            if cache is not None
            else StorageReplayCache(storage, clock=clock)
        )
        self._storage = storage
        self._issuer = issuer
        self._settings = settings
        self._factory = backend_factory
        self._lock = Lock()  # serialises rebuilds only
        # Replaced whole (one assignment) so a reader never sees parts of two tables.
        self._adopted = _Adopted(-1, {}, {}, DEFAULT_TOKEN_MOUNT)

    def _refresh(self) -> None:
        """Adopt the stored mount table if its version moved (rebuilding the backends of
        mounts whose lease TTLs changed, and of new mounts)."""
        doc = self._storage.read(MOUNTS_KEY)
        if (0 if doc is None else doc.version) == self._adopted.version:
            return
        with self._lock:
            doc = self._storage.read(MOUNTS_KEY)
            version = 0 if doc is None else doc.version
            adopted = self._adopted
            if version == adopted.version:
                return
            mounts = parse_table(doc)
            backends = {
                p: adopted.backends[p]
                if _same_backend(adopted.mounts.get(p), m) and p in adopted.backends
                else self._backend(m)
                for p, m in mounts.items()
            }
            self._adopted = _Adopted(version, mounts, backends, parse_token_mount(doc))

    def _backend(self, mount: Mount) -> Backend:
        default_ttl, max_ttl = self.lease_ttls(mount)
        settings = attrs.evolve(
            self._settings, mount=mount.path, default_ttl=default_ttl, max_ttl=max_ttl
        )
        options = dict(self._options)
        if self._cache is not None:
            options["rate_limiter"] = self._cache.rate_limiter(settings.rate_limits, mount.uuid)
        return self._factory(
            storage=PrefixedStorage(self._storage, f"auth/{mount.uuid}/"),
            issuer=_MountIssuer(self._issuer, self, mount),
            settings=settings,
            replay_cache=self._replay,
            **options,
        )

    @property
    def replay_cache(self) -> ReplayCache:
        """The server-wide claims of signatures and nonces."""
        return self._replay

    @property
    def adopted_version(self) -> int:
        """The version of the stored table this process's mounts were built from."""
        return self._adopted.version

    def lease_ttls(self, mount: Mount) -> tuple[int, int]:
        """``mount``'s effective default and max lease TTLs (the server's where it has none)."""
        return lease_ttls(mount, self._settings.default_ttl, self._settings.max_ttl)

    def mounted(self, mount: Mount) -> tuple[int, Mount] | None:
        """The stored table's version and ``mount`` as it is in it right now (read past any
        cache; tuned perhaps), or None if that mount (the same UUID) is not enabled."""
        document = uncached(self._storage).read(MOUNTS_KEY)
        current = None if document is None else parse_table(document).get(mount.path)
        if document is None or current is None or current.uuid != mount.uuid:
            return None
        return document.version, current

    def issue_token(self, build: Callable[[int, int], TokenSpec]) -> TokenRecord:
        """Issue a ``token/`` mount token: ``build(default_ttl, max_ttl)`` makes its spec
        from the mount's effective TTLs, and the commit requires the table they came from
        (if it moved, as a tune of ``token/`` moves it, the mount is read again and the
        spec built again)."""
        fresh = False
        for _ in range(_ISSUE_ATTEMPTS):
            version, mount = self.token_mount(fresh=fresh)
            spec = build(*self.lease_ttls(mount))
            try:
                return self._issuer.issue(
                    spec, guard=Check(MOUNTS_KEY, version, absolute=True)
                )
            except ConflictError:
                fresh = True
        raise InternalError("storage error: the mount table keeps changing; retry")

    def token_mount(self, *, fresh: bool = False) -> tuple[int, Mount]:
        """The built-in ``token/`` mount and the table version it comes from: this
        process's adopted table, or (``fresh``) the stored one read past any cache. A
        missing table is created empty first, so a token's commit can check its version."""
        if not fresh:
            self._refresh()
            adopted = self._adopted
            if adopted.version >= 1:
                return adopted.version, adopted.token
        document = uncached(self._storage).read(MOUNTS_KEY)
        if document is None:
            ops.create(self._storage, MOUNTS_KEY, table_document({}))
            document = uncached(self._storage).read(MOUNTS_KEY)
            if document is None:  # pragma: no cover - the table is never deleted
                raise InternalError("storage error: the mount table is missing; retry")
        return document.version, parse_token_mount(document)

    def backend(self, path: str) -> Backend | None:
        """The backend mounted exactly at ``path`` (``aws/``), or None."""
        self._refresh()
        return self._adopted.backends.get(path)

    def backends(self) -> dict[str, Backend]:
        """Every enabled mount's backend, by mount path (``aws/``)."""
        self._refresh()
        return dict(self._adopted.backends)

    def resolve(self, rest: str) -> tuple[Backend, str] | None:
        """For ``rest`` (what follows ``/v1/auth/``): the longest matching mount's backend
        and the path relative to it."""
        self._refresh()
        backends = self._adopted.backends
        for path in sorted(backends, key=len, reverse=True):
            if rest.startswith(path) or rest == path[:-1]:
                return backends[path], rest[len(path) :]
        return None

    def describe(self) -> dict[str, Any]:
        """Every mount as ``GET /v1/sys/auth`` shows it, the built-in ``token/`` included."""
        self._refresh()
        adopted = self._adopted
        listing = {p: m.describe() for p, m in sorted(adopted.mounts.items())}
        listing[TOKEN_MOUNT] = adopted.token.describe()
        return listing

    def tuning(self, path: str) -> dict[str, Any]:
        """``GET /v1/sys/auth/<path>/tune``: the mount's description and effective TTLs."""
        path = mount_path(path)
        self._refresh()
        adopted = self._adopted
        mount = adopted.token if path == TOKEN_MOUNT else adopted.mounts.get(path)
        if mount is None:
            raise tuning_not_found(path)
        return tuning_data(mount, self._settings.default_ttl, self._settings.max_ttl)

    def tune(self, path: str, data: Mapping[str, Any]) -> tuple[str, ...]:
        """``POST /v1/sys/auth/<path>/tune``: change the mount's ``description``,
        ``default_lease_ttl`` and ``max_lease_ttl``; returns warnings.

        A conditional write of the table, checked against the table it is written over
        (as enable and disable are): of two tunes at once neither change is lost, and
        the TTL check sees the other's result; a tune after a disable finds no mount
        (400) and cannot bring it back. New logins and renewals on the mount get the new
        TTLs (see :class:`_MountIssuer`).
        """
        tune = parse_tune(data)
        path = mount_path(path)

        def change(doc: Document | None) -> list[Operation] | None:
            mounts, token = parse_table(doc), parse_token_mount(doc)
            if path == TOKEN_MOUNT:
                tuned = tune.apply(token)
                return None if tuned == token else [Put(MOUNTS_KEY, table_document(mounts, tuned))]
            current = mounts.get(path)
            if current is None:
                raise tune_not_found(path)
            tuned = tune.apply(current)
            if tuned == current:
                return None
            return [Put(MOUNTS_KEY, table_document({**mounts, path: tuned}, token))]

        ops.update(self._storage, MOUNTS_KEY, change)
        self._refresh()
        return tune.warnings

    def enable(self, path: str, data: Mapping[str, Any]) -> None:
        """Mount a new AWS auth method at ``path`` (``POST /v1/sys/auth/<path>``)."""
        kind = data.get("type")
        if not kind:
            raise InvalidRequestError("missing type")
        if kind != MOUNT_TYPE:
            raise InvalidRequestError(f"plugin not found in the catalog: {kind}")
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidRequestError("config must be an object")
        default_ttl = ttl_field(config, "default_lease_ttl")
        max_ttl = ttl_field(config, "max_lease_ttl")
        if default_ttl and max_ttl and default_ttl > max_ttl:
            raise InvalidRequestError("default lease TTL cannot exceed max lease TTL")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRequestError("description must be a string")
        path = mount_path(path)
        mount = Mount(
            path=path,
            uuid=str(uuid.uuid4()),
            accessor=f"auth_aws_{secrets.token_hex(4)}",
            description=description,
            default_lease_ttl=default_ttl,
            max_lease_ttl=max_ttl,
        )

        def change(doc: Document | None) -> list[Operation]:
            mounts = parse_table(doc)
            for taken in [*mounts, TOKEN_MOUNT]:
                if path.startswith(taken) or taken.startswith(path):
                    raise InvalidRequestError(f"path is already in use at {taken}")
            token = parse_token_mount(doc)
            return [Put(MOUNTS_KEY, table_document({**mounts, path: mount}, token))]

        ops.update(self._storage, MOUNTS_KEY, change)
        self._refresh()

    def ensure(self, path: str) -> None:
        """Mount ``path`` unless something is mounted there already (the dev server's ``aws/``)."""
        if self.backend(mount_path(path)) is not None:
            return
        with contextlib.suppress(InvalidRequestError):  # another process mounted it first
            self.enable(path, {"type": MOUNT_TYPE})
        if self.backend(mount_path(path)) is None:
            raise InvalidRequestError(f"cannot mount {path}: path is in use")

    def disable(self, path: str) -> None:
        """Unmount ``path``, delete its data and revoke its tokens; no error if not mounted."""
        path = mount_path(path)
        if path == TOKEN_MOUNT:
            raise InvalidRequestError("cannot disable the token auth method")
        removed: list[Mount] = []

        def change(doc: Document | None) -> list[Operation] | None:
            mounts = parse_table(doc)
            removed[:] = [mounts.pop(path)] if path in mounts else []
            token = parse_token_mount(doc)
            return [Put(MOUNTS_KEY, table_document(mounts, token))] if removed else None

        ops.update(self._storage, MOUNTS_KEY, change)
        self._refresh()
        if removed:
            PrefixedStorage(self._storage, f"auth/{removed[0].uuid}/").clear()
            self._issuer.revoke_mount(path)


@attrs.frozen
class _Adopted:
    """The stored table a process adopted: its version, AWS mounts and their backends,
    and the ``token/`` mount."""

    version: int
    mounts: dict[str, Mount]
    backends: dict[str, Backend]
    token: Mount


def _same_backend(old: Mount | None, new: Mount) -> bool:
    """True if ``new`` can keep ``old``'s backend: the same mount with the same TTLs (a
    tuned description needs no new backend)."""
    return old is not None and attrs.evolve(old, description=new.description) == new


__all__ = ["BackendFactory", "MountTable"]
