"""The async storage wrappers (prefixed, cached, sealed) and ``open_async_storage``.

Their sync twins are generated from the same source and tested at length in
``test_cached_storage.py``, ``test_seal.py`` and ``test_storage.py``; these tests check
that the async forms await what they must and behave the same.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from aws_iam_backend.errors import InternalError
from aws_iam_backend.io.protocols import ABSENT, Delete, Put
from aws_iam_backend.io.seal import AesGcmSeal
from aws_iam_backend.io.storage import (
    AsyncMemoryStorage,
    AsyncSQLiteStorage,
    MemoryStorage,
    open_async_storage,
)
from aws_iam_backend.io.storage._async import ops
from aws_iam_backend.io.storage._async.cached import EPOCH_KEY, AsyncCachedStorage, uncached
from aws_iam_backend.io.storage._async.prefixed import AsyncPrefixedStorage
from aws_iam_backend.io.storage._async.sealed import UNSEALED_DOCUMENT, AsyncSealedStorage

KEY = os.urandom(32)


def test_prefixed_view() -> None:
    async def main() -> None:
        raw = AsyncMemoryStorage()
        view = AsyncPrefixedStorage(raw, "auth/x/")
        version = await ops.put(view, "role/a", {"v": 1}, expires_at=5.0)
        await ops.put(raw, "other/b", {})
        document = await view.read("role/a")
        assert document is not None
        assert (document.key, document.version) == ("role/a", version)
        assert await view.list("role/") == ["a"]
        assert [d.key for d in await view.expired("", 10.0, 10)] == ["role/a"]
        assert await raw.list("") == ["auth/x/role/a", "other/b"]
        await view.commit([Delete("role/a", expect=version)])
        await ops.put(view, "k", {})
        await view.clear()
        assert await raw.list("") == ["other/b"]

    asyncio.run(main())


def test_cached_reads_and_invalidation() -> None:
    async def main() -> None:
        raw = AsyncMemoryStorage()
        cached = AsyncCachedStorage(raw, cacheable=lambda key: key.startswith("role/"))
        assert uncached(cached) is raw
        assert uncached(raw) is raw
        await ops.put(cached, "role/a", {"v": 1})
        assert await ops.get(cached, "role/a") == {"v": 1}
        raw.inner.commit([Put("role/a", {"v": 2})])  # behind the cache's back, no epoch bump
        assert await ops.get(cached, "role/a") == {"v": 1}  # served from the cache
        cached.invalidate()
        assert await ops.get(cached, "role/a") == {"v": 2}
        before = await raw.read(EPOCH_KEY)
        await ops.update(cached, "role/a", lambda d: [Put("role/a", {"v": 3})])
        after = await raw.read(EPOCH_KEY)
        assert after is not None
        assert before is None or after.version != before.version  # a commit bumps the epoch
        assert await ops.get(cached, "role/a") == {"v": 3}
        assert await ops.create(cached, "other", {}) is True  # not cacheable: no epoch bump
        assert (await raw.read(EPOCH_KEY)) == after

    asyncio.run(main())


def test_sealed_values_at_rest() -> None:
    async def main() -> None:
        raw = AsyncMemoryStorage()
        sealed = AsyncSealedStorage(raw, AesGcmSeal([KEY]))
        await sealed.commit([Put("k", {"secret": "s3cr3t"}, expect=ABSENT, expires_at=1.0)])
        stored = await raw.read("k")
        assert stored is not None
        assert "s3cr3t" not in str(stored.value)
        assert await ops.get(sealed, "k") == {"secret": "s3cr3t"}
        assert [d.value for d in await sealed.expired("", 2.0, 10)] == [{"secret": "s3cr3t"}]
        assert await sealed.list("") == ["k"]
        await ops.put(raw, "plain", {"x": 1})
        with pytest.raises(InternalError, match="unsealed") as caught:
            await sealed.read("plain")
        assert caught.value.message == UNSEALED_DOCUMENT

    asyncio.run(main())


def test_open_async_storage(tmp_path: Path) -> None:
    async def main() -> None:
        memory = open_async_storage("memory://")
        assert isinstance(memory, AsyncMemoryStorage)
        assert isinstance(memory.inner, MemoryStorage)
        store = open_async_storage(f"sqlite:///{tmp_path / 'kv.db'}")
        assert isinstance(store, AsyncSQLiteStorage)
        try:
            await ops.put(store, "k", {"v": 1})
            assert await ops.get(store, "k") == {"v": 1}
        finally:
            await store.aclose()

    asyncio.run(main())
    for url in ["sqlite:///", "sqlite:///:memory:", "mysql://u:pw-s3cr3t@h/db", ""]:
        with pytest.raises(ValueError, match="storage URL") as caught:
            open_async_storage(url)
        assert "pw-s3cr3t" not in str(caught.value)


def test_open_async_storage_postgresql(postgres_url: str) -> None:
    from aws_iam_backend.io.storage._async.postgres import AsyncPostgresStorage

    async def main() -> None:
        store = open_async_storage(postgres_url)
        assert isinstance(store, AsyncPostgresStorage)
        try:
            assert await ops.create(store, "async/k", {"v": 1}) is True  # opens on first use
            assert await ops.get(store, "async/k") == {"v": 1}
            await ops.delete(store, "async/k")
        finally:
            await store.aclose()
        with pytest.raises(InternalError, match="closed"):
            await store.read("async/k")

    asyncio.run(main())
