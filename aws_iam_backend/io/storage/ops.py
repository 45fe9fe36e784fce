"""The pure helpers under every storage: key ranges, commit checks, retry delays, guards.

The everyday operations built on the four storage methods (``get``, ``put``, ``create``,
``delete`` and ``update``, the read-compute-conditional-write loop every read-modify-write
in the project goes through) do I/O, so they come twice:
:mod:`aws_iam_backend.io.storage._async.ops` over
:class:`~aws_iam_backend.io.protocols.AsyncStorage` and its generated twin
:mod:`aws_iam_backend.io.storage._sync.ops` over
:class:`~aws_iam_backend.io.protocols.Storage`. :func:`check_operations` is the shape check
every implementation runs before a commit.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from aws_iam_backend.io.protocols import ABSENT, Delete, Document, Operation, Put

DEFAULT_ATTEMPTS = 16
_MAX_CHAR = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound).

    Byte-wise UTF-8 order (SQLite's BINARY, PostgreSQL's ``COLLATE "C"``) is code-point
    order, so ``prefix <= key < prefix_end(prefix)`` selects exactly the keys with that
    prefix, with no ``LIKE`` wildcards to escape.
    """
    stem = prefix.rstrip(chr(_MAX_CHAR))
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return stem[:-1] + chr(following)


def check_operations(operations: Sequence[Operation]) -> None:
    """:class:`ValueError` unless ``operations`` is non-empty with each key at most once."""
    keys = [op.key for op in operations]
    if not keys:
        raise ValueError("commit needs at least one operation")
    if len(set(keys)) != len(keys):
        raise ValueError("commit names a key more than once")


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...) of a conflicting write: capped,
    jittered."""
    return random.uniform(0, min(0.25, 0.001 * 2**attempt))


Change = Callable[[Document | None], Sequence[Operation] | None]
"""What :func:`~aws_iam_backend.io.storage._sync.ops.update` computes from the document it read."""


def _guard(op: Operation, document: Document | None) -> Operation | None:
    """``op`` conditioned on ``document`` unless it has a condition of its own (None: a
    delete of what is already gone)."""
    if op.expect is not None:
        return op
    if isinstance(op, Put):
        expect = document.version if document is not None else ABSENT
        return Put(op.key, op.value, expect=expect, expires_at=op.expires_at)
    return None if document is None else Delete(op.key, expect=document.version)


__all__ = [
    "DEFAULT_ATTEMPTS",
    "Change",
    "backoff_delay",
    "check_operations",
    "prefix_end",
]
