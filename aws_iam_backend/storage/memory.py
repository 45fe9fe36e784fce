"""An in-process storage, plus the JSON codec every storage here shares."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping

from ..errors import InternalError
from ..interfaces import JSONDict


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


class MemoryStorage:
    """A thread-safe dict of JSON documents, lost when the process exits.

    Documents are kept as JSON text, so callers never share mutable state with
    the store: what ``get`` returns is a fresh copy and mutating a value after
    ``put`` has no effect on what is stored.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}

    def get(self, key: str) -> JSONDict | None:
        """The document at ``key``, or None."""
        with self._lock:
            text = self._data.get(key)
        return None if text is None else decode_document(text)

    def put(self, key: str, value: JSONDict) -> None:
        """Store ``value`` at ``key``, replacing any previous document."""
        text = encode_document(value)
        with self._lock:
            self._data[key] = text

    def put_many(self, items: Mapping[str, JSONDict]) -> None:
        """Store several documents atomically (all encoded before any is stored)."""
        texts = {key: encode_document(value) for key, value in items.items()}
        with self._lock:
            self._data.update(texts)

    def create(self, key: str, value: JSONDict) -> bool:
        """Store ``value`` only if ``key`` is absent; True if it was stored."""
        text = encode_document(value)
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = text
            return True

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if absent."""
        with self._lock:
            self._data.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        with self._lock:
            keys = [k for k in self._data if k.startswith(prefix)]
        return sorted(k[len(prefix) :] for k in keys)
