"""Who is calling: the root token, a token issued by a login, or nobody."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import Counter
from collections.abc import Mapping
from typing import Final

import attrs

from aws_iam_backend.vault.tokens import TokenRecord

MIN_ROOT_TOKEN_LENGTH: Final = 24
MIN_ROOT_TOKEN_DISTINCT: Final = 8
MIN_ROOT_TOKEN_BITS: Final = 64.0
_HTTP_WHITESPACE: Final = " \t"
_COMPARE_KEY: Final = secrets.token_bytes(32)  # per process: keys the digests compared


@attrs.frozen
class Caller:
    """An authenticated caller: ``record`` is None for the root token."""

    token: str = attrs.field(repr=False)
    record: TokenRecord | None

    @property
    def is_root(self) -> bool:
        """True for the configured root token."""
        return self.record is None


def _header_token(value: str) -> str | None:
    """``value`` without surrounding spaces and tabs (HTTP whitespace, and nothing else:
    not NBSP, NEL, U+2028 or the 0x1C-0x1F separators ``str.strip`` also removes); None
    unless what is left is printable ASCII (0x20-0x7E), so such a token reaches no lookup."""
    token = value.strip(_HTTP_WHITESPACE)
    if token and all(" " <= char <= "~" for char in token):
        return token
    return None


def request_token(headers: Mapping[str, str]) -> str | None:
    """The token from ``X-Vault-Token``, else from ``Authorization: Bearer <token>``.

    Only spaces and tabs around it are dropped. A token with any other character outside
    printable ASCII counts as no token (a 403 where one is needed); an ``X-Vault-Token``
    of such characters does not fall back to ``Authorization``.
    """
    raw = headers.get("x-vault-token", "")
    if raw.strip(_HTTP_WHITESPACE):
        return _header_token(raw)
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return _header_token(value)
    return None


def root_token_weakness(token: str) -> str | None:
    """Why ``token`` is too weak to be the production root token, or None if it is not.

    Refused: fewer than :data:`MIN_ROOT_TOKEN_LENGTH` characters; anything but visible
    ASCII (``!`` to ``~``); fewer than :data:`MIN_ROOT_TOKEN_DISTINCT` distinct
    characters; an estimated entropy (its length times the Shannon entropy of its
    character frequencies) under :data:`MIN_ROOT_TOKEN_BITS` bits. Random tokens pass:
    ``openssl rand -base64 32``, ``openssl rand -hex 16``, UUIDs and
    ``secrets.token_urlsafe(18)`` or longer always, 24 hexadecimal digits all but about 1
    draw in 20,000; ``aaaa...``, ``changeme`` repeated and other short words do not.
    (A rule of 16 distinct characters would refuse most hexadecimal tokens.) The reason
    never quotes the token.
    """
    if len(token) < MIN_ROOT_TOKEN_LENGTH:
        return f"is shorter than {MIN_ROOT_TOKEN_LENGTH} characters"
    if not all("!" <= char <= "~" for char in token):
        return "has characters other than visible ASCII (spaces, controls or non-ASCII)"
    counts = Counter(token)
    if len(counts) < MIN_ROOT_TOKEN_DISTINCT:
        return f"has fewer than {MIN_ROOT_TOKEN_DISTINCT} distinct characters"
    bits = -sum(n * math.log2(n / len(token)) for n in counts.values())
    if bits < MIN_ROOT_TOKEN_BITS:
        return f"has an estimated entropy of {bits:.0f} bits, under {MIN_ROOT_TOKEN_BITS:.0f}"
    return None


def same_secret(a: str, b: str) -> bool:
    """Constant-time equality of two secrets (tokens, accessors): compares keyed digests,
    so neither their content nor their lengths show in the time it takes."""
    return hmac.compare_digest(secret_digest(a), secret_digest(b))


def secret_digest(text: str) -> bytes:
    """``text``'s HMAC-SHA-256 under a key of this process: what secrets are compared as
    (32 bytes whatever the length of ``text``)."""
    return hmac.new(_COMPARE_KEY, text.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
