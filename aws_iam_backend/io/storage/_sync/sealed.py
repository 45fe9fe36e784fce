# Generated from ../_async/sealed.py by scripts/unasync.py: do not edit.
"""A view of a storage (:class:`~aws_iam_backend.io.protocols.Storage`) sealing values."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import attrs

from aws_iam_backend.errors import InternalError
from aws_iam_backend.io import protocols
from aws_iam_backend.io.protocols import Document, Operation, Put
from aws_iam_backend.io.seal import Seal

UNSEALED_DOCUMENT = (
    "storage error: found an unsealed document; run `aws-iam-backend storage reseal`"
)


class SealedStorage:
    """Every value is sealed by ``seal`` in ``inner`` and unsealed when read back.

    Each sealed value is bound to its key as given to this view, so wrap the raw storage
    directly and put any
    :class:`~aws_iam_backend.io.storage._sync.prefixed.PrefixedStorage` views on
    top: then the bound key is the full key, which is what
    :func:`~aws_iam_backend.io.storage.migrate.reseal` uses. Versions, ``expires_at``,
    conditions and listings pass through untouched (keys are not encrypted). Reading a
    document that is not sealed, or one that cannot be opened, raises
    :class:`~aws_iam_backend.errors.InternalError` naming neither key nor value.
    """

    def __init__(self, inner: protocols.Storage, seal: Seal) -> None:
        self.inner = inner
        self.seal = seal

    def __repr__(self) -> str:
        return f"SealedStorage({self.inner!r}, {self.seal!r})"

    def read(self, key: str) -> Document | None:
        """The document at ``key``, unsealed, or None."""
        document = self.inner.read(key)
        return None if document is None else self._open(document)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply ``operations`` atomically, every put's value sealed."""
        return self.inner.commit([self._close(op) for op in operations])

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        return self.inner.list(prefix)

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """Expired documents under ``prefix``, unsealed."""
        return [self._open(d) for d in self.inner.expired(prefix, before, limit)]

    def _close(self, op: Operation) -> Operation:
        if isinstance(op, Put):
            return attrs.evolve(op, value=self.seal.seal(op.key, op.value))
        return op

    def _open(self, document: Document) -> Document:
        if not self.seal.is_sealed(document.value):
            raise InternalError(UNSEALED_DOCUMENT)
        return attrs.evolve(document, value=self.seal.unseal(document.key, document.value))


__all__ = ["UNSEALED_DOCUMENT", "SealedStorage"]
