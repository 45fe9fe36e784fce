"""Secrets at rest: documents encrypted in storage under a seal key that never enters it.

A :class:`Seal` turns a document's value into a sealed envelope and back;
:class:`~aws_iam_backend.io.storage._sync.sealed.SealedStorage` (and its async twin)
applies one to every document of a storage. :class:`AesGcmSeal` is the implementation:
AES-256-GCM with a random 96-bit nonce per value and the document's storage key as
associated data, so a sealed value copied to another key, altered, or opened with another
key is refused. A sealed value looks like::

    {"sealed": {"v": 1, "kid": "<16 hex>", "data": "<base64 of nonce || ciphertext>"}}

where ``kid`` names the key (a hash of a fixed label and the key, never the key itself)
and the ciphertext holds the value's JSON.

Keys rotate: the first key of an :class:`AesGcmSeal` encrypts, every key decrypts.
:func:`~aws_iam_backend.io.storage.migrate.reseal` rewrites every document under the active
key, after which the older keys can be dropped. :func:`load_seal` reads the keys from a
file or an environment variable, one base64 key a line (``openssl rand -base64 32``, or
:func:`generate_key`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aws_iam_backend.errors import InternalError
from aws_iam_backend.io.protocols import JSONDict

KEY_BYTES = 32
"""The length of a seal key: AES-256."""

SEAL_VERSION = 1
"""The ``v`` of the envelopes :class:`AesGcmSeal` writes."""

_NONCE_BYTES = 12
_TAG_BYTES = 16
_KID_LABEL = b"aws_iam_backend seal key id v1\x00"
_AAD_LABEL = b"aws_iam_backend sealed document v1\x00"

UNSEAL_FAILED = "storage error: cannot unseal the document (wrong seal key or tampered data)"
"""The message of every failure to open a sealed value; it names no key, value or kid."""


class Seal(Protocol):
    """Encrypts document values for storage and decrypts them again.

    ``key`` is the document's storage key; it binds the sealed value to that key, so the
    same ``key`` must be given to :meth:`unseal`. :meth:`unseal` raises
    :class:`~aws_iam_backend.errors.InternalError` (never naming key material or
    plaintext) when the value cannot be opened.
    """

    @property
    def active_key_id(self) -> str:
        """The id of the key new values are sealed under."""
        ...

    def seal(self, key: str, value: JSONDict) -> JSONDict:
        """``value`` as a sealed envelope bound to ``key``."""
        ...

    def unseal(self, key: str, stored: JSONDict) -> JSONDict:
        """The value inside the envelope ``stored``, which must have been sealed for ``key``."""
        ...

    def is_sealed(self, stored: JSONDict) -> bool:
        """Whether ``stored`` is a sealed envelope (not whether it can be opened)."""
        ...

    def key_id_of(self, stored: JSONDict) -> str | None:
        """The id of the key ``stored`` claims to be sealed under; None if it is not sealed."""
        ...


def is_sealed(value: JSONDict) -> bool:
    """Whether a stored ``value`` is a sealed envelope, ``{"sealed": {...}}``.

    Lets a server that has no seal configured tell an operator that the storage is sealed
    rather than fail on documents of an unexpected shape.
    """
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get("sealed"), dict)
    )


def sealed_key_id(value: JSONDict) -> str | None:
    """The ``kid`` a sealed ``value`` names (None: not sealed, or no readable kid)."""
    if not is_sealed(value):
        return None
    kid = value["sealed"].get("kid")
    return kid if isinstance(kid, str) else None


def key_id(key: bytes) -> str:
    """The id of a seal key: the first 16 hex digits of SHA-256 over a fixed label + key."""
    return hashlib.sha256(_KID_LABEL + key).hexdigest()[:16]


def _aad(key: str) -> bytes:
    return _AAD_LABEL + key.encode("utf-8", "surrogatepass")


class AesGcmSeal:
    """AES-256-GCM under ``keys`` (each exactly 32 bytes): the first seals, all unseal.

    The keys themselves are not kept as attributes and never appear in ``repr`` or in an
    error message.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if isinstance(keys, bytes | bytearray):
            raise TypeError("AesGcmSeal takes a sequence of keys, not one key")
        if not keys:
            raise ValueError("a seal needs at least one key")
        ciphers: dict[str, AESGCM] = {}
        for number, key in enumerate(keys, start=1):
            if not isinstance(key, bytes | bytearray):
                raise TypeError(f"seal key {number} is not bytes")
            if len(key) != KEY_BYTES:
                raise ValueError(f"seal key {number} must be {KEY_BYTES} bytes, not {len(key)}")
            kid = key_id(bytes(key))
            if kid in ciphers:
                raise ValueError(f"seal key {number} repeats an earlier key")
            ciphers[kid] = AESGCM(bytes(key))
        self._ciphers = ciphers
        self._active = next(iter(ciphers))

    @property
    def active_key_id(self) -> str:
        """The id of the first key, which seals every new value."""
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key, the active one first."""
        return tuple(self._ciphers)

    def __repr__(self) -> str:
        return f"AesGcmSeal(active_key_id={self._active!r}, keys={len(self._ciphers)})"

    def seal(self, key: str, value: JSONDict) -> JSONDict:
        """``value`` encrypted under the active key, bound to ``key``."""
        plaintext = _encode(value)
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._ciphers[self._active].encrypt(nonce, plaintext, _aad(key))
        data = base64.b64encode(nonce + ciphertext).decode("ascii")
        return {"sealed": {"v": SEAL_VERSION, "kid": self._active, "data": data}}

    def unseal(self, key: str, stored: JSONDict) -> JSONDict:
        """The value sealed in ``stored`` for ``key``; :class:`InternalError` if it cannot
        be opened (not an envelope, unknown key id, wrong key, altered or moved)."""
        if not is_sealed(stored):
            raise InternalError(UNSEAL_FAILED)
        envelope = stored["sealed"]
        version, kid, data = envelope.get("v"), envelope.get("kid"), envelope.get("data")
        if (
            type(version) is not int
            or version != SEAL_VERSION
            or not isinstance(kid, str)
            or not isinstance(data, str)
        ):
            raise InternalError(UNSEAL_FAILED)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise InternalError(UNSEAL_FAILED)
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InternalError(UNSEAL_FAILED) from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise InternalError(UNSEAL_FAILED)
        try:
            plaintext = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(key))
        except InvalidTag:
            raise InternalError(UNSEAL_FAILED) from None
        return _decode(plaintext)

    def is_sealed(self, stored: JSONDict) -> bool:
        """Whether ``stored`` is a sealed envelope."""
        return is_sealed(stored)

    def key_id_of(self, stored: JSONDict) -> str | None:
        """The key id ``stored`` names; None if it is not sealed."""
        return sealed_key_id(stored)


def _encode(value: JSONDict) -> bytes:
    if not isinstance(value, dict):
        raise InternalError("storage error: document is not a JSON object")
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise InternalError("storage error: document is not JSON-serialisable") from None
    return text.encode("utf-8", "surrogatepass")


def _decode(plaintext: bytes) -> JSONDict:
    # The ciphertext authenticated, so this only fails if a writer sealed garbage.
    try:
        value = json.loads(plaintext.decode("utf-8", "surrogatepass"))
    except ValueError:
        raise InternalError("storage error: corrupt document") from None
    if not isinstance(value, dict):
        raise InternalError("storage error: corrupt document")
    return value


def generate_key() -> str:
    """A new seal key: base64 of 32 random bytes, one line of a key file."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_keys(text: str, source: str) -> list[bytes]:
    """The keys in ``text``, one base64 key a line (blank lines and ``#`` comments skipped).

    ``source`` names where the text came from in the :class:`ValueError` raised for a
    bad line; messages give line numbers, never line contents.
    """
    keys: list[bytes] = []
    seen: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{source}, line {number}: not a base64 seal key") from None
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"{source}, line {number}: a seal key must be {KEY_BYTES} bytes, not "
                f"{len(key)} (make one with `openssl rand -base64 32`)"
            )
        if key in seen:
            raise ValueError(f"{source}, line {number}: repeats the key on line {seen[key]}")
        seen[key] = number
        keys.append(key)
    if not keys:
        raise ValueError(f"{source} holds no seal key (make one with `openssl rand -base64 32`)")
    return keys


def read_key_file(path: str) -> str:
    """The text of the key file at ``path``; :class:`ValueError` if it cannot be read or
    group or others may access it (refused like ssh refuses such a private key)."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ValueError(f"seal key file {path} is not a regular file")
            if os.name == "posix" and mode & 0o077:
                raise ValueError(
                    f"seal key file {path} is accessible by group or others "
                    f"(mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`"
                )
            raw = handle.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"cannot read seal key file {path}: {reason}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"seal key file {path} is not text") from None


def load_seal(
    key_file: str | None, key_env: str | None, environ: Mapping[str, str]
) -> AesGcmSeal:
    """The seal whose keys are in the file ``key_file`` or the variable ``key_env`` of
    ``environ`` (exactly one of the two): one base64 key a line, the active key first,
    older keys (still accepted for decryption) after it.

    :class:`ValueError` naming the file or variable (and line) but never its content:
    neither or both given, unreadable or group/other-accessible file, unset variable, no
    key, bad base64, wrong length, duplicate key.
    """
    if (key_file is None) == (key_env is None):
        raise ValueError("configure exactly one of a seal key file or a seal key variable")
    if key_file is not None:
        return AesGcmSeal(parse_keys(read_key_file(key_file), f"seal key file {key_file}"))
    assert key_env is not None
    text = environ.get(key_env)
    if text is None:
        raise ValueError(f"seal key variable {key_env} is not set")
    return AesGcmSeal(parse_keys(text, f"seal key variable {key_env}"))


__all__ = [
    "KEY_BYTES",
    "UNSEAL_FAILED",
    "AesGcmSeal",
    "Seal",
    "generate_key",
    "is_sealed",
    "key_id",
    "load_seal",
    "parse_keys",
    "read_key_file",
    "sealed_key_id",
]
