"""A view of a :class:`~aws_iam_backend.interfaces.Storage` under a key prefix."""

from __future__ import annotations

from collections.abc import Mapping

from ..interfaces import JSONDict, Storage


class PrefixedStorage:
    """Every key is stored as ``prefix + key`` in ``inner``; listings strip the prefix again.

    ``prefix`` must be non-empty and end with ``/``, so two views never overlap unless
    one prefix contains the other.
    """

    def __init__(self, inner: Storage, prefix: str) -> None:
        if not prefix.endswith("/") or prefix == "/":
            raise ValueError("storage prefix must be non-empty and end with '/'")
        self.inner = inner
        self.prefix = prefix

    def get(self, key: str) -> JSONDict | None:
        """The document at ``key``, or None."""
        return self.inner.get(self.prefix + key)

    def put(self, key: str, value: JSONDict) -> None:
        """Store ``value`` at ``key``, replacing any previous document."""
        self.inner.put(self.prefix + key, value)

    def put_many(self, items: Mapping[str, JSONDict]) -> None:
        """Store several documents in one atomic write."""
        self.inner.put_many({self.prefix + key: value for key, value in items.items()})

    def create(self, key: str, value: JSONDict) -> bool:
        """Store ``value`` only if ``key`` is absent; True if it was stored."""
        return self.inner.create(self.prefix + key, value)

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if absent."""
        self.inner.delete(self.prefix + key)

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        return self.inner.list(self.prefix + prefix)

    def clear(self) -> None:
        """Delete every key of this view."""
        for key in self.inner.list(self.prefix):
            self.inner.delete(self.prefix + key)
