# Generated from ../_async/ops.py by scripts/unasync.py: do not edit.
"""Everyday operations built on the four methods of
:class:`~aws_iam_backend.io.protocols.Storage`.

``get``/``put``/``create``/``delete`` are one-document shortcuts; :func:`update` is the
read-compute-conditional-write loop every read-modify-write in the project goes through,
so no writer can overwrite a change it did not see. The pure helpers (key ranges, commit
checks, the retry delay) are in :mod:`aws_iam_backend.io.storage.ops`.
"""

from __future__ import annotations

from aws_iam_backend.errors import ConflictError, InternalError
from aws_iam_backend.io import protocols
from aws_iam_backend.io.concurrency import sleep
from aws_iam_backend.io.protocols import ABSENT, Delete, Document, JSONDict, Put
from aws_iam_backend.io.storage.ops import DEFAULT_ATTEMPTS, Change, _guard, backoff_delay


def get(storage: protocols.Storage, key: str) -> JSONDict | None:
    """The value at ``key``, or None."""
    document = storage.read(key)
    return None if document is None else document.value


def put(
    storage: protocols.Storage, key: str, value: JSONDict, *, expires_at: float | None = None
) -> int:
    """Write ``value`` at ``key`` unconditionally; its new version."""
    return (storage.commit([Put(key, value, expires_at=expires_at)]))[0]


def create(
    storage: protocols.Storage, key: str, value: JSONDict, *, expires_at: float | None = None
) -> bool:
    """Write ``value`` only if ``key`` is absent; True if it was written."""
    try:
        storage.commit([Put(key, value, expect=ABSENT, expires_at=expires_at)])
    except ConflictError:
        return False
    return True


def delete(storage: protocols.Storage, key: str) -> None:
    """Delete ``key`` unconditionally; no error if absent."""
    storage.commit([Delete(key)])


def backoff(attempt: int) -> None:
    """Sleep before retry ``attempt`` (1, 2, ...) of a conflicting write: capped, jittered."""
    sleep(backoff_delay(attempt))


def update(
    storage: protocols.Storage, key: str, change: Change, *, attempts: int = DEFAULT_ATTEMPTS
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


__all__ = [
    "DEFAULT_ATTEMPTS",
    "Change",
    "backoff",
    "create",
    "delete",
    "get",
    "put",
    "update",
]
