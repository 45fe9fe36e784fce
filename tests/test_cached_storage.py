"""CachedStorage: per-process read cache of cacheable keys, kept coherent across processes
by an epoch document bumped in the same commit as every write to a cached key.

"Processes" are two CachedStorage instances over one MemoryStorage, each with its own
fake monotonic clock, so every staleness window is exact."""

from __future__ import annotations

import builtins
import threading
from collections import Counter
from collections.abc import Sequence

import pytest

from aws_iam_backend.errors import ConflictError, InternalError, StorageUnavailableError
from aws_iam_backend.io.protocols import ABSENT, Delete, Document, Operation, Put, Storage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.cached import EPOCH_KEY, CachedStorage, uncached
from aws_iam_backend.io.storage.memory import MemoryStorage

INTERVAL = 1.0


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStorage:
    """``inner``, counting reads per key and recording every commit."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.reads: Counter[str] = Counter()
        self.commits: list[list[Operation]] = []

    def read(self, key: str) -> Document | None:
        self.reads[key] += 1
        return self.inner.read(key)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        self.commits.append(list(operations))
        return self.inner.commit(operations)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        return self.inner.expired(prefix, before, limit)


def cacheable(key: str) -> bool:
    return key.startswith("cached/")


def process(
    shared: Storage, clock: FakeClock | None = None, *, maxsize: int = 10_000
) -> tuple[CachedStorage, CountingStorage, FakeClock]:
    """One "process": a CachedStorage over its own counting view of ``shared``."""
    counting = CountingStorage(shared)
    clock = clock or FakeClock()
    cached = CachedStorage(
        counting, cacheable=cacheable, interval=INTERVAL, maxsize=maxsize, clock=clock
    )
    return cached, counting, clock


def value(storage: Storage, key: str) -> object:
    document = storage.read(key)
    return None if document is None else document.value


# ------------------------------------------------------------------- one process


def test_cached_read_is_served_without_touching_inner() -> None:
    shared = MemoryStorage()
    ops.put(shared, "cached/a", {"n": 1})
    cache, inner, clock = process(shared)
    assert value(cache, "cached/a") == {"n": 1}
    assert inner.reads == {"cached/a": 1, EPOCH_KEY: 1}
    for _ in range(5):
        assert value(cache, "cached/a") == {"n": 1}
    clock.advance(INTERVAL / 2)
    assert value(cache, "cached/a") == {"n": 1}
    assert inner.reads == {"cached/a": 1, EPOCH_KEY: 1}
    # Past the interval only the epoch is read again; it did not move, so the entry stays.
    clock.advance(INTERVAL)
    assert value(cache, "cached/a") == {"n": 1}
    assert inner.reads == {"cached/a": 1, EPOCH_KEY: 2}


def test_cached_documents_keep_their_version_and_expiry() -> None:
    shared = MemoryStorage()
    version = ops.put(shared, "cached/a", {"n": 1}, expires_at=123.0)
    cache, _, _ = process(shared)
    assert cache.read("cached/a") == cache.read("cached/a") == shared.read("cached/a")
    document = cache.read("cached/a")
    assert document is not None
    assert (document.version, document.expires_at) == (version, 123.0)


def test_absent_keys_are_cached_too() -> None:
    shared = MemoryStorage()
    cache, inner, _ = process(shared)
    assert cache.read("cached/missing") is None
    assert cache.read("cached/missing") is None
    assert inner.reads["cached/missing"] == 1


def test_non_cacheable_keys_are_never_cached() -> None:
    shared = MemoryStorage()
    ops.put(shared, "plain/x", {"n": 1})
    cache, inner, _ = process(shared)
    other, _, _ = process(shared)
    for _ in range(3):
        assert value(cache, "plain/x") == {"n": 1}
        assert cache.read("plain/missing") is None
    assert inner.reads == {"plain/x": 3, "plain/missing": 3}  # no epoch check either
    # Another process's write to a plain key is seen at once, and bumps no epoch.
    ops.put(other, "plain/x", {"n": 2})
    assert value(cache, "plain/x") == {"n": 2}
    assert shared.read(EPOCH_KEY) is None
    assert cache.list("plain/") == ["x"]


def test_list_and_expired_always_go_to_storage() -> None:
    shared = MemoryStorage()
    cache, _, _ = process(shared)
    other, _, _ = process(shared)
    assert cache.list("cached/") == []
    ops.put(other, "cached/a", {"n": 1}, expires_at=5.0)
    assert cache.list("cached/") == ["a"]
    assert [d.key for d in cache.expired("cached/", 10.0, 10)] == ["cached/a"]


def test_own_writes_are_seen_at_once() -> None:
    shared = MemoryStorage()
    cache, inner, _ = process(shared)
    assert cache.read("cached/a") is None  # cached as absent
    ops.put(cache, "cached/a", {"n": 1})
    assert value(cache, "cached/a") == {"n": 1}
    ops.put(cache, "cached/a", {"n": 2})
    assert value(cache, "cached/a") == {"n": 2}
    ops.delete(cache, "cached/a")
    assert cache.read("cached/a") is None
    assert inner.reads["cached/a"] == 4  # each write dropped the entry, no more


def test_invalidate_forgets_every_entry() -> None:
    shared = MemoryStorage()
    ops.put(shared, "cached/a", {"n": 1})
    cache, inner, _ = process(shared)
    cache.read("cached/a")
    cache.read("cached/b")
    cache.invalidate()
    cache.read("cached/a")
    cache.read("cached/b")
    assert (inner.reads["cached/a"], inner.reads["cached/b"]) == (2, 2)


def test_maxsize_bounds_the_entries_kept() -> None:
    shared = MemoryStorage()
    cache, inner, _ = process(shared, maxsize=2)
    for _ in range(3):
        for key in ("cached/a", "cached/b", "cached/c"):
            assert cache.read(key) is None
    # The first two filled the cache; the third is read from storage every time.
    assert [inner.reads[k] for k in ("cached/a", "cached/b", "cached/c")] == [1, 1, 3]
    cache.invalidate()  # room again
    cache.read("cached/c")
    cache.read("cached/c")
    assert inner.reads["cached/c"] == 4


def test_uncached_is_the_storage_underneath() -> None:
    shared = MemoryStorage()
    cache, inner, _ = process(shared)
    other, _, _ = process(shared)
    assert uncached(cache) is inner
    assert uncached(shared) is shared
    assert uncached(inner) is inner
    assert cache.read("cached/a") is None
    ops.put(other, "cached/a", {"n": 1})
    assert cache.read("cached/a") is None  # stale within the interval...
    assert value(uncached(cache), "cached/a") == {"n": 1}  # ...but not underneath


# ----------------------------------------------------------------- two processes


def test_a_write_in_one_process_reaches_the_other_after_its_interval() -> None:
    shared = MemoryStorage()
    a, _, _ = process(shared)
    b, b_inner, b_clock = process(shared)
    ops.put(a, "cached/role", {"v": 1})
    assert value(b, "cached/role") == {"v": 1}
    assert b.read("cached/new") is None
    ops.put(a, "cached/role", {"v": 2})
    ops.put(a, "cached/new", {"v": 1})
    assert value(a, "cached/role") == {"v": 2}  # the writer at once
    assert value(a, "cached/new") == {"v": 1}
    # B: not before its interval has passed since its last epoch check...
    assert value(b, "cached/role") == {"v": 1}
    b_clock.advance(INTERVAL - 0.001)
    assert value(b, "cached/role") == {"v": 1}
    assert b.read("cached/new") is None
    # ...and at once after (the first read past the interval checks the epoch).
    b_clock.advance(0.001)
    assert value(b, "cached/role") == {"v": 2}
    assert value(b, "cached/new") == {"v": 1}
    assert b_inner.reads[EPOCH_KEY] == 2


def test_a_delete_in_one_process_reaches_the_other_after_its_interval() -> None:
    shared = MemoryStorage()
    a, _, _ = process(shared)
    b, _, b_clock = process(shared)
    ops.put(a, "cached/role", {"v": 1})
    assert value(b, "cached/role") == {"v": 1}
    ops.delete(a, "cached/role")
    assert a.read("cached/role") is None
    assert value(b, "cached/role") == {"v": 1}
    b_clock.advance(INTERVAL)
    assert b.read("cached/role") is None


def test_every_cached_write_moves_the_epoch_whoever_makes_it() -> None:
    shared = MemoryStorage()
    a, _, _ = process(shared)
    b, _, _ = process(shared)
    versions = []
    for writer, n in ((a, 1), (b, 2), (a, 3)):
        ops.put(writer, "cached/x", {"n": n})
        epoch = shared.read(EPOCH_KEY)
        assert epoch is not None
        versions.append(epoch.version)
    assert versions == sorted(set(versions))


# ------------------------------------------------------------ conditional writes


def test_a_conflicting_conditional_write_invalidates() -> None:
    shared = MemoryStorage()
    a, a_inner, _ = process(shared)
    b, _, _ = process(shared)
    ops.put(a, "cached/role", {"v": 1})
    stale = a.read("cached/role")
    assert stale is not None
    ops.put(b, "cached/role", {"v": 2})
    assert a.read("cached/role") == stale  # A is within its interval
    with pytest.raises(ConflictError):
        a.commit([Put("cached/role", {"v": 3}, expect=stale.version)])
    # The conflict told A its cache is stale: the next read goes to storage.
    assert value(a, "cached/role") == {"v": 2}
    assert a_inner.reads["cached/role"] == 2


def test_update_retries_past_a_stale_cache_entry() -> None:
    shared = MemoryStorage()
    a, _, _ = process(shared)
    b, _, _ = process(shared)
    ops.put(a, "cached/counter", {"n": 1})
    assert value(a, "cached/counter") == {"n": 1}
    ops.put(b, "cached/counter", {"n": 10})
    seen: list[object] = []

    def increment(document: Document | None) -> list[Operation]:
        assert document is not None
        seen.append(document.value)
        return [Put("cached/counter", {"n": document.value["n"] + 1})]

    ops.update(a, "cached/counter", increment)
    # First from the stale cache (its commit conflicted), then from storage.
    assert seen == [{"n": 1}, {"n": 10}]
    assert value(shared, "cached/counter") == {"n": 11}
    assert value(a, "cached/counter") == {"n": 11}


def test_a_create_that_lost_the_race_sees_the_winner() -> None:
    shared = MemoryStorage()
    a, _, _ = process(shared)
    b, _, _ = process(shared)
    assert a.read("cached/k") is None  # A caches "absent"
    assert ops.create(b, "cached/k", {"by": "b"})
    assert not ops.create(a, "cached/k", {"by": "a"})
    assert value(a, "cached/k") == {"by": "b"}


# ------------------------------------------------------------------ epoch commit


def test_the_epoch_is_bumped_in_the_same_commit() -> None:
    shared = MemoryStorage()
    a, inner, _ = process(shared)
    versions = a.commit([Put("cached/a", {"n": 1}), Put("plain/b", {"n": 2})])
    assert len(inner.commits) == 1
    assert [op.key for op in inner.commits[0]] == ["cached/a", "plain/b", EPOCH_KEY]
    epoch = shared.read(EPOCH_KEY)
    a_doc, b_doc = shared.read("cached/a"), shared.read("plain/b")
    assert epoch is not None
    assert a_doc is not None
    assert b_doc is not None
    # The caller gets the versions of its own operations only.
    assert versions == (a_doc.version, b_doc.version)
    # A commit of plain keys only leaves the epoch alone.
    a.commit([Put("plain/b", {"n": 3})])
    assert [op.key for op in inner.commits[1]] == ["plain/b"]
    assert shared.read(EPOCH_KEY) == epoch
    # A delete of a cached key moves it too.
    assert a.commit([Delete("cached/a")]) == (0,)
    assert [op.key for op in inner.commits[2]] == ["cached/a", EPOCH_KEY]
    moved = shared.read(EPOCH_KEY)
    assert moved is not None
    assert moved.version > epoch.version


def test_a_failing_commit_changes_neither_the_document_nor_the_epoch() -> None:
    shared = MemoryStorage()
    a, _, _ = process(shared)
    b, _, b_clock = process(shared)
    ops.put(a, "cached/a", {"n": 1})
    before = (shared.read("cached/a"), shared.read(EPOCH_KEY))
    assert value(b, "cached/a") == {"n": 1}
    with pytest.raises(ConflictError):
        a.commit([Put("cached/a", {"n": 2}), Put("plain/guard", {}, expect=12345)])
    with pytest.raises(ConflictError):
        a.commit([Put("cached/a", {"n": 2}, expect=ABSENT)])
    assert (shared.read("cached/a"), shared.read(EPOCH_KEY)) == before
    assert value(a, "cached/a") == {"n": 1}
    b_clock.advance(INTERVAL)
    assert value(b, "cached/a") == {"n": 1}


class FailingCommits(CountingStorage):
    """Commits raise before changing anything."""

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        self.commits.append(list(operations))
        raise InternalError("storage error: disk full")


def test_a_commit_failing_in_storage_changes_nothing() -> None:
    shared = MemoryStorage()
    ops.put(shared, "cached/a", {"n": 1})
    failing = FailingCommits(shared)
    cache = CachedStorage(failing, cacheable=cacheable, interval=INTERVAL, clock=FakeClock())
    assert value(cache, "cached/a") == {"n": 1}
    with pytest.raises(InternalError, match="disk full"):
        ops.put(cache, "cached/a", {"n": 2})
    assert [op.key for op in failing.commits[0]] == ["cached/a", EPOCH_KEY]  # one commit
    assert value(shared, "cached/a") == {"n": 1}
    assert shared.read(EPOCH_KEY) is None
    assert value(cache, "cached/a") == {"n": 1}


class LostAcknowledgement(CountingStorage):
    """Commits apply, then raise as if the connection dropped before the answer came."""

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        super().commit(operations)
        raise StorageUnavailableError("storage error: connection lost")


def test_a_commit_with_an_unknown_outcome_drops_the_cache() -> None:
    shared = MemoryStorage()
    ops.put(shared, "cached/a", {"n": 1})
    lossy = LostAcknowledgement(shared)
    cache = CachedStorage(lossy, cacheable=cacheable, interval=INTERVAL, clock=FakeClock())
    assert value(cache, "cached/a") == {"n": 1}
    with pytest.raises(StorageUnavailableError):
        ops.put(cache, "cached/a", {"n": 2})
    assert value(shared, "cached/a") == {"n": 2}  # it did apply
    assert value(cache, "cached/a") == {"n": 2}


# --------------------------------------------------------------------- races


class BlockingReads(CountingStorage):
    """``read(key)`` of the armed key reads ``inner`` and then waits for ``release``, so it
    returns what storage held when the read began."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.armed: str | None = None
        self.entered = threading.Event()
        self.release = threading.Event()

    def read(self, key: str) -> Document | None:
        document = super().read(key)
        if key == self.armed:
            self.armed = None
            self.entered.set()
            assert self.release.wait(10)
        return document


def read_in_thread(storage: Storage, key: str) -> tuple[threading.Thread, list[Document | None]]:
    result: list[Document | None] = []
    thread = threading.Thread(target=lambda: result.append(storage.read(key)), daemon=True)
    thread.start()
    return thread, result


def test_a_read_racing_a_commit_cannot_cache_the_stale_document() -> None:
    shared = MemoryStorage()
    ops.put(shared, "cached/a", {"n": 1})
    blocking = BlockingReads(shared)
    cache = CachedStorage(blocking, cacheable=cacheable, interval=INTERVAL, clock=FakeClock())
    blocking.armed = "cached/a"
    thread, result = read_in_thread(cache, "cached/a")
    assert blocking.entered.wait(10)  # the read holds {"n": 1}
    ops.put(cache, "cached/a", {"n": 2})  # commits while the read is in flight
    blocking.release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert result[0] is not None
    assert result[0].value == {"n": 1}  # what it read, fine
    # ...but it must not have been cached over the commit.
    assert value(cache, "cached/a") == {"n": 2}
    assert value(cache, "cached/a") == {"n": 2}
    assert blocking.reads["cached/a"] == 2


def test_a_read_racing_an_absent_to_present_commit() -> None:
    shared = MemoryStorage()
    blocking = BlockingReads(shared)
    cache = CachedStorage(blocking, cacheable=cacheable, interval=INTERVAL, clock=FakeClock())
    blocking.armed = "cached/a"
    thread, result = read_in_thread(cache, "cached/a")
    assert blocking.entered.wait(10)
    assert ops.create(cache, "cached/a", {"n": 1})
    blocking.release.set()
    thread.join(10)
    assert result == [None]
    assert value(cache, "cached/a") == {"n": 1}


def test_a_stale_read_in_another_process_lasts_one_interval_at_most() -> None:
    shared = MemoryStorage()
    ops.put(shared, "cached/a", {"n": 1})
    a, _, _ = process(shared)
    blocking = BlockingReads(shared)
    clock = FakeClock()
    b = CachedStorage(blocking, cacheable=cacheable, interval=INTERVAL, clock=clock)
    blocking.armed = "cached/a"
    thread, _ = read_in_thread(b, "cached/a")
    assert blocking.entered.wait(10)
    ops.put(a, "cached/a", {"n": 2})
    blocking.release.set()
    thread.join(10)
    clock.advance(INTERVAL)
    assert value(b, "cached/a") == {"n": 2}


def test_an_epoch_check_racing_a_read_drops_the_stale_document() -> None:
    """B's read of a document is in flight when A commits; B's epoch check (another thread,
    past the interval) then sees the new epoch: the in-flight result must not be cached."""
    shared = MemoryStorage()
    ops.put(shared, "cached/a", {"n": 1})
    a, _, _ = process(shared)
    blocking = BlockingReads(shared)
    clock = FakeClock()
    b = CachedStorage(blocking, cacheable=cacheable, interval=INTERVAL, clock=clock)
    assert b.read("cached/other") is None  # B's first epoch check
    blocking.armed = "cached/a"
    thread, _ = read_in_thread(b, "cached/a")
    assert blocking.entered.wait(10)
    ops.put(a, "cached/a", {"n": 2})
    clock.advance(INTERVAL)
    assert b.read("cached/other") is None  # checks the epoch: moved, cache dropped
    blocking.release.set()
    thread.join(10)
    clock.advance(INTERVAL / 10)  # within the new interval: served from the cache if there
    assert value(b, "cached/a") == {"n": 2}


def test_concurrent_readers_and_writers_stay_coherent() -> None:
    shared = MemoryStorage()
    cache, _, _ = process(shared)
    ops.put(cache, "cached/n", {"n": 0})
    errors: list[str] = []

    def writer() -> None:
        for _ in range(100):
            ops.update(
                cache,
                "cached/n",
                lambda d: [Put("cached/n", {"n": (d.value["n"] if d else 0) + 1})],
            )

    def reader() -> None:
        last = -1
        for _ in range(300):
            document = cache.read("cached/n")
            n = -1 if document is None else document.value["n"]
            if n < last:
                errors.append(f"went back from {last} to {n}")
            last = n

    threads = [threading.Thread(target=f) for f in (writer, writer, reader, reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert value(cache, "cached/n") == {"n": 200}
    assert value(shared, "cached/n") == {"n": 200}


def test_a_check_of_a_cached_key_bumps_no_epoch_and_a_view_can_check_outside_itself() -> None:
    """A Check writes nothing, so it must not invalidate every process's cache; through a
    prefixed view it names the view's key, or, ``absolute``, the store's."""
    from aws_iam_backend.io.protocols import Check
    from aws_iam_backend.io.storage._sync.prefixed import PrefixedStorage

    inner = MemoryStorage()
    cached = CachedStorage(inner, cacheable=lambda key: key.startswith("sys/mounts"))
    (mounts,) = cached.commit([Put("sys/mounts", {"auth": {}})])
    epoch = inner.read("sys/epoch")
    view = PrefixedStorage(cached, "sys/token/")
    view.commit([Put("t", {"x": 1}), Check("sys/mounts", mounts, absolute=True)])
    assert inner.read("sys/epoch") == epoch
    assert inner.read("sys/token/t") is not None
    with pytest.raises(ConflictError):  # relative: sys/token/sys/mounts does not exist
        view.commit([Put("u", {"x": 1}), Check("sys/mounts", mounts)])
    assert inner.read("sys/token/u") is None
