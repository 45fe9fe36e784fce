"""A view under a key prefix of a storage (:class:`~aws_iam_backend.io.protocols.AsyncStorage`)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import attrs

from aws_iam_backend.io import protocols
from aws_iam_backend.io.protocols import Check, Delete, Document, Operation, Put


class AsyncPrefixedStorage:
    """Every key is stored as ``prefix + key`` in ``inner``; listings strip the prefix again.

    ``prefix`` must be non-empty and end with ``/``, so two views never overlap unless
    one prefix contains the other.
    """

    def __init__(self, inner: protocols.AsyncStorage, prefix: str) -> None:
        if not prefix.endswith("/") or prefix == "/":
            raise ValueError("storage prefix must be non-empty and end with '/'")
        self.inner = inner
        self.prefix = prefix

    async def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        document = await self.inner.read(self.prefix + key)
        if document is None:
            return None
        return Document(key, document.value, document.version, document.expires_at)

    async def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply ``operations`` (keys relative to the view) atomically."""
        return await self.inner.commit([self._outer(op) for op in operations])

    def _outer(self, op: Operation) -> Operation:
        if isinstance(op, Put):
            return Put(self.prefix + op.key, op.value, op.expect, op.expires_at)
        if isinstance(op, Check):
            return op if op.absolute else Check(self.prefix + op.key, op.expect)
        return Delete(self.prefix + op.key, expect=op.expect)

    async def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        return await self.inner.list(self.prefix + prefix)

    async def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """Expired documents under ``prefix``, keys relative to the view."""
        start = len(self.prefix)
        return [
            attrs.evolve(d, key=d.key[start:])
            for d in await self.inner.expired(self.prefix + prefix, before, limit)
        ]

    async def clear(self) -> None:
        """Delete every key of this view (in batches, each one atomic)."""
        keys = await self.inner.list(self.prefix)
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            await self.inner.commit([Delete(self.prefix + key) for key in batch])
