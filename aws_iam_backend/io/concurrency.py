"""The few names whose sync and async forms differ, for the generated ``_sync`` twins.

An ``_async`` source uses the ``Async``/``async_`` name; ``scripts/unasync.py`` renames it
to the other one of its pair in the generated twin:

- ``async_sleep``/``sleep`` and ``async_in_thread``/``in_thread`` (a blocking call kept
  off the event loop, or just made);
- ``AsyncLock``/``Lock``: a lock held across awaits (``asyncio.Lock``) or a thread lock;
- ``AsyncResult[T]``/``Result[T]``: what a coroutine function returns (an awaitable of
  ``T``), or a plain function (``T`` itself), for callables passed around as values;
- ``async_open_eagerly``/``open_eagerly``: called at the end of ``__init__``. A sync
  store connects there; an async one cannot await in ``__init__`` and opens on first use
  (or an awaited ``open()``) instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, ParamSpec, Protocol, TypeAlias, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def async_sleep(seconds: float) -> None:
    """Sleep without blocking the event loop."""
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    """Sleep the calling thread."""
    time.sleep(seconds)


async def async_in_thread(function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``function(*args, **kwargs)`` on a worker thread (a blocking call kept off the loop)."""
    return await asyncio.to_thread(function, *args, **kwargs)


def in_thread(function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``function(*args, **kwargs)``, here (the sync driver may block)."""
    return function(*args, **kwargs)


AsyncLock = asyncio.Lock
Lock = threading.Lock

AsyncResult: TypeAlias = Awaitable[_T]
Result: TypeAlias = Annotated[_T, "the result itself"]


class _Openable(Protocol):
    def open(self) -> None: ...

    def close(self) -> None: ...


def async_open_eagerly(resource: object) -> None:
    """Nothing: an async store opens on first use (or when its ``open()`` is awaited)."""


def open_eagerly(resource: _Openable) -> None:
    """``resource.open()``, closing it again if that fails (the caller never sees it)."""
    try:
        resource.open()
    except BaseException:
        resource.close()
        raise
