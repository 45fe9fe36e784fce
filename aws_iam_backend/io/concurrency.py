"""The few primitives whose sync and async forms differ, for the generated drivers.

Async sources under ``_async/`` call ``async_sleep`` and ``async_in_thread``; their
generated ``_sync`` twins call ``sleep`` and ``in_thread`` (see ``scripts/unasync.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

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
