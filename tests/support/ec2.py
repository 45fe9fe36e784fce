"""Builders for ``ec2`` login tests against moto's server: a test signing certificate,
instance identity documents, their PKCS#7 and identity signatures, the login payloads,
instances in moto, and a backend configured for all of it.

Everything here is reusable from any test module (sync or async driver alike):

- :class:`SigningCert` / :func:`make_signing_cert`: a self-signed RSA certificate (valid
  from a day ago for ten years unless told otherwise) that signs documents the way AWS
  does: :meth:`SigningCert.pkcs7` (``instance-identity/rsa2048``: SignedData, RSA-SHA256,
  signed attributes, the document embedded) and :meth:`SigningCert.signature`
  (``instance-identity/signature``: PKCS#1 v1.5 over SHA-256). Register it with
  :func:`register_certificate` (type ``pkcs7`` or ``identity``).
- :func:`identity_document`: the JSON AWS serves at ``instance-identity/document``.
- :func:`pkcs7_login` / :func:`identity_login`: the ``auth/<mount>/login`` body; ``nonce``
  None leaves the field out (the server generates one), ``""`` sends it empty.
- :func:`tamper`: a PKCS#7 blob with bytes of its document replaced, unsigned.
- :class:`Ec2World` / :func:`build_world`: a VPC, subnet, AMI and instance profile (with
  one role) in moto; :meth:`Ec2World.run_instance` starts an :class:`Instance`, whose
  :meth:`Instance.document` is its identity document; :func:`instance_profile` makes
  another profile (in any account). :class:`Fleet` / :func:`build_fleet`: such a world
  with instances in every state, and one in another account.
- :func:`client_config`, :func:`configure_backend`: ``config/client`` pointing every AWS
  call at moto, and a backend set up with it and named certificates.
- :class:`ManualClock`: a clock tests move by hand (tidy, renewal expiries).
- :func:`other_account_admin`: an administrator role in a second moto account (for
  ``config/sts/<account>``); :class:`OtherAccount` / :func:`build_other_account`: that
  role, and an instance running there with a profile holding a role of that account.
- :func:`access_list_entry`, :func:`token_keys`: what the backend stored.

The fixtures at the end (``world``, ``signer``, ``id_signer``) are module scoped; import
their functions (``world_fixture``, ...) into a test module to use them (``# noqa: F401``).
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from aws_iam_backend.drivers.shapes import Request
from aws_iam_backend.io.protocols import Storage
from aws_iam_backend.vault.tokens import TOKEN_PREFIX
from tests.support.moto_server import ADMIN_POLICY, ASSUME_POLICY, Keys, MotoServer

ACCOUNT = "123456789012"
"""moto's default account: every instance :func:`build_world` makes is in it."""
OTHER_ACCOUNT = "222222222222"
"""A second moto account (see :func:`other_account_admin`)."""
REGION = "us-west-2"
"""The region :func:`build_world` runs instances in."""
PROFILE_PATH = "/fleet/"
"""The IAM path of the world's instance profile."""
ROLE_PATH = "/svc/"
"""The IAM path of the role in the world's instance profile."""


def unique(prefix: str) -> str:
    """``prefix`` and 8 random hex digits (moto names are shared by the whole session)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def rfc3339(moment: datetime) -> str:
    """``moment`` as AWS writes ``pendingTime`` (UTC, whole seconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- clock ---------------------------------------------------------------------------


class ManualClock:
    """A :class:`~aws_iam_backend.io.clock.Clock` that only moves when told (thread-safe).

    Starts at ``start`` (default: the wall clock, to the second, so signatures made now
    fall within the test certificates' validity)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds``; the new time."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


# --- certificates and signatures -----------------------------------------------------


@attrs.frozen
class SigningCert:
    """A certificate and its RSA key, signing identity documents as AWS does."""

    key: rsa.RSAPrivateKey = attrs.field(repr=False)
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        """The certificate as one PEM block (what ``aws_public_cert`` takes)."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def pkcs7(self, document: bytes) -> str:
        """The base64 (one line) of a DER SignedData over ``document``: RSA-SHA256 with
        signed attributes (content type, message digest, signing time now), the document
        embedded and this certificate included (the backend ignores included ones)."""
        der = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(document)
            .add_signer(self.cert, self.key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
        return base64.b64encode(der).decode("ascii")

    def signature(self, document: bytes) -> str:
        """The base64 PKCS#1 v1.5 SHA-256 signature of ``document``."""
        raw = self.key.sign(document, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode("ascii")


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key (about a tenth of a second: share it where you can)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_signing_cert(
    *,
    common_name: str | None = None,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> SigningCert:
    """A self-signed certificate with a random serial, valid from ``not_before`` (default
    a day ago) to ``not_after`` (default ten years on). Certificates are told apart by
    issuer and serial, so several may share one ``key``."""
    now = datetime.now(UTC)
    key = key or new_rsa_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aws-iam-backend tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name or unique("ec2-signer-")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return SigningCert(key=key, cert=cert)


# --- documents and login payloads ----------------------------------------------------


def identity_document(
    *,
    instance_id: str,
    image_id: str,
    pending_time: str,
    account_id: str = ACCOUNT,
    region: str = REGION,
    **extra: Any,
) -> bytes:
    """An instance identity document as AWS serves it (two-space indent, ``" : "``);
    ``extra`` adds or replaces fields by their JSON names (None writes ``null``)."""
    fields: dict[str, Any] = {
        "accountId": account_id,
        "architecture": "x86_64",
        "availabilityZone": f"{region}a",
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": image_id,
        "instanceId": instance_id,
        "instanceType": "t2.micro",
        "kernelId": None,
        "pendingTime": pending_time,
        "privateIp": "10.0.1.10",
        "ramdiskId": None,
        "region": region,
        "version": "2017-09-30",
    }
    fields.update(extra)
    return json.dumps(fields, indent=2, separators=(",", " : ")).encode("utf-8")


def _with_common(payload: dict[str, str], role: str | None, nonce: str | None) -> dict[str, str]:
    if role is not None:
        payload["role"] = role
    if nonce is not None:
        payload["nonce"] = nonce
    return payload


def pkcs7_login(
    signer: SigningCert, document: bytes, *, role: str | None = None, nonce: str | None = None
) -> dict[str, str]:
    """An ``ec2`` login body with ``pkcs7``; ``role``/``nonce`` None leave them out."""
    return _with_common({"pkcs7": signer.pkcs7(document)}, role, nonce)


def identity_login(
    signer: SigningCert, document: bytes, *, role: str | None = None, nonce: str | None = None
) -> dict[str, str]:
    """An ``ec2`` login body with ``identity`` and ``signature`` (both base64)."""
    payload = {
        "identity": base64.b64encode(document).decode("ascii"),
        "signature": signer.signature(document),
    }
    return _with_common(payload, role, nonce)


def tamper(pkcs7_b64: str, old: bytes, new: bytes) -> str:
    """``pkcs7_b64`` with the one occurrence of ``old`` replaced by ``new`` (same length,
    so the DER stays well-formed and only the signature check can notice)."""
    if len(old) != len(new):
        raise ValueError("replace with as many bytes")
    der = base64.b64decode(pkcs7_b64)
    if der.count(old) != 1:
        raise ValueError("the bytes to replace must occur exactly once")
    return base64.b64encode(der.replace(old, new)).decode("ascii")


# --- moto ------------------------------------------------------------------------------


@attrs.frozen
class Instance:
    """A running instance in moto (as :meth:`Ec2World.run_instance` started it)."""

    instance_id: str
    image_id: str
    pending_time: str
    subnet_id: str
    vpc_id: str
    profile_arn: str
    private_dns_name: str

    def document(self, **overrides: Any) -> bytes:
        """Its identity document; ``overrides`` are :func:`identity_document` keywords
        (``pending_time``, ``account_id``, ``region``, ...) or JSON field names."""
        fields: dict[str, Any] = {
            "instance_id": self.instance_id,
            "image_id": self.image_id,
            "pending_time": self.pending_time,
        }
        fields.update(overrides)
        return identity_document(**fields)


@attrs.frozen
class Ec2World:
    """Shared moto resources in :data:`ACCOUNT`/:data:`REGION`: an AMI, a VPC with one
    subnet, and an instance profile (path :data:`PROFILE_PATH`) holding one role (path
    :data:`ROLE_PATH`); ``profile`` and ``role`` are IAM's descriptions of them."""

    moto: MotoServer = attrs.field(repr=False)
    image_id: str
    vpc_id: str
    subnet_id: str
    profile: dict[str, Any]
    role: dict[str, Any]

    @property
    def profile_arn(self) -> str:
        return str(self.profile["Arn"])

    @property
    def profile_name(self) -> str:
        return str(self.profile["InstanceProfileName"])

    @property
    def role_arn(self) -> str:
        return str(self.role["Arn"])

    def ec2(self, keys: Keys | None = None) -> Any:
        """An EC2 client in :data:`REGION` with ``keys`` (default moto's administrator's)."""
        return self.moto.client("ec2", keys or self.moto.admin, REGION)

    def run_instance(
        self,
        *,
        profile: bool = True,
        subnet: bool = True,
        tags: Mapping[str, str] | None = None,
        profile_arn: str | None = None,
        keys: Keys | None = None,
    ) -> Instance:
        """Start an instance of the world's AMI, in its subnet and with its instance
        profile (or the one at ``profile_arn``) unless told not to, as ``keys`` (default
        moto's administrator, in :data:`ACCOUNT`); ``pending_time`` is its launch time."""
        profile_arn = (profile_arn or self.profile_arn) if profile else ""
        extra: dict[str, Any] = {}
        if subnet:
            extra["SubnetId"] = self.subnet_id
        if profile_arn:
            extra["IamInstanceProfile"] = {"Arn": profile_arn}
        if tags:
            extra["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        raw = self.ec2(keys).run_instances(ImageId=self.image_id, MinCount=1, MaxCount=1, **extra)
        described = raw["Instances"][0]
        return Instance(
            instance_id=described["InstanceId"],
            image_id=described["ImageId"],
            pending_time=rfc3339(described["LaunchTime"]),
            subnet_id=described.get("SubnetId", ""),
            vpc_id=described.get("VpcId", ""),
            profile_arn=profile_arn,
            private_dns_name=described.get("PrivateDnsName", ""),
        )

    def tag(self, instance_id: str, key: str, value: str) -> None:
        """Set tag ``key`` on the instance."""
        self.ec2().create_tags(Resources=[instance_id], Tags=[{"Key": key, "Value": value}])

    def stop(self, instance_id: str) -> None:
        self.ec2().stop_instances(InstanceIds=[instance_id])

    def terminate(self, instance_id: str) -> None:
        self.ec2().terminate_instances(InstanceIds=[instance_id])


def instance_profile(iam: Any, role: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new instance profile (path :data:`PROFILE_PATH`) made through ``iam``, a client of
    any account, holding ``role`` unless it is None; IAM's description of it."""
    profile: dict[str, Any] = iam.create_instance_profile(
        InstanceProfileName=unique("prof-"), Path=PROFILE_PATH
    )["InstanceProfile"]
    if role is not None:
        iam.add_role_to_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=role["RoleName"]
        )
    return profile


def build_world(moto: MotoServer) -> Ec2World:
    """Create the :class:`Ec2World` resources in moto (unique names)."""
    ec2 = moto.client("ec2", moto.admin, REGION)
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.0.1.0/24")["Subnet"]
    role = moto.create_role(unique("web-"), path=ROLE_PATH)
    return Ec2World(
        moto=moto,
        image_id=image_id,
        vpc_id=vpc["VpcId"],
        subnet_id=subnet["SubnetId"],
        profile=instance_profile(moto.iam, role),
        role=role,
    )


def other_account_admin(moto: MotoServer) -> tuple[str, Keys]:
    """An administrator role in :data:`OTHER_ACCOUNT` and keys assumed into it.

    moto switches accounts when a role ARN of another account is assumed; signed requests
    there need the role to exist in that account, so it is created through two
    unauthenticated calls (moto's ``reset-auth``), after which checking resumes."""
    role = unique("admin-")
    arn = f"arn:aws:iam::{OTHER_ACCOUNT}:role/{role}"
    keys = moto.assume_role(arn, "bootstrap")
    request = urllib.request.Request(
        moto.endpoint + "/moto-api/reset-auth",
        data=b"2",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    iam = moto.client("iam", keys)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=ASSUME_POLICY)
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=ADMIN_POLICY)
    assert moto.client("sts", keys).get_caller_identity()["Account"] == OTHER_ACCOUNT
    return arn, keys


@attrs.frozen
class OtherAccount:
    """What :func:`build_other_account` made in :data:`OTHER_ACCOUNT`: an administrator
    role (``admin_role``, for ``config/sts``) and its ``keys``; a ``role`` in an instance
    ``profile``; an ``instance`` of the world's AMI running with that profile."""

    admin_role: str
    keys: Keys
    role: dict[str, Any]
    profile: dict[str, Any]
    instance: Instance


def build_other_account(world: Ec2World) -> OtherAccount:
    """Create the :class:`OtherAccount` resources in moto (unique names)."""
    admin_role, keys = other_account_admin(world.moto)
    iam = world.moto.client("iam", keys)
    role: dict[str, Any] = iam.create_role(
        RoleName=unique("fweb-"), AssumeRolePolicyDocument=ASSUME_POLICY
    )["Role"]
    profile = instance_profile(iam, role)
    instance = world.run_instance(subnet=False, profile_arn=profile["Arn"], keys=keys)
    return OtherAccount(admin_role, keys, role, profile, instance)


@attrs.frozen
class Fleet(Ec2World):
    """An :class:`Ec2World` with instances in every state: ``running`` (in its subnet,
    with its instance profile, tagged ``team=a``), ``stopped`` and ``terminated`` (the
    same but untagged), ``bare`` (in the subnet, no profile); and ``other``, the
    :class:`OtherAccount` with the ``foreign`` instance."""

    running: Instance
    stopped: str
    terminated: str
    bare: str
    other: OtherAccount

    @property
    def foreign(self) -> str:
        """The ID of the instance running in :data:`OTHER_ACCOUNT`."""
        return self.other.instance.instance_id


def build_fleet(moto: MotoServer) -> Fleet:
    """Create the :class:`Fleet` resources in moto (unique names)."""
    world = build_world(moto)
    stopped, terminated = world.run_instance(), world.run_instance()
    world.stop(stopped.instance_id)
    world.terminate(terminated.instance_id)
    return Fleet(
        **attrs.asdict(world, recurse=False),
        running=world.run_instance(tags={"team": "a"}),
        stopped=stopped.instance_id,
        terminated=terminated.instance_id,
        bare=world.run_instance(profile=False).instance_id,
        other=build_other_account(world),
    )


# --- backend set-up and inspection -----------------------------------------------------


def client_config(moto: MotoServer) -> dict[str, str]:
    """``config/client`` sending EC2, IAM and STS calls to moto with its admin keys."""
    return {
        "access_key": moto.admin.access_key,
        "secret_key": moto.admin.secret_key,
        "endpoint": moto.endpoint,
        "iam_endpoint": moto.endpoint,
        "sts_endpoint": moto.endpoint,
    }


def register_certificate(
    backend: Any, name: str, signer: SigningCert, type_: str = "pkcs7"
) -> None:
    """``config/certificate/<name>`` with the signer's PEM and ``type_``."""
    data = {"aws_public_cert": signer.pem, "type": type_}
    backend.handle_request(Request("update", f"config/certificate/{name}", data))


def configure_backend(
    backend: Any,
    moto: MotoServer,
    certificates: Mapping[str, tuple[SigningCert, str]] | None = None,
) -> Any:
    """Write :func:`client_config` and register each ``{name: (signer, type)}`` as
    ``config/certificate/<name>``; returns ``backend``."""
    backend.write_client_config(client_config(moto))
    for name, (signer, type_) in (certificates or {}).items():
        register_certificate(backend, name, signer, type_)
    return backend


def access_list_entry(backend: Any, instance_id: str) -> dict[str, Any] | None:
    """``identity-accesslist/<instance_id>`` as read through the backend (None: absent)."""
    data = backend.handle_request(Request("read", f"identity-accesslist/{instance_id}")).data
    return None if data is None else dict(data)


def token_keys(storage: Storage) -> list[str]:
    """The stored tokens' keys (below ``token/``)."""
    return storage.list(TOKEN_PREFIX)


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module", name="world")
def world_fixture(moto: MotoServer) -> Ec2World:
    """``world``: the module's :class:`Ec2World`."""
    return build_world(moto)


@pytest.fixture(scope="module", name="signer")
def signer_fixture() -> SigningCert:
    """``signer``: the module's signer to register as a ``pkcs7`` certificate."""
    return make_signing_cert(common_name="ec2-test-pkcs7-signer")


@pytest.fixture(scope="module", name="id_signer")
def id_signer_fixture() -> SigningCert:
    """``id_signer``: the module's signer to register as an ``identity`` certificate."""
    return make_signing_cert(common_name="ec2-test-identity-signer")


__all__ = [
    "ACCOUNT",
    "OTHER_ACCOUNT",
    "PROFILE_PATH",
    "REGION",
    "ROLE_PATH",
    "Ec2World",
    "Fleet",
    "Instance",
    "ManualClock",
    "OtherAccount",
    "SigningCert",
    "access_list_entry",
    "build_fleet",
    "build_other_account",
    "build_world",
    "client_config",
    "configure_backend",
    "id_signer_fixture",
    "identity_document",
    "identity_login",
    "instance_profile",
    "make_signing_cert",
    "new_rsa_key",
    "other_account_admin",
    "pkcs7_login",
    "register_certificate",
    "rfc3339",
    "signer_fixture",
    "tamper",
    "token_keys",
    "unique",
    "world_fixture",
]
