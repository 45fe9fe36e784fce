"""Run one behaviour suite against both drivers.

A test module opts in with ``from tests.support.drivers import Backend, driver``: the
``driver`` fixture (autouse, parametrized ``sync`` / ``async``) makes every test of the
module run twice, and ``Backend(...)`` then builds either the sync
:class:`aws_iam_backend.Backend` or an :class:`aws_iam_backend.AsyncBackend` behind
:class:`SyncView`, a blocking facade that runs each coroutine on an event loop in its own
thread (so tests that call from several threads at once still race for real).

The test's sync parts are handed to the async driver through :func:`to_async`: a
:class:`MemoryStorage` or :class:`SQLiteStorage` becomes its async twin over the same data
(so the async driver runs on the real async stores); other parts (STS fakes, replay caches,
rate limiters, issuers, fault-injecting storages) run each call on a worker thread, so a
fake that sleeps or blocks keeps its meaning and the loop is never blocked.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, cast

import pytest

from aws_iam_backend import (
    AsyncBackend,
    AsyncMemoryStorage,
    AsyncSQLiteStorage,
    MemoryStorage,
    SQLiteStorage,
)
from aws_iam_backend import Backend as SyncBackend
from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server._sync.api import VaultAPI as SyncVaultAPI

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("driver", default="sync")
_LOOPS: list[_Loop] = []  # loops made for async backends, newest last
_ASYNC_PARTS = ("storage", "transport", "issuer", "replay_cache", "rate_limiter")
ASYNC_ONLY = pytest.mark.parametrize("driver", ["async"], indirect=True)
"""For tests of what only the async driver has (the ASGI app): overrides ``driver``."""


@pytest.fixture(params=["sync", "async"], autouse=True)
def driver(request: pytest.FixtureRequest) -> Iterator[str]:
    """The driver ``Backend(...)`` builds in this test; the event loops the test's async
    backends ran on are closed after it (each holds file descriptors and a thread)."""
    token = CURRENT.set(request.param)
    started = len(_LOOPS)
    yield request.param
    CURRENT.reset(token)
    while len(_LOOPS) > started:
        _LOOPS.pop().close()


class _Loop:
    """One event loop on a daemon thread; ``run`` blocks the caller until a coroutine ends."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        _LOOPS.append(self)

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and close it."""

        async def cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [task for task in asyncio.all_tasks() if task is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        # Bounded: a test that deadlocked the loop fails instead of hanging the run.
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)


class SyncView:
    """A blocking facade over an object with coroutine methods (and over its attributes)."""

    def __init__(self, target: Any, loop: _Loop) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):
            return functools.partial(_blocking, self._loop, value)
        if isinstance(value, _SyncPart):
            return value.part  # a part the test gave: hand back the test's own object
        if _has_coroutine_methods(value):
            return SyncView(value, self._loop)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        saved = self.__dict__.setdefault("_saved", {})
        if name not in saved:
            saved[name] = getattr(self._target, name)
        setattr(self._target, name, to_async(value) if name in _ASYNC_PARTS else value)

    def __delattr__(self, name: str) -> None:
        """Undo :meth:`__setattr__`: the target gets its own value back (pytest's
        ``monkeypatch`` deletes what it set on an object that has no such attribute)."""
        saved = self.__dict__.get("_saved", {})
        if name not in saved:
            raise AttributeError(name)
        setattr(self._target, name, saved.pop(name))


def _blocking(loop: _Loop, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return loop.run(method(*args, **kwargs))


def _has_coroutine_methods(value: Any) -> bool:
    return any(
        inspect.iscoroutinefunction(getattr(type(value), name, None))
        for name in dir(type(value))
        if not name.startswith("__")
    )


class _SyncPart:
    """A sync part given to the async driver: each method call runs on a worker thread."""

    def __init__(self, part: Any) -> None:
        self.part = part

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.part, name)
        if not callable(value) or inspect.iscoroutinefunction(value):
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(value, *args, **kwargs)

        return call


def to_async(part: Any) -> Any:
    """``part`` for the async driver: as it is if already async; the real async twin of a
    memory or SQLite store (on the same data); anything else run on threads."""
    if part is None or _has_coroutine_methods(part):
        return part
    if type(part) is MemoryStorage:
        return AsyncMemoryStorage(part)
    if type(part) is SQLiteStorage:
        return AsyncSQLiteStorage(part._path)
    return _SyncPart(part)


class Backend(SyncBackend):
    """Stands in for :class:`aws_iam_backend.Backend` in tests: ``Backend(...)`` is the
    current driver's backend, built from the test's (sync) parts. Inside the async
    driver's event loop (a factory called by the async server) it is the
    :class:`AsyncBackend` itself."""

    def __new__(cls, **kwargs: Any) -> Backend:
        if CURRENT.get() == "sync":
            return cast(Backend, SyncBackend(**kwargs))
        for name in _ASYNC_PARTS:
            if name in kwargs:
                kwargs[name] = to_async(kwargs[name])
        if _in_event_loop():
            return cast(Backend, AsyncBackend(**kwargs))
        loop = _Loop()
        return cast(Backend, SyncView(loop.run(_build(kwargs)), loop))


class VaultAPI(SyncVaultAPI):
    """Stands in for ``VaultAPI`` in tests, as :class:`Backend` does: the sync API, or an
    :class:`AsyncVaultAPI` behind :class:`SyncView` (its storage run on threads when the
    test gives a sync one). :func:`asgi_target` gives the async API itself to serve."""

    def __new__(cls, **kwargs: Any) -> VaultAPI:
        if CURRENT.get() == "sync":
            return cast(VaultAPI, SyncVaultAPI(**kwargs))
        kwargs["storage"] = to_async(kwargs["storage"])
        loop = _Loop()
        return cast(VaultAPI, SyncView(loop.run(_build_api(kwargs)), loop))


async def _build_api(kwargs: dict[str, Any]) -> AsyncVaultAPI:
    return AsyncVaultAPI(**kwargs)


def asgi_target(api: Any) -> AsyncVaultAPI:
    """The :class:`AsyncVaultAPI` behind a test's API (mark the test :data:`ASYNC_ONLY`)."""
    target = getattr(api, "_target", None)
    if not isinstance(target, AsyncVaultAPI):
        raise TypeError("serving over ASGI needs the async driver: mark the test ASYNC_ONLY")
    return target


def raising_backend(error: Exception) -> Callable[..., Any]:
    """A ``backend_factory`` whose backends raise ``error`` from ``handle_request``, in
    the current driver's form."""

    def factory(**kwargs: Any) -> Any:
        backend = Backend(**kwargs)

        def fail(_request: Any) -> Any:
            raise error

        async def fail_async(_request: Any) -> Any:
            raise error

        handler = fail_async if isinstance(backend, AsyncBackend) else fail
        backend.handle_request = handler  # type: ignore[method-assign, assignment]
        return backend

    return factory


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _build(kwargs: dict[str, Any]) -> AsyncBackend:
    return AsyncBackend(**kwargs)  # built on the loop: its primitives belong to it


__all__ = [
    "ASYNC_ONLY",
    "Backend",
    "SyncView",
    "VaultAPI",
    "asgi_target",
    "driver",
    "raising_backend",
    "to_async",
]
