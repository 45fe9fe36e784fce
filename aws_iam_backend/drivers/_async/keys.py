"""Server-side secret keys kept in storage (token HMAC, audit HMAC, challenge MAC)."""

from __future__ import annotations

import base64
import binascii
import secrets

from aws_iam_backend.drivers.audit import HMAC_KEY_PATH, AuditHasher
from aws_iam_backend.errors import InternalError
from aws_iam_backend.io.protocols import AsyncStorage
from aws_iam_backend.io.storage._async import ops


async def stored_key(storage: AsyncStorage, path: str, *, size: int = 32) -> bytes:
    """The random key at ``path``, created on first use.

    Creation is atomic (create-if-absent), so processes starting together on one
    store agree on one key. A missing, malformed or short key raises
    :class:`InternalError` without showing the stored value.
    """
    doc = await ops.get(storage, path)
    if doc is None:
        fresh = base64.b64encode(secrets.token_bytes(size)).decode()
        await ops.create(storage, path, {"key": fresh})
        doc = await ops.get(storage, path)
    try:
        key = base64.b64decode(str((doc or {})["key"]), validate=True)
    except (KeyError, binascii.Error, ValueError):
        key = b""
    if len(key) < size:
        raise InternalError(f"storage error: invalid key at {path}")
    return key


async def audit_hasher(storage: AsyncStorage) -> AuditHasher:
    """The audit hasher keyed by ``sys/audit-hmac-key``, created (atomically) if absent."""
    return AuditHasher(await stored_key(storage, HMAC_KEY_PATH))


async def audit_hash(storage: AsyncStorage, value: str) -> str:
    """The HMAC audit records show for ``value`` (like Vault's ``sys/audit-hash``)."""
    return (await audit_hasher(storage)).hash(value)
