"""Signatures of the instance identity document: PKCS#7 SignedData and the bare RSA one.

- :func:`verify_pkcs7`: Vault's ``pkcs7`` login field (``instance-identity/pkcs7``, DSA, or
  ``/rsa2048``, RSA), checked against the ``pkcs7`` certificates given; returns the signed
  document.
- :func:`verify_identity_signature`: Vault's ``identity`` + ``signature`` pair (RSA
  PKCS#1 v1.5 with SHA-256 over the document), checked against the ``identity``
  certificates given; returns the document.

The SignedData reader (RFC 2315, RFC 5652) takes DER and the BER AWS emits (indefinite
lengths, the content as a constructed OCTET STRING) and nothing else: definite lengths must
be minimal, and size, element count and nesting depth are bounded. As in Vault, the
certificates the blob carries are ignored: the signer (issuer and serial number) must be one
of the given certificates. With signed attributes, ``contentType`` and ``messageDigest`` must
be present and match, a ``signingTime`` must fall within the certificate's validity, a
``CMSAlgorithmProtection`` must name the algorithms used, and the signature covers the DER
``SET OF`` the attributes; without them it covers the content. Unlike Vault, the certificate
must also be valid at ``now``. Every malformed or unverifiable input raises
:class:`~aws_iam_backend.errors.InvalidRequestError`; messages name the problem, never the
input.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple, TypeVar

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from aws_iam_backend.ec2.certificates import IDENTITY, PKCS7, AwsCertificate
from aws_iam_backend.ec2.document import MAX_DOCUMENT_BYTES
from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.vault.gocompat import Base64Error, b64decode_std

__all__ = [
    "MAX_IDENTITY_CHARS",
    "MAX_PKCS7_CHARS",
    "MAX_SIGNATURE_BYTES",
    "MAX_SIGNATURE_CHARS",
    "verify_identity_signature",
    "verify_pkcs7",
]

MAX_PKCS7_CHARS: Final = 32 * 1024
"""Longest ``pkcs7`` accepted (AWS's are about 1.5 KiB of base64)."""
MAX_IDENTITY_CHARS: Final = 24 * 1024
"""Longest base64 ``identity`` accepted: a 16 KiB document, with line breaks."""
MAX_SIGNATURE_CHARS: Final = 2 * 1024
"""Longest ``signature`` accepted (the base64 of an 8192-bit RSA signature is 1368)."""
MAX_SIGNATURE_BYTES: Final = 1024
"""Longest decoded ``signature`` accepted (an 8192-bit RSA signature)."""

_T = TypeVar("_T")

_MAX_DEPTH: Final = 32
_MAX_ELEMENTS: Final = 4096
_NOT_FOUND: Final = "certificates to verify the signature are not found"
_PEM_BEGIN: Final = "-----BEGIN PKCS7-----"
_PEM_END: Final = "-----END PKCS7-----"
_PEM_SPACE: Final = str.maketrans("", "", " \t\r\n")

# DER identifier octets.
_INTEGER: Final = b"\x02"
_OCTET_STRING: Final = b"\x04"
_OCTET_STRING_CONSTRUCTED: Final = b"\x24"
_NULL: Final = b"\x05"
_OID: Final = b"\x06"
_UTC_TIME: Final = b"\x17"
_GENERALIZED_TIME: Final = b"\x18"
_SEQUENCE: Final = b"\x30"
_SET: Final = b"\x31"
_CONTEXT_0: Final = b"\xa0"
_CONTEXT_1: Final = b"\xa1"


def _oid(dotted: str) -> bytes:
    """The DER content octets of an object identifier."""
    first, second, *rest = (int(part) for part in dotted.split("."))
    out = bytearray()
    for value in (40 * first + second, *rest):
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | value & 0x7F)
            value >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


_SIGNED_DATA: Final = _oid("1.2.840.113549.1.7.2")
_DATA: Final = _oid("1.2.840.113549.1.7.1")
_CONTENT_TYPE: Final = _oid("1.2.840.113549.1.9.3")
_MESSAGE_DIGEST: Final = _oid("1.2.840.113549.1.9.4")
_SIGNING_TIME: Final = _oid("1.2.840.113549.1.9.5")
_ALGORITHM_PROTECTION: Final = _oid("1.2.840.113549.1.9.52")
_DIGESTS: Final[dict[bytes, str]] = {
    _oid("1.3.14.3.2.26"): "sha1",
    _oid("2.16.840.1.101.3.4.2.1"): "sha256",
}
# Signature algorithm -> (key kind, the digest it names or None when it names none).
_SIGNATURES: Final[dict[bytes, tuple[str, str | None]]] = {
    _oid("1.2.840.10040.4.1"): ("dsa", None),
    _oid("1.2.840.10040.4.3"): ("dsa", "sha1"),
    _oid("2.16.840.1.101.3.4.3.2"): ("dsa", "sha256"),
    _oid("1.2.840.113549.1.1.1"): ("rsa", None),
    _oid("1.2.840.113549.1.1.5"): ("rsa", "sha1"),
    _oid("1.2.840.113549.1.1.11"): ("rsa", "sha256"),
}
_HASHES: Final[dict[str, type[hashes.SHA1] | type[hashes.SHA256]]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
}
_UTC_TIME_FORMAT: Final = re.compile(
    rb"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z"
)
_GENERALIZED_TIME_FORMAT: Final = re.compile(
    rb"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z"
)


def verify_pkcs7(pkcs7: str, certificates: Sequence[AwsCertificate], *, now: datetime) -> bytes:
    """Verify a ``pkcs7`` login value and return the signed content (the document JSON).

    ``pkcs7`` is base64 (line breaks, spaces and an optional ``PKCS7`` PEM armour
    allowed); only the certificates of type ``pkcs7`` are used; ``now`` must be aware.
    """
    _require_aware(now)
    der = _decode_pkcs7_text(pkcs7)
    try:
        signed = _parse_signed_data(der)
    except _BerError as exc:
        raise InvalidRequestError(
            f"failed to parse the BER encoded PKCS#7 signature: {exc}"
        ) from None
    usable = [c.certificate for c in certificates if c.type == PKCS7]
    if not usable:
        raise InvalidRequestError(_NOT_FOUND)
    failure = _verify_signer(signed, usable, now)
    if failure is not None:
        raise InvalidRequestError(f"failed to verify the signature: {failure}")
    if not signed.content:
        raise InvalidRequestError("instance identity document could not be found in the signature")
    return signed.content


def verify_identity_signature(
    identity: str | bytes,
    signature: str | bytes,
    certificates: Sequence[AwsCertificate],
    *,
    now: datetime,
) -> bytes:
    """Verify Vault's ``identity`` + ``signature`` pair and return the document bytes.

    Each is either the login field (``str``: standard base64, line breaks allowed) or its
    already decoded bytes. Only the certificates of type ``identity`` that hold an RSA key
    and are valid at ``now`` (aware) are tried.
    """
    _require_aware(now)
    document = _decoded(
        identity,
        field="identity",
        limits=(MAX_IDENTITY_CHARS, MAX_DOCUMENT_BYTES),
        missing="missing instance identity document",
        invalid="failed to base64 decode the instance identity document",
    )
    signature_bytes = _decoded(
        signature,
        field="signature",
        limits=(MAX_SIGNATURE_CHARS, MAX_SIGNATURE_BYTES),
        missing="missing SHA256 RSA signature of the instance identity document",
        invalid=(
            "failed to base64 decode the SHA256 RSA signature of the instance identity document"
        ),
    )
    usable = [c.certificate for c in certificates if c.type == IDENTITY]
    if not usable:
        raise InvalidRequestError(_NOT_FOUND)
    for cert in usable:
        key = _public_key(cert)
        if not isinstance(key, rsa.RSAPublicKey) or _invalid_at(cert, now):
            continue
        try:
            key.verify(signature_bytes, document, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, UnsupportedAlgorithm, ValueError):
            continue
        return document
    raise InvalidRequestError(
        "instance identity verification using SHA256 RSA signature is unsuccessful"
    )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _decoded(
    value: str | bytes, *, field: str, limits: tuple[int, int], missing: str, invalid: str
) -> bytes:
    """``value``'s bytes: a base64 login field decoded (Go's rules), or bytes as given."""
    max_chars, max_bytes = limits
    if isinstance(value, str):
        if len(value) > max_chars:
            raise InvalidRequestError(f"{field} exceeding the limit of {max_chars} characters")
        if not value:
            raise InvalidRequestError(missing)
        try:
            value = b64decode_std(value)
        except Base64Error:
            raise InvalidRequestError(invalid) from None
        if not value:
            raise InvalidRequestError(invalid)
    if not value:
        raise InvalidRequestError(missing)
    if len(value) > max_bytes:
        raise InvalidRequestError(f"{field} exceeding the limit of {max_bytes} bytes")
    return value


def _decode_pkcs7_text(pkcs7: str) -> bytes:
    """The BER bytes of a ``pkcs7`` value: base64, optionally PEM-armoured."""
    if len(pkcs7) > MAX_PKCS7_CHARS:
        raise InvalidRequestError(f"pkcs7 exceeding the limit of {MAX_PKCS7_CHARS} characters")
    text = pkcs7.strip(" \t\r\n")
    if text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END):
        text = text[len(_PEM_BEGIN) : -len(_PEM_END)]
    try:
        der = b64decode_std(text.translate(_PEM_SPACE))
    except Base64Error:
        der = b""
    if not der:
        raise InvalidRequestError("failed to decode the PEM encoded PKCS#7 signature")
    return der


# --- BER reader ---------------------------------------------------------------------------


class _BerError(Exception):
    """Malformed or unsupported SignedData; the message says what, never the bytes."""


class _Node(NamedTuple):
    """One element: DER identifier octets, primitive content, constructed children."""

    identifier: bytes
    content: bytes
    children: tuple[_Node, ...]


class _Reader:
    """A BER reader: minimal definite lengths, indefinite lengths on constructed elements."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._elements = 0

    def read(self) -> _Node:
        node, end = self._element(0, len(self._data), 0)
        if end != len(self._data):
            raise _BerError("trailing data")
        return node

    def _element(self, pos: int, end: int, depth: int) -> tuple[_Node, int]:
        self._elements += 1
        if self._elements > _MAX_ELEMENTS:
            raise _BerError("too many elements")
        if depth > _MAX_DEPTH:
            raise _BerError("nested too deeply")
        data = self._data
        if pos >= end:
            raise _BerError("truncated")
        start, first = pos, data[pos]
        pos += 1
        if first & 0xDF == 0:
            raise _BerError("unexpected end-of-contents")
        if first & 0x1F == 0x1F:
            pos = self._high_tag_number(pos, end)
        identifier = data[start:pos]
        if pos >= end:
            raise _BerError("truncated")
        length_octet = data[pos]
        pos += 1
        constructed = bool(first & 0x20)
        if length_octet == 0x80:
            if not constructed:
                raise _BerError("indefinite length on a primitive element")
            return self._until_end_of_contents(identifier, pos, end, depth)
        length, pos = self._definite_length(length_octet, pos, end)
        content_end = pos + length
        if not constructed:
            return _Node(identifier, data[pos:content_end], ()), content_end
        children = []
        while pos < content_end:
            child, pos = self._element(pos, content_end, depth + 1)
            children.append(child)
        return _Node(identifier, b"", tuple(children)), content_end

    def _until_end_of_contents(
        self, identifier: bytes, pos: int, end: int, depth: int
    ) -> tuple[_Node, int]:
        children = []
        while not (pos + 2 <= end and self._data[pos : pos + 2] == b"\x00\x00"):
            child, pos = self._element(pos, end, depth + 1)
            children.append(child)
        return _Node(identifier, b"", tuple(children)), pos + 2

    def _high_tag_number(self, pos: int, end: int) -> int:
        number = 0
        for index in range(4):
            if pos >= end:
                raise _BerError("truncated")
            octet = self._data[pos]
            pos += 1
            if index == 0 and octet == 0x80:
                raise _BerError("non-minimal tag")
            number = number << 7 | octet & 0x7F
            if not octet & 0x80:
                if number < 0x1F:
                    raise _BerError("non-minimal tag")
                return pos
        raise _BerError("tag number too large")

    def _definite_length(self, length_octet: int, pos: int, end: int) -> tuple[int, int]:
        if length_octet < 0x80:
            length = length_octet
        else:
            count = length_octet & 0x7F
            if count > 3:
                raise _BerError("length too large")
            if end - pos < count:
                raise _BerError("truncated")
            length = int.from_bytes(self._data[pos : pos + count])
            if self._data[pos] == 0 or length < 0x80:
                raise _BerError("non-minimal length")
            pos += count
        if length > end - pos:
            raise _BerError("length exceeds the data")
        return length, pos


def _der(node: _Node) -> bytes:
    """The DER encoding of ``node`` (definite lengths; content as read)."""
    if node.identifier[0] & 0x20:
        content = b"".join(_der(child) for child in node.children)
    else:
        content = node.content
    return node.identifier + _der_length(len(content)) + content


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8)
    return bytes([0x80 | len(octets)]) + octets


def _children(node: _Node, identifier: bytes, what: str) -> tuple[_Node, ...]:
    if node.identifier != identifier:
        raise _BerError(f"expected {what}")
    return node.children


def _object_identifier(node: _Node) -> bytes:
    if node.identifier != _OID or not node.content:
        raise _BerError("expected OBJECT IDENTIFIER")
    return node.content


def _integer(node: _Node) -> int:
    content = node.content
    if node.identifier != _INTEGER or not content:
        raise _BerError("expected INTEGER")
    if len(content) > 1 and (content[0], content[1] >> 7) in ((0, 0), (0xFF, 1)):
        raise _BerError("non-minimal INTEGER")
    return int.from_bytes(content, signed=True)


def _octets(node: _Node) -> bytes:
    """An OCTET STRING's value; BER's constructed form is concatenated."""
    if node.identifier == _OCTET_STRING:
        return node.content
    if node.identifier == _OCTET_STRING_CONSTRUCTED:
        return b"".join(_octets(child) for child in node.children)
    raise _BerError("expected OCTET STRING")


def _algorithm(node: _Node) -> bytes:
    """An AlgorithmIdentifier's OID; its parameters must be absent or NULL."""
    parts = _children(node, _SEQUENCE, "AlgorithmIdentifier")
    if not 1 <= len(parts) <= 2:
        raise _BerError("malformed AlgorithmIdentifier")
    if len(parts) == 2 and (parts[1].identifier != _NULL or parts[1].content):
        raise _BerError("unsupported algorithm parameters")
    return _object_identifier(parts[0])


def _time(node: _Node) -> datetime:
    """A UTCTime or GeneralizedTime in its DER form (``...SSZ``)."""
    if node.identifier == _UTC_TIME:
        match = _UTC_TIME_FORMAT.fullmatch(node.content)
    elif node.identifier == _GENERALIZED_TIME:
        match = _GENERALIZED_TIME_FORMAT.fullmatch(node.content)
    else:
        raise _BerError("expected a time")
    if match is None:
        raise _BerError("malformed time")
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    if node.identifier == _UTC_TIME:
        year += 1900 if year >= 50 else 2000
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _BerError("malformed time") from None


# --- SignedData ----------------------------------------------------------------------------


@attrs.frozen
class _Signer:
    """The one SignerInfo, with its signed attributes checked for shape."""

    issuer: bytes
    serial: int
    digest: str
    key_kind: str
    digest_oid: bytes
    signature_oid: bytes
    signature: bytes
    signed_attributes: bytes | None  # the DER SET OF the signature covers
    content_type: bytes | None
    message_digest: bytes | None
    signing_time: datetime | None
    protection: tuple[bytes, bytes | None] | None  # (digest OID, signature OID)


@attrs.frozen
class _SignedData:
    content: bytes
    signer: _Signer


def _parse_signed_data(der: bytes) -> _SignedData:
    info = _children(_Reader(der).read(), _SEQUENCE, "ContentInfo")
    if len(info) != 2 or _object_identifier(info[0]) != _SIGNED_DATA:
        raise _BerError("not a SignedData")
    wrapped = _children(info[1], _CONTEXT_0, "SignedData")
    if len(wrapped) != 1:
        raise _BerError("malformed SignedData")
    fields = _children(wrapped[0], _SEQUENCE, "SignedData")
    if len(fields) < 4:
        raise _BerError("malformed SignedData")
    if _integer(fields[0]) != 1:
        raise _BerError("unsupported SignedData version")
    _children(fields[1], _SET, "digestAlgorithms")
    content = _encapsulated_content(fields[2])
    rest = list(fields[3:])
    for optional in (_CONTEXT_0, _CONTEXT_1):  # certificates (ignored), crls (ignored)
        if rest and rest[0].identifier == optional:
            rest.pop(0)
    if len(rest) != 1:
        raise _BerError("malformed SignedData")
    signer_infos = _children(rest[0], _SET, "signerInfos")
    if len(signer_infos) != 1:
        raise _BerError("expected exactly one signer")
    return _SignedData(content=content, signer=_parse_signer(signer_infos[0]))


def _encapsulated_content(node: _Node) -> bytes:
    parts = _children(node, _SEQUENCE, "ContentInfo")
    if not 1 <= len(parts) <= 2 or _object_identifier(parts[0]) != _DATA:
        raise _BerError("content is not id-data")
    if len(parts) == 1:
        return b""
    explicit = _children(parts[1], _CONTEXT_0, "content")
    if len(explicit) != 1:
        raise _BerError("malformed content")
    return _octets(explicit[0])


def _parse_signer(node: _Node) -> _Signer:
    fields = list(_children(node, _SEQUENCE, "SignerInfo"))
    if len(fields) < 5:
        raise _BerError("malformed SignerInfo")
    if _integer(fields[0]) != 1:
        raise _BerError("unsupported SignerInfo version")
    sid = _children(fields[1], _SEQUENCE, "IssuerAndSerialNumber")
    if len(sid) != 2:
        raise _BerError("malformed IssuerAndSerialNumber")
    _children(sid[0], _SEQUENCE, "issuer Name")
    digest_oid = _algorithm(fields[2])
    rest = fields[3:]
    attributes = rest.pop(0) if rest[0].identifier == _CONTEXT_0 else None
    if len(rest) == 3 and rest[2].identifier == _CONTEXT_1:  # unsigned attributes (ignored)
        rest.pop()
    if len(rest) != 2:
        raise _BerError("malformed SignerInfo")
    signature_oid = _algorithm(rest[0])
    digest = _DIGESTS.get(digest_oid)
    if digest is None:
        raise _BerError("unsupported digest algorithm")
    key_kind, named_digest = _SIGNATURES.get(signature_oid, ("", None))
    if not key_kind:
        raise _BerError("unsupported signature algorithm")
    if named_digest not in (None, digest):
        raise _BerError("signature and digest algorithms disagree")
    signer = _Signer(
        issuer=_der(sid[0]),
        serial=_integer(sid[1]),
        digest=digest,
        key_kind=key_kind,
        digest_oid=digest_oid,
        signature_oid=signature_oid,
        signature=_octets(rest[1]),
        signed_attributes=None,
        content_type=None,
        message_digest=None,
        signing_time=None,
        protection=None,
    )
    return signer if attributes is None else _with_attributes(signer, attributes)


def _with_attributes(signer: _Signer, node: _Node) -> _Signer:
    """``signer`` with its signed attributes read; their SET OF is re-encoded as DER."""
    values: dict[bytes, tuple[_Node, ...]] = {}
    for attribute in node.children:
        parts = _children(attribute, _SEQUENCE, "Attribute")
        if len(parts) != 2:
            raise _BerError("malformed Attribute")
        kind = _object_identifier(parts[0])
        if kind in values:
            raise _BerError("duplicate signed attribute")
        values[kind] = _children(parts[1], _SET, "attribute values")
        if not values[kind]:
            raise _BerError("attribute without values")
    if not values:
        raise _BerError("empty signed attributes")
    encoded = b"".join(sorted(_der(attribute) for attribute in node.children))
    return attrs.evolve(
        signer,
        signed_attributes=_SET + _der_length(len(encoded)) + encoded,
        content_type=_single(values, _CONTENT_TYPE, _object_identifier),
        message_digest=_single(values, _MESSAGE_DIGEST, _primitive_octets),
        signing_time=_single(values, _SIGNING_TIME, _time),
        protection=_single(values, _ALGORITHM_PROTECTION, _algorithm_protection),
    )


def _single(
    values: dict[bytes, tuple[_Node, ...]], kind: bytes, read: Callable[[_Node], _T]
) -> _T | None:
    found = values.get(kind)
    if found is None:
        return None
    if len(found) != 1:
        raise _BerError("signed attribute with several values")
    return read(found[0])


def _primitive_octets(node: _Node) -> bytes:
    if node.identifier != _OCTET_STRING:
        raise _BerError("expected OCTET STRING")
    return node.content


def _algorithm_protection(node: _Node) -> tuple[bytes, bytes | None]:
    """RFC 6211's (digestAlgorithm, [1] signatureAlgorithm); None for a MAC algorithm."""
    parts = _children(node, _SEQUENCE, "CMSAlgorithmProtection")
    if len(parts) != 2:
        raise _BerError("malformed CMSAlgorithmProtection")
    digest_oid = _algorithm(parts[0])
    if parts[1].identifier != _CONTEXT_1:
        return digest_oid, None
    return digest_oid, _algorithm(parts[1]._replace(identifier=_SEQUENCE))


# --- verification --------------------------------------------------------------------------


def _verify_signer(
    signed: _SignedData, certificates: list[x509.Certificate], now: datetime
) -> str | None:
    """Why the signature does not verify with any matching certificate, or None."""
    signer = signed.signer
    candidates = [
        cert
        for cert in certificates
        if cert.serial_number == signer.serial and _issuer(cert) == signer.issuer
    ]
    if not candidates:
        return "no certificate for signer"
    data = signed.content
    if signer.signed_attributes is not None:
        problem = _attribute_problem(signer, signed.content)
        if problem is not None:
            return problem
        data = signer.signed_attributes
    failure = None
    for cert in candidates:
        failure = _certificate_problem(cert, signer, data, now)
        if failure is None:
            break
    return failure


def _attribute_problem(signer: _Signer, content: bytes) -> str | None:
    if signer.content_type is None:
        return "missing content type attribute"
    if signer.content_type != _DATA:
        return "content type mismatch"
    if signer.message_digest is None:
        return "missing message digest attribute"
    digest = hashes.Hash(_HASHES[signer.digest]())
    digest.update(content)
    if not hmac.compare_digest(signer.message_digest, digest.finalize()):
        return "message digest mismatch"
    if signer.protection is not None and signer.protection != (
        signer.digest_oid,
        signer.signature_oid,
    ):
        return "algorithm protection mismatch"
    return None


def _certificate_problem(
    cert: x509.Certificate, signer: _Signer, data: bytes, now: datetime
) -> str | None:
    if _invalid_at(cert, now):
        return "signer certificate is not valid at the current time"
    if signer.signing_time is not None and _invalid_at(cert, signer.signing_time):
        return "signing time is outside of the signer certificate's validity"
    key = _public_key(cert)
    algorithm = _HASHES[signer.digest]()
    try:
        if signer.key_kind == "dsa" and isinstance(key, dsa.DSAPublicKey):
            key.verify(signer.signature, data, algorithm)
        elif signer.key_kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signer.signature, data, padding.PKCS1v15(), algorithm)
        else:
            return "signer certificate key does not match the signature algorithm"
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return "signature mismatch"
    return None


def _public_key(cert: x509.Certificate) -> CertificatePublicKeyTypes | None:
    """The certificate's key, or None if cryptography cannot load it (an exotic algorithm)."""
    try:
        return cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return None


def _invalid_at(cert: x509.Certificate, moment: datetime) -> bool:
    return not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc


def _issuer(cert: x509.Certificate) -> bytes | None:
    """The DER of the certificate's issuer Name as encoded in it, or None if unreadable."""
    try:
        tbs = _children(_Reader(cert.tbs_certificate_bytes).read(), _SEQUENCE, "TBSCertificate")
        index = 3 if tbs and tbs[0].identifier == _CONTEXT_0 else 2
        return _der(tbs[index]) if len(tbs) > index else None
    except _BerError:
        return None
