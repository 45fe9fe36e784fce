"""The few names the storage sources need whose sync and async forms differ.

An ``_async`` source uses the ``Async``/``async_`` name; ``scripts/unasync.py`` renames it
to the other one of its pair in the generated ``_sync`` twin:

- ``AsyncLock``/``Lock``: a lock held across awaits (``asyncio.Lock``) or a thread lock;
- ``AsyncResult[T]``/``Result[T]``: what a coroutine function returns (an awaitable of
  ``T``), or a plain function (``T`` itself), for callables passed around as values;
- ``async_open_eagerly``/``open_eagerly``: called at the end of ``__init__``. A sync
  store connects there, as before; an async one cannot await in ``__init__`` and opens
  on first use (or an awaited ``open()``) instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Annotated, Protocol, TypeAlias, TypeVar

_T = TypeVar("_T")

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
