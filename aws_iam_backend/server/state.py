"""Open the server's shared state from its configuration: storage, seal and cache.

:func:`open_state` is what every serving process (and the ``storage`` commands) calls:
it opens ``[storage]``, wraps it in the ``[seal]`` when one is configured, refuses a
sealed store opened without the seal, and connects ``[cache]``. Failures are one-line
:class:`StateError` messages that name the store but never a password or key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import attrs

from aws_iam_backend.errors import BackendError
from aws_iam_backend.io.protocols import AsyncStorage, Storage
from aws_iam_backend.io.seal import AesGcmSeal, is_sealed, load_seal
from aws_iam_backend.io.storage import POSTGRES_SCHEMES, open_async_storage, open_storage
from aws_iam_backend.io.storage._async.sealed import AsyncSealedStorage
from aws_iam_backend.io.storage._sync.sealed import SealedStorage
from aws_iam_backend.io.storage.migrate import copy_documents, reseal
from aws_iam_backend.server.config import ServerConfig
from aws_iam_backend.server.mounts import AsyncSharedCache, SharedCache

# A document every server writes at first start (the cluster ID): the probe for "sealed".
PROBE_KEY = "sys/cluster"
SQLITE_SCHEME = "sqlite:///"


class StateError(Exception):
    """The state cannot be opened; the message says which part and why."""


@attrs.frozen
class State:
    """What a serving process works on. ``raw`` is the store under the seal."""

    storage: Storage
    raw: Storage
    cache: SharedCache | None = None
    seal: AesGcmSeal | None = None

    def close(self) -> None:
        """Close the store's and the cache's connections."""
        for resource in (self.raw, self.cache):
            close = getattr(resource, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()


def open_seal(config: ServerConfig, environ: Mapping[str, str]) -> AesGcmSeal | None:
    """The ``[seal]`` of ``config``, or None when it has none."""
    if config.seal_key_file is None and config.seal_key_env is None:
        return None
    try:
        return load_seal(config.seal_key_file, config.seal_key_env, environ)
    except ValueError as exc:
        raise StateError(f"seal: {exc}") from None


def open_raw_storage(url: str) -> Storage:
    """The store at ``url``, unsealed; :class:`StateError` if it cannot be opened."""
    try:
        return open_storage(url)
    except ValueError as exc:
        raise StateError(f"storage: {exc}") from None
    except BackendError as exc:
        raise StateError(exc.message) from None


def _in_file(url: str) -> str:
    """`` in <path>`` for a SQLite store, naming its file in a message; ``""`` for any
    other store (a PostgreSQL URL may hold a password)."""
    return f" in {url.removeprefix(SQLITE_SCHEME)}" if url.startswith(SQLITE_SCHEME) else ""


def open_state(config: ServerConfig, environ: Mapping[str, str]) -> State:
    """Open ``[storage]``, ``[seal]`` and ``[cache]`` of ``config``."""
    seal = open_seal(config, environ)
    raw = open_raw_storage(config.storage_url)
    try:
        storage: Storage = raw if seal is None else SealedStorage(raw, seal)
        if seal is None:
            probe = raw.read(PROBE_KEY)
            if probe is not None and is_sealed(probe.value):
                raise StateError(
                    f"storage: the stored data{_in_file(config.storage_url)} is sealed; "
                    "configure [seal]"
                )
        else:
            storage.read(PROBE_KEY)  # the right key? (fails here, not on the first login)
        cache = _open_cache(config.cache_url, config.cache_prefix) if config.cache_url else None
    except BackendError as exc:
        State(raw, raw).close()
        raise StateError(exc.message) from None
    except StateError:
        State(raw, raw).close()
        raise
    return State(storage=storage, raw=raw, cache=cache, seal=seal)


@attrs.frozen
class AsyncState:
    """What a serving process's event loop works on: the same stores, async."""

    storage: AsyncStorage
    raw: AsyncStorage
    cache: AsyncSharedCache | None = None

    async def aclose(self) -> None:
        """Close the store's and the cache's connections."""
        for resource in (self.raw, self.cache):
            close = getattr(resource, "aclose", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    await close()


def open_async_state(config: ServerConfig, environ: Mapping[str, str]) -> AsyncState:
    """``[storage]``, ``[seal]`` and ``[cache]`` for the event loop. Opens no connection:
    run :func:`open_state` first to check them (it gives the one-line errors); the async
    stores connect on first use."""
    seal = open_seal(config, environ)
    raw = open_async_storage(config.storage_url)
    storage: AsyncStorage = raw if seal is None else AsyncSealedStorage(raw, seal)
    cache = None
    if config.cache_url:
        from aws_iam_backend.io.cache import open_async_cache

        cache = open_async_cache(config.cache_url, prefix=config.cache_prefix)
    return AsyncState(storage=storage, raw=raw, cache=cache)


def _open_cache(url: str, prefix: str) -> SharedCache:
    try:
        from aws_iam_backend.io.cache import open_cache
    except ImportError:
        raise StateError(
            "cache: Redis needs redis-py: pip install 'aws_iam_backend[redis]'"
        ) from None
    try:
        cache = open_cache(url, prefix=prefix)
        cache.ping()
    except ValueError as exc:
        raise StateError(f"cache: {exc}") from None
    return cache


def migrate_storage(from_url: str, to_url: str, seal: AesGcmSeal | None) -> int:
    """Copy every document from the store at ``from_url`` into the empty one at ``to_url``.

    With ``seal``, a sealed source is read through it and the target is written sealed;
    without, a sealed source is refused and so is a PostgreSQL target (which must be
    sealed). Returns how many documents were copied.
    """
    if seal is None and to_url.startswith(POSTGRES_SCHEMES):
        raise StateError("migrate: a postgresql target must be sealed: pass a seal key")
    source = open_raw_storage(from_url)
    try:
        target = open_raw_storage(to_url)
    except StateError:
        State(source, source).close()
        raise
    try:
        probe = source.read(PROBE_KEY)
        sealed = probe is not None and is_sealed(probe.value)
        if sealed and seal is None:
            raise StateError("migrate: the source is sealed: pass its seal key")
        reader: Storage = SealedStorage(source, seal) if sealed and seal else source
        writer: Storage = SealedStorage(target, seal) if seal else target
        return copy_documents(reader, writer)
    except ValueError as exc:
        raise StateError(f"migrate: {exc}") from None
    except BackendError as exc:
        raise StateError(f"migrate: {exc.message}") from None
    finally:
        State(source, source).close()
        State(target, target).close()


def reseal_storage(config: ServerConfig, environ: Mapping[str, str]) -> int:
    """Re-encrypt every document of ``config``'s store under its seal's active key."""
    seal = open_seal(config, environ)
    if seal is None:
        raise StateError("reseal: the configuration has no [seal]")
    raw = open_raw_storage(config.storage_url)
    try:
        return reseal(raw, seal)
    except BackendError as exc:
        raise StateError(f"reseal: {exc.message}") from None
    finally:
        State(raw, raw).close()
