"""Server challenges: short-lived nonces a client must sign into its login request.

Pure: no I/O. A nonce is ``b64url(expiry 8 bytes big-endian || 16 random bytes)`` ``.``
``b64url(HMAC-SHA256(key, first part))``; only the server, which holds ``key``, can make
one, and :func:`verify_nonce` checks the MAC (constant time) and the expiry. One-time use
is the caller's job (a :class:`~aws_iam_backend.drivers.replay.ReplayCache` claim of
``nonce:<nonce>``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

__all__ = [
    "CHALLENGE_HEADER",
    "DEFAULT_CHALLENGE_TTL",
    "KEY_BYTES",
    "issue_nonce",
    "verify_nonce",
]

CHALLENGE_HEADER = "X-Aws-Iam-Backend-Nonce"
DEFAULT_CHALLENGE_TTL = 60
KEY_BYTES = 32
_RANDOM_BYTES = 16
_MAX_NONCE_LENGTH = 128


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii() or "=" in text:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def issue_nonce(key: bytes, now: datetime, ttl: int = DEFAULT_CHALLENGE_TTL) -> tuple[str, int]:
    """A new nonce valid for ``ttl`` seconds from ``now``; returns it and its expiry (epoch)."""
    expires = int(now.timestamp()) + ttl
    body = _b64(expires.to_bytes(8, "big") + secrets.token_bytes(_RANDOM_BYTES))
    return f"{body}.{_mac(key, body)}", expires


def verify_nonce(key: bytes, nonce: str, now: datetime) -> int | None:
    """The nonce's expiry (epoch seconds) if ``key`` made it and it has not expired; else None."""
    if len(nonce) > _MAX_NONCE_LENGTH:
        return None
    body, dot, mac = nonce.partition(".")
    if not dot or not body.isascii() or not mac.isascii():
        return None
    if not hmac.compare_digest(_mac(key, body), mac):
        return None
    try:
        raw = _unb64(body)
    except (ValueError, binascii.Error):
        return None
    if len(raw) != 8 + _RANDOM_BYTES:
        return None
    expires = int.from_bytes(raw[:8], "big")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if expires <= now.timestamp():
        return None
    return expires
