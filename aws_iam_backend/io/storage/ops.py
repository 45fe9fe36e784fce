"""Everyday operations built on the four methods of :class:`~aws_iam_backend.io.protocols.Storage`.

``get``/``put``/``create``/``delete`` are one-document shortcuts; :func:`update` is the
read-compute-conditional-write loop every read-modify-write in the project goes through,
so no writer can overwrite a change it did not see. :func:`check_operations` is the
shape check every implementation runs before a commit.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from aws_iam_backend.errors import ConflictError, InternalError
from aws_iam_backend.io.protocols import ABSENT, Delete, Document, JSONDict, Operation, Put, Storage

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


def get(storage: Storage, key: str) -> JSONDict | None:
    """The value at ``key``, or None."""
    document = storage.read(key)
    return None if document is None else document.value


def put(storage: Storage, key: str, value: JSONDict, *, expires_at: float | None = None) -> int:
    """Write ``value`` at ``key`` unconditionally; its new version."""
    return storage.commit([Put(key, value, expires_at=expires_at)])[0]


def create(storage: Storage, key: str, value: JSONDict, *, expires_at: float | None = None) -> bool:
    """Write ``value`` only if ``key`` is absent; True if it was written."""
    try:
        storage.commit([Put(key, value, expect=ABSENT, expires_at=expires_at)])
    except ConflictError:
        return False
    return True


def delete(storage: Storage, key: str) -> None:
    """Delete ``key`` unconditionally; no error if absent."""
    storage.commit([Delete(key)])


def backoff(attempt: int) -> None:
    """Sleep before retry ``attempt`` (1, 2, ...) of a conflicting write: capped, jittered."""
    time.sleep(random.uniform(0, min(0.25, 0.001 * 2**attempt)))


Change = Callable[[Document | None], Sequence[Operation] | None]


def update(
    storage: Storage, key: str, change: Change, *, attempts: int = DEFAULT_ATTEMPTS
) -> Document | None:
    """Read ``key`` and commit ``change(document)`` until no other writer got in between.

    ``change`` sees the current document (or None) and returns the operations to commit
    (None or empty: nothing to do). Every operation on ``key`` that ``change`` returns
    with ``expect=None`` is conditioned on the version just read, so a concurrent write
    makes the commit fail and the loop start over from a fresh read. Returns the
    document that ``change`` last saw. After ``attempts`` conflicts in a row raises
    :class:`InternalError`.
    """
    for attempt in range(1, attempts + 1):
        document = storage.read(key)
        operations = change(document)
        if not operations:
            return document
        guarded = [
            op for op in (_guard(op, document) if op.key == key else op for op in operations) if op
        ]
        if not guarded:
            return document
        try:
            storage.commit(guarded)
        except ConflictError:
            backoff(attempt)
            continue
        return document
    raise InternalError("storage error: too many concurrent updates; retry")


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
    "backoff",
    "check_operations",
    "create",
    "delete",
    "get",
    "prefix_end",
    "put",
    "update",
]
