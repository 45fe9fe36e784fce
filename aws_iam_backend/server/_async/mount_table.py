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

from aws_iam_backend.drivers._async.backend import AsyncBackend
from aws_iam_backend.drivers._async.claims import AsyncStorageReplayCache
from aws_iam_backend.drivers._async.tokens import AsyncStoreTokenIssuer
from aws_iam_backend.drivers.replay import AsyncReplayCache
from aws_iam_backend.drivers.shapes import BackendSettings
from aws_iam_backend.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
)
from aws_iam_backend.io.clock import Clock
from aws_iam_backend.io.concurrency import AsyncLock
from aws_iam_backend.io.protocols import AsyncStorage, Check, Document, Operation, Put
from aws_iam_backend.io.storage._async import ops
from aws_iam_backend.io.storage._async.cached import uncached
from aws_iam_backend.io.storage._async.prefixed import AsyncPrefixedStorage
from aws_iam_backend.server.mounts import (
    MOUNT_TYPE,
    MOUNTS_KEY,
    TOKEN_MOUNT,
    AsyncSharedCache,
    Mount,
    describe_entry,
    mount_path,
    parse_table,
    table_document,
    ttl_field,
)
from aws_iam_backend.vault.tokens import TokenRecord, TokenSpec

AsyncBackendFactory = Callable[..., AsyncBackend]


_ISSUE_ATTEMPTS = 8


class _MountIssuer:
    """The shared issuer as one mount's backend sees it: no token outlives its mount.

    A token's commit requires the mount table to be at the version this process last
    adopted (a :class:`~aws_iam_backend.io.protocols.Check`, held until the commit ends).
    If the table moved, the mount is looked up past the cache: gone (or replaced), the
    login is refused and nothing was issued; still there, the commit is tried again on
    the current version. A disable commits the table first and then revokes every token
    of the mount, so a token committed before it is revoked, and one after it cannot
    commit."""

    def __init__(self, issuer: AsyncStoreTokenIssuer, table: AsyncMountTable, mount: Mount) -> None:
        self._issuer = issuer
        self._table = table
        self._mount = mount

    async def issue(self, spec: TokenSpec) -> TokenRecord:
        version = self._table.adopted_version
        for _ in range(_ISSUE_ATTEMPTS):
            if version < 1:  # no table adopted yet: read it
                version = await self._mounted_version()
            try:
                return await self._issuer.issue(
                    spec, guard=Check(MOUNTS_KEY, version, absolute=True)
                )
            except ConflictError:
                version = await self._mounted_version()
        raise InternalError("storage error: the mount table keeps changing; retry")

    async def _mounted_version(self) -> int:
        current = await self._table.mounted_version(self._mount)
        if current is None:
            raise NotFoundError(f'no handler for route "auth/{self._mount.path}login"')
        return current

    async def lookup(self, token: str) -> TokenRecord | None:
        return await self._issuer.lookup(token)

    async def lookup_accessor(self, accessor: str) -> TokenRecord | None:
        return await self._issuer.lookup_accessor(accessor)

    async def extend(
        self,
        token: str,
        *,
        ttl: int,
        now: datetime,
        max_ttl: int | None = None,
        period: int | None = None,
    ) -> TokenRecord:
        return await self._issuer.extend(token, ttl=ttl, now=now, max_ttl=max_ttl, period=period)

    async def revoke(self, token: str) -> None:
        await self._issuer.revoke(token)

    async def revoke_accessor(self, accessor: str) -> None:
        await self._issuer.revoke_accessor(accessor)

    async def use(self, token: str) -> TokenRecord | None:
        return await self._issuer.use(token)


class AsyncMountTable:
    """Enabled mounts and their backends; changes are conditional writes to storage.

    ``issuer`` is shared by every mount, so a token from any mount works with the
    token endpoints and records its mount in ``TokenRecord.mount``. ``storage`` is
    normally a :class:`~aws_iam_backend.io.storage._async.cached.AsyncCachedStorage`: the table is
    re-read from its cache on each request and backends are rebuilt only when the
    stored table's version moved, so an enable or disable on any process holds on
    every process within the cache's interval. ``backend_options`` are further
    keywords for ``backend_factory`` (the audit sink). Signature and nonce claims are
    server-wide, not per mount: in ``cache`` when given, else in ``storage``; so are
    rate limits (per mount) when ``cache`` is given, else they are per process.
    """

    def __init__(
        self,
        *,
        storage: AsyncStorage,
        issuer: AsyncStoreTokenIssuer,
        settings: BackendSettings,
        backend_factory: AsyncBackendFactory,
        backend_options: Mapping[str, Any] | None = None,
        cache: AsyncSharedCache | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._options = dict(backend_options or {})
        self._cache = cache
        self._replay = (
            cache.replay_cache()
            if cache is not None
            else AsyncStorageReplayCache(storage, clock=clock)
        )
        self._storage = storage
        self._issuer = issuer
        self._settings = settings
        self._factory = backend_factory
        self._lock = AsyncLock()  # serialises rebuilds only
        self._version = -1
        self._mounts: dict[str, Mount] = {}
        self._backends: dict[str, AsyncBackend] = {}

    async def _refresh(self) -> None:
        """Adopt the stored mount table if its version moved (rebuilding changed mounts)."""
        doc = await self._storage.read(MOUNTS_KEY)
        if (0 if doc is None else doc.version) == self._version:
            return
        async with self._lock:
            doc = await self._storage.read(MOUNTS_KEY)
            version = 0 if doc is None else doc.version
            if version == self._version:
                return
            mounts = parse_table(doc)
            backends = {
                p: self._backends[p]
                if self._mounts.get(p) == m and p in self._backends
                else self._backend(m)
                for p, m in mounts.items()
            }
            self._mounts, self._backends, self._version = mounts, backends, version

    def _backend(self, mount: Mount) -> AsyncBackend:
        settings = attrs.evolve(
            self._settings,
            mount=mount.path,
            default_ttl=mount.default_lease_ttl or self._settings.default_ttl,
            max_ttl=mount.max_lease_ttl or self._settings.max_ttl,
        )
        options = dict(self._options)
        if self._cache is not None:
            options["rate_limiter"] = self._cache.rate_limiter(settings.rate_limits, mount.uuid)
        return self._factory(
            storage=AsyncPrefixedStorage(self._storage, f"auth/{mount.uuid}/"),
            issuer=_MountIssuer(self._issuer, self, mount),
            settings=settings,
            replay_cache=self._replay,
            **options,
        )

    @property
    def replay_cache(self) -> AsyncReplayCache:
        """The server-wide claims of signatures and nonces."""
        return self._replay

    @property
    def adopted_version(self) -> int:
        """The version of the stored table this process's mounts were built from."""
        return self._version

    async def mounted_version(self, mount: Mount) -> int | None:
        """The stored table's version if ``mount`` is enabled in it right now (read past
        any cache), else None."""
        document = await uncached(self._storage).read(MOUNTS_KEY)
        if document is None or parse_table(document).get(mount.path) != mount:
            return None
        return document.version

    async def backend(self, path: str) -> AsyncBackend | None:
        """The backend mounted exactly at ``path`` (``aws/``), or None."""
        await self._refresh()
        return self._backends.get(path)

    async def resolve(self, rest: str) -> tuple[AsyncBackend, str] | None:
        """For ``rest`` (what follows ``/v1/auth/``): the longest matching mount's backend
        and the path relative to it."""
        await self._refresh()
        backends = self._backends
        for path in sorted(backends, key=len, reverse=True):
            if rest.startswith(path) or rest == path[:-1]:
                return backends[path], rest[len(path) :]
        return None

    async def describe(self) -> dict[str, Any]:
        """Every mount as ``GET /v1/sys/auth`` shows it, the built-in ``token/`` included."""
        await self._refresh()
        listing = {p: m.describe() for p, m in sorted(self._mounts.items())}
        listing[TOKEN_MOUNT] = describe_entry(
            "token", "token based credentials", "auth_token_root", "token", 0, 0
        )
        return listing

    async def enable(self, path: str, data: Mapping[str, Any]) -> None:
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
            return [Put(MOUNTS_KEY, table_document({**mounts, path: mount}))]

        await ops.update(self._storage, MOUNTS_KEY, change)
        await self._refresh()

    async def ensure(self, path: str) -> None:
        """Mount ``path`` unless something is mounted there already (the dev server's ``aws/``)."""
        if await self.backend(mount_path(path)) is not None:
            return
        with contextlib.suppress(InvalidRequestError):  # another process mounted it first
            await self.enable(path, {"type": MOUNT_TYPE})
        if await self.backend(mount_path(path)) is None:
            raise InvalidRequestError(f"cannot mount {path}: path is in use")

    async def disable(self, path: str) -> None:
        """Unmount ``path``, delete its data and revoke its tokens; no error if not mounted."""
        path = mount_path(path)
        if path == TOKEN_MOUNT:
            raise InvalidRequestError("cannot disable the token auth method")
        removed: list[Mount] = []

        def change(doc: Document | None) -> list[Operation] | None:
            mounts = parse_table(doc)
            removed[:] = [mounts.pop(path)] if path in mounts else []
            return [Put(MOUNTS_KEY, table_document(mounts))] if removed else None

        await ops.update(self._storage, MOUNTS_KEY, change)
        await self._refresh()
        if removed:
            await AsyncPrefixedStorage(self._storage, f"auth/{removed[0].uuid}/").clear()
            await self._issuer.revoke_mount(path)


__all__ = ["AsyncBackendFactory", "AsyncMountTable"]
