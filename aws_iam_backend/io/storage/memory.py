"""An in-process storage (sync and async), plus the JSON codec every storage here shares."""

from __future__ import annotations

import builtins
import itertools
import json
import threading
from collections.abc import Sequence

import attrs

from aws_iam_backend.errors import ConflictError, InternalError
from aws_iam_backend.io.protocols import ABSENT, Check, Document, JSONDict, Operation, Put
from aws_iam_backend.io.storage.ops import check_operations


def encode_document(value: JSONDict) -> str:
    """``value`` as strict, compact JSON; :class:`InternalError` if it is not a JSON object."""
    if not isinstance(value, dict):
        raise InternalError("storage error: document is not a JSON object")
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise InternalError("storage error: document is not JSON-serialisable") from None


def decode_document(text: str) -> JSONDict:
    """The JSON object in ``text``; :class:`InternalError` if it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        raise InternalError("storage error: corrupt document") from None
    if not isinstance(value, dict):
        raise InternalError("storage error: corrupt document")
    return value


@attrs.frozen
class _Row:
    text: str
    version: int
    expires_at: float | None


class MemoryStorage:
    """A thread-safe dict of versioned JSON documents, lost when the process exits.

    Documents are kept as JSON text, so callers never share mutable state with the
    store. Versions come from one counter, so they never repeat. :meth:`expired` scans
    every key (this store is for tests and throwaway servers).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._versions = itertools.count(1)

    def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        with self._lock:
            row = self._rows.get(key)
        return None if row is None else _document(key, row)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply every operation or none (:class:`ConflictError`); the new versions."""
        check_operations(operations)
        texts = [encode_document(op.value) if isinstance(op, Put) else None for op in operations]
        with self._lock:
            for op in operations:
                row = self._rows.get(op.key)
                if op.expect is not None and (row.version if row else ABSENT) != op.expect:
                    raise ConflictError(op.key)
            versions: list[int] = []
            for op, text in zip(operations, texts, strict=True):
                if isinstance(op, Check):
                    versions.append(op.expect)
                elif text is None:
                    self._rows.pop(op.key, None)
                    versions.append(0)
                else:
                    version = next(self._versions)
                    self._rows[op.key] = _Row(text, version, getattr(op, "expires_at", None))
                    versions.append(version)
        return tuple(versions)

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        with self._lock:
            keys = [k for k in self._rows if k.startswith(prefix)]
        return sorted(k[len(prefix) :] for k in keys)

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` expiring by ``before``, soonest first."""
        with self._lock:
            due = [
                (row.expires_at, key, row)
                for key, row in self._rows.items()
                if row.expires_at is not None
                and row.expires_at <= before
                and key.startswith(prefix)
            ]
        due.sort(key=lambda item: (item[0], item[1]))
        return [_document(key, row) for _, key, row in due[: max(limit, 0)]]


def _document(key: str, row: _Row) -> Document:
    return Document(key, decode_document(row.text), row.version, row.expires_at)


class AsyncMemoryStorage:
    """:class:`MemoryStorage` behind the :class:`~aws_iam_backend.io.protocols.AsyncStorage`
    protocol.

    Every call is the synchronous one on ``inner`` (a fresh :class:`MemoryStorage` unless
    given): it never waits for I/O and holds its lock only while copying a few rows, so it
    does not block the event loop. Sharing one ``inner`` between an
    :class:`AsyncMemoryStorage` and synchronous code is safe.
    """

    def __init__(self, inner: MemoryStorage | None = None) -> None:
        self.inner = MemoryStorage() if inner is None else inner

    async def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        return self.inner.read(key)

    async def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply every operation or none (:class:`ConflictError`); the new versions."""
        return self.inner.commit(operations)

    async def list(self, prefix: str) -> builtins.list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        return self.inner.list(prefix)

    async def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` expiring by ``before``, soonest first."""
        return self.inner.expired(prefix, before, limit)
