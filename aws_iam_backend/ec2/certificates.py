"""AWS's public certificates for instance identity documents, and Vault's
``config/certificate/<name>`` values.

- :class:`AwsCertificate`: a named certificate and the kind of signature it verifies
  (``pkcs7``: PKCS#7 from ``instance-identity/pkcs7`` or ``/rsa2048``; ``identity``: the
  base64 RSA signature from ``instance-identity/signature``).
- :func:`default_certificates`: the certificates AWS publishes for every region, shipped as
  package data under ``certs/`` (each file cites where its copies come from). They are a
  superset of Vault's built-in ones and are parsed once, at import; a malformed file makes
  the import fail.
- :func:`parse_certificate_config`: an operator's ``aws_public_cert`` and ``type`` with
  Vault's accepted encodings and error texts.

Vault tries every built-in certificate for both kinds of signature; here each built-in
certificate has the type of the AWS family it belongs to. A certificate can only verify
signatures made with its own key, so the accepted signatures are the same.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Final

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, rsa

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.vault.gocompat import Base64Error, b64decode_std, go_quote

__all__ = [
    "CERTIFICATE_TYPES",
    "DEFAULT_CERTIFICATE_TYPE",
    "IDENTITY",
    "MAX_CERTIFICATE_CHARS",
    "PKCS7",
    "AwsCertificate",
    "default_certificates",
    "parse_certificate_config",
]

PKCS7: Final = "pkcs7"
IDENTITY: Final = "identity"
CERTIFICATE_TYPES: Final = (PKCS7, IDENTITY)
DEFAULT_CERTIFICATE_TYPE: Final = PKCS7
MAX_CERTIFICATE_CHARS: Final = 64 * 1024
"""Longest ``aws_public_cert`` accepted (a certificate is a few kilobytes)."""

_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----"
)
# (file, type, key classes its certificates may have); the China regions sign their
# "DSA" PKCS#7 with an RSA key.
_BUNDLES: Final = (
    ("pkcs7-dsa.pem", PKCS7, (dsa.DSAPublicKey, rsa.RSAPublicKey)),
    ("pkcs7-rsa2048.pem", PKCS7, (rsa.RSAPublicKey,)),
    ("identity-rsa.pem", IDENTITY, (rsa.RSAPublicKey,)),
)


@attrs.frozen
class AwsCertificate:
    """A certificate that verifies instance identity signatures of one ``type``.

    ``pem`` is the text the certificate was configured with (Vault stores and returns it
    unchanged); for a built-in certificate, its PEM block.
    """

    name: str
    type: str = attrs.field(validator=attrs.validators.in_(CERTIFICATE_TYPES))
    certificate: x509.Certificate = attrs.field(repr=False)
    pem: str = attrs.field(repr=False)


def default_certificates() -> tuple[AwsCertificate, ...]:
    """The built-in certificates of both types, in file order."""
    return _DEFAULTS


def parse_certificate_config(
    name: str, aws_public_cert: str, type_: str = DEFAULT_CERTIFICATE_TYPE
) -> AwsCertificate:
    """A ``config/certificate/<name>`` write, checked as Vault checks it.

    ``aws_public_cert`` is a PEM certificate or the standard base64 of one (Vault's
    precedence: if it decodes as base64, the decoded text is used). ``type_`` is compared
    case-insensitively. Raises :class:`InvalidRequestError` with Vault's texts.
    """
    if not name:
        raise InvalidRequestError("missing certificate name")
    cert_type = type_.lower()
    if cert_type not in CERTIFICATE_TYPES:
        raise InvalidRequestError(f"invalid certificate type {go_quote(cert_type[:64])}")
    if len(aws_public_cert) > MAX_CERTIFICATE_CHARS:
        raise InvalidRequestError(
            f"aws_public_cert exceeding the limit of {MAX_CERTIFICATE_CHARS} characters"
        )
    try:
        text = b64decode_std(aws_public_cert).decode("utf-8")
    except (Base64Error, UnicodeDecodeError):
        text = aws_public_cert
    if not text:
        raise InvalidRequestError("invalid aws_public_cert")
    return AwsCertificate(name=name, type=cert_type, certificate=_parse_single_pem(text), pem=text)


def _parse_single_pem(text: str) -> x509.Certificate:
    """The one ``CERTIFICATE`` PEM block ``text`` holds (surrounding whitespace allowed)."""
    match = _PEM_BLOCK.fullmatch(text.strip())
    der = _pem_body(match.group(1)) if match else None
    if der is None:
        raise InvalidRequestError("invalid certificate; should be one PEM block only")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise InvalidRequestError("invalid certificate; failed to parse certificate") from None


def _pem_body(body: str) -> bytes | None:
    """A PEM block's base64 body (whitespace ignored), or None if it is not base64."""
    try:
        der = b64decode_std("".join(body.split()))
    except Base64Error:
        return None
    return der or None


def _load_bundle(
    filename: str, cert_type: str, key_types: tuple[type, ...]
) -> list[AwsCertificate]:
    """The certificates of one ``certs/`` file: ``# name: <name>`` then a PEM block."""
    text = resources.files("aws_iam_backend.ec2").joinpath("certs", filename).read_text("ascii")
    out: list[AwsCertificate] = []
    name = ""
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("# name: "):
            name = line.removeprefix("# name: ")
        elif line == "-----BEGIN CERTIFICATE-----":
            block = [line]
            for body_line in lines:
                block.append(body_line)
                if body_line == "-----END CERTIFICATE-----":
                    break
            pem = "\n".join(block) + "\n"
            cert = _parse_single_pem(pem)
            if not name or not isinstance(cert.public_key(), key_types):
                raise ValueError(f"certs/{filename}: bad certificate after {name or 'start'}")
            fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER))
            if not name.endswith("-" + fingerprint.hexdigest()[:12]):
                raise ValueError(f"certs/{filename}: {name} does not match its fingerprint")
            out.append(AwsCertificate(name=name, type=cert_type, certificate=cert, pem=pem))
            name = ""
        elif line and not line.startswith("#"):
            raise ValueError(f"certs/{filename}: unexpected line after {name or 'start'}")
    if not out:
        raise ValueError(f"certs/{filename}: no certificates")
    return out


def _load_defaults() -> tuple[AwsCertificate, ...]:
    certs = [c for bundle in _BUNDLES for c in _load_bundle(*bundle)]
    if len({c.name for c in certs}) != len(certs):
        raise ValueError("certs/: duplicate certificate names")
    return tuple(certs)


_DEFAULTS: Final = _load_defaults()
