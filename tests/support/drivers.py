"""Run one behaviour suite against both drivers.

A test module opts in with ``from tests.support.drivers import Backend, driver``: the
``driver`` fixture (autouse, parametrized ``sync`` / ``async``) makes every test of the
module run twice, and ``Backend(...)`` then builds either the sync
:class:`aws_iam_backend.Backend` or an :class:`aws_iam_backend.AsyncBackend` behind
:class:`SyncView`, a blocking facade that runs each coroutine on an event loop in its own
thread (so tests that call from several threads at once still race for real).

The test's sync parts (storages, STS fakes, replay caches, rate limiters, issuers) are
handed to the async driver through :func:`to_async`, which runs each call on a worker
thread: a fake that sleeps or blocks keeps its meaning, and the loop is never blocked.
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

from aws_iam_backend import AsyncBackend
from aws_iam_backend import Backend as SyncBackend

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("driver", default="sync")
_ASYNC_PARTS = ("storage", "transport", "issuer", "replay_cache", "rate_limiter")


@pytest.fixture(params=["sync", "async"], autouse=True)
def driver(request: pytest.FixtureRequest) -> Iterator[str]:
    """The driver ``Backend(...)`` builds in this test."""
    token = CURRENT.set(request.param)
    yield request.param
    CURRENT.reset(token)


class _Loop:
    """One event loop on a daemon thread; ``run`` blocks the caller until a coroutine ends."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

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
        setattr(self._target, name, to_async(value) if name in _ASYNC_PARTS else value)


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
    """``part`` for the async driver: as it is if already async, else run on threads."""
    return part if part is None or _has_coroutine_methods(part) else _SyncPart(part)


def Backend(**kwargs: Any) -> Any:
    """The current driver's backend, built from the test's (sync) parts."""
    if CURRENT.get() == "sync":
        return SyncBackend(**kwargs)
    for name in _ASYNC_PARTS:
        if name in kwargs:
            kwargs[name] = to_async(kwargs[name])
    loop = _Loop()
    backend = loop.run(_build(kwargs))
    return SyncView(backend, loop)


async def _build(kwargs: dict[str, Any]) -> AsyncBackend:
    return AsyncBackend(**kwargs)  # built on the loop: its primitives belong to it


__all__ = ["Backend", "SyncView", "driver", "to_async"]
