# Generated from ../_async/keys.py by scripts/unasync.py: do not edit.
"""Server-side secret keys kept in storage (token HMAC, audit HMAC, challenge MAC)."""

from __future__ import annotations

import base64
import binascii
import secrets

from aws_iam_backend.drivers.audit import HMAC_KEY_PATH, AuditHasher
from aws_iam_backend.errors import InternalError
from aws_iam_backend.io.protocols import Storage
from aws_iam_backend.io.storage._sync import ops


def stored_key(storage: Storage, path: str, *, size: int = 32) -> bytes:
    """The random key at ``path``, created on first use.

    Creation is atomic (create-if-absent), so processes starting together on one
    store agree on one key. A missing, malformed or short key raises
    :class:`InternalError` without showing the stored value.
    """
    doc = ops.get(storage, path)
    if doc is None:
        fresh = base64.b64encode(secrets.token_bytes(size)).decode()
        ops.create(storage, path, {"key": fresh})
        doc = ops.get(storage, path)
    try:
        key = base64.b64decode(str((doc or {})["key"]), validate=True)
    except (KeyError, binascii.Error, ValueError):
        key = b""
    if len(key) < size:
        raise InternalError(f"storage error: invalid key at {path}")
    return key


def audit_hasher(storage: Storage) -> AuditHasher:
    """The audit hasher keyed by ``sys/audit-hmac-key``, created (atomically) if absent."""
    return AuditHasher(stored_key(storage, HMAC_KEY_PATH))


def audit_hash(storage: Storage, value: str) -> str:
    """The HMAC audit records show for ``value`` (like Vault's ``sys/audit-hash``)."""
    return (audit_hasher(storage)).hash(value)
