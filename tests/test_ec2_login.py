"""The ``ec2`` login type through ``Backend`` against moto's server (signature checking
on): identity documents signed with a test certificate registered at
``config/certificate/<name>``, the instance described in moto, Vault's binds, nonce and
role tag rules with its texts, the identity access list, renewal, races, a failing token
issuer, and the EC2 endpoints (certificates, access list, role tag deny list, tidies).

Every refusal asserts the error's class, status and message, and that nothing was stored
(no token, no access list entry, or the entry as it was). Each test runs with both drivers.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

import attrs
import pytest

from aws_iam_backend import AsyncBackend, AsyncSQLiteStorage, MemoryStorage, SQLiteStorage
from aws_iam_backend import Backend as SyncBackend
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer
from aws_iam_backend.drivers.audit import AuditFailedError
from aws_iam_backend.drivers.shapes import DEFAULT_TTL, Request, Response
from aws_iam_backend.ec2.accesslist import ACCESSLIST_STORAGE_PREFIX
from aws_iam_backend.errors import (
    BackendError,
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedOperationError,
    UpstreamError,
)
from aws_iam_backend.io.protocols import Document, Operation, Put
from aws_iam_backend.login.decode import Ec2LoginPayload, decode_any_login
from aws_iam_backend.login.issue import entity_id
from aws_iam_backend.vault.tokens import TokenRecord, TokenSpec, rfc3339
from tests.support.drivers import Backend, driver  # noqa: F401
from tests.support.ec2 import (  # noqa: F401 (the fixtures)
    ACCOUNT,
    OTHER_ACCOUNT,
    REGION,
    Ec2World,
    Instance,
    ManualClock,
    SigningCert,
    access_list_entry,
    configure_backend,
    id_signer_fixture,
    identity_login,
    make_signing_cert,
    other_account_admin,
    pkcs7_login,
    register_certificate,
    signer_fixture,
    tamper,
    token_keys,
    unique,
    world_fixture,
)
from tests.support.moto_server import MotoServer
from tests.support.payloads import botocore_payload
from tests.support.processes import run_together

ROLE = "web"
TAG_KEY = "VaultRole"
MISSING_ID = "i-0000000000000000a"


def not_described(instance_id: str) -> str:
    """Vault's refusal of a document naming an instance EC2 does not describe."""
    return (
        'failed to verify instance ID: error fetching description for instance ID "'
        f"{instance_id}\": InvalidInstanceID.NotFound: The instance ID '{instance_id}' does "
        "not exist"
    )


NO_CERTIFICATE = "failed to verify the signature: no certificate for signer"
IDENTITY_UNVERIFIED = "instance identity verification using SHA256 RSA signature is unsuccessful"


def refused(
    kind: type[BackendError], status: int, message: str, call: Callable[[], object]
) -> BackendError:
    """Run ``call``, which must raise exactly ``kind`` with ``status`` and ``message``."""
    with pytest.raises(BackendError) as info:
        call()
    assert type(info.value) is kind, info.value
    assert info.value.message == message
    assert info.value.status == status
    return info.value


# ------------------------------------------------------------------------- the harness


@attrs.frozen
class Ec2Test:
    """One test's backend (on its own storage and clock, its AWS calls sent to moto) with
    the module's world, signers and instances; the methods act for ``instance`` unless
    given another."""

    moto: MotoServer
    backend: Any
    storage: MemoryStorage
    clock: ManualClock
    world: Ec2World
    signer: SigningCert
    id_signer: SigningCert
    instance: Instance
    second: Instance

    def rebuilt(self, storage: MemoryStorage | None = None, **parts: Any) -> Ec2Test:
        """This test with another backend: on ``storage`` (default this one), this clock
        and ``parts``; only the pkcs7 signer registered (as ``test``)."""
        storage = self.storage if storage is None else storage
        backend = Backend(storage=storage, clock=self.clock, **parts)
        configure_backend(backend, self.moto, {"test": (self.signer, "pkcs7")})
        return attrs.evolve(self, backend=backend, storage=storage)

    def role(self, name: str = ROLE, **fields: Any) -> None:
        """Write an ``auth_type=ec2`` role, bound to the world's AMI unless ``fields`` give
        other binds (a bind given as None is left out)."""
        data: dict[str, Any] = {"auth_type": "ec2", "bound_ami_id": self.instance.image_id}
        data.update(fields)
        self.backend.write_role(name, {k: v for k, v in data.items() if v is not None})

    def payload(
        self,
        instance: Instance | None = None,
        *,
        signer: SigningCert | None = None,
        role: str | None = ROLE,
        nonce: str | None = None,
        **document: Any,
    ) -> dict[str, str]:
        """A pkcs7 login body of the instance (``document`` overrides its identity
        document), signed by the pkcs7 signer unless told another."""
        document_bytes = (instance or self.instance).document(**document)
        return pkcs7_login(signer or self.signer, document_bytes, role=role, nonce=nonce)

    def login(self, instance: Instance | None = None, **payload: Any) -> dict[str, Any]:
        """A pkcs7 login (:meth:`payload` keywords); the ``auth`` of the response."""
        response = self.backend.login(self.payload(instance, **payload))
        assert isinstance(response, Response)
        auth: dict[str, Any] = response.auth or {}
        assert auth["client_token"]
        return auth

    def identity_login(self, signer: SigningCert | None = None) -> Any:
        """An identity-and-signature login of the instance, signed by the identity signer
        unless told another; the response."""
        document = self.instance.document()
        return self.backend.login(identity_login(signer or self.id_signer, document, role=ROLE))

    def login_refused(
        self,
        kind: type[BackendError],
        status: int,
        message: str,
        instance: Instance | None = None,
        **payload: Any,
    ) -> None:
        """A pkcs7 login (:meth:`payload` keywords) refused with exactly this error."""
        refused(kind, status, message, functools.partial(self.login, instance, **payload))

    def identity_refused(self, signer: SigningCert | None = None) -> None:
        """An identity login refused as Vault refuses a signature it cannot verify."""
        call = functools.partial(self.identity_login, signer)
        refused(InvalidRequestError, 400, IDENTITY_UNVERIFIED, call)

    def renewal_refused(self, token: str, message: str) -> None:
        """The token's renewal refused (403) with ``message``."""
        call = functools.partial(self.backend.renew_token, token)
        refused(PermissionDeniedError, 403, message, call)

    def logged_in(self, **role: Any) -> str:
        """The client token of a login with a role written with ``role`` fields."""
        self.role(**role)
        token: str = self.login()["client_token"]
        return token

    def access_list(self, instance_id: str | None = None) -> dict[str, Any] | None:
        """The instance's access list entry, read through the backend."""
        return access_list_entry(self.backend, instance_id or self.instance.instance_id)

    def entry_field(self, field: str, instance: Instance | None = None) -> Any:
        """One field of the instance's access list entry, read through the backend."""
        entry = self.access_list((instance or self.instance).instance_id)
        assert entry is not None, "no access list entry"
        return entry[field]

    def expected_entry(
        self, nonce: str, created: datetime, updated: datetime | None = None
    ) -> dict[str, Any]:
        """The access list entry of the instance for ``nonce``: created at ``created``,
        last updated (and living for the mount's TTL from) ``updated`` (default the same)."""
        updated = updated or created
        return {
            "role": ROLE,
            "client_nonce": nonce,
            "creation_time": rfc3339(created),
            "disallow_reauthentication": False,
            "pending_time": self.instance.pending_time,
            "expiration_time": rfc3339(updated + timedelta(seconds=DEFAULT_TTL)),
            "last_updated_time": rfc3339(updated),
        }

    def stored(self, instance_id: str | None = None) -> Document | None:
        """The instance's access list entry as stored."""
        key = ACCESSLIST_STORAGE_PREFIX + (instance_id or self.instance.instance_id)
        return self.storage.read(key)

    def tokens(self) -> int:
        """How many tokens are stored."""
        return len(token_keys(self.storage))

    def nothing_stored(self, instance_id: str | None = None) -> None:
        """No access list entry for the instance, and no token at all."""
        assert self.stored(instance_id) is None
        assert token_keys(self.storage) == []

    def later(self, seconds: int) -> str:
        """The instance's pendingTime moved by ``seconds`` (a stop/start, or an older one)."""
        pending = datetime.strptime(self.instance.pending_time, "%Y-%m-%dT%H:%M:%S%z")
        return (pending + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def tagged_role(self, name: str = ROLE, **fields: Any) -> None:
        """A role taking role tags (key :data:`TAG_KEY`), with policies a, b and c."""
        self.role(name, role_tag=TAG_KEY, token_policies="a,b,c", **fields)

    def create_tag(self, role: str = ROLE, **fields: Any) -> str:
        """A new role tag of ``role``; its value."""
        data = self.write(f"role/{role}/tag", fields).data
        assert data is not None
        assert data["tag_key"] == TAG_KEY
        value: str = data["tag_value"]
        return value

    def tag(self, value: str) -> None:
        """Set the role tag on the instance in EC2."""
        self.world.tag(self.instance.instance_id, TAG_KEY, value)

    def read(self, path: str) -> dict[str, Any] | None:
        data = self.backend.handle_request(Request("read", path)).data
        return None if data is None else dict(data)

    def keys(self, path: str) -> list[str]:
        return list((self.backend.handle_request(Request("list", path)).data or {})["keys"])

    def write(self, path: str, data: dict[str, Any] | None = None) -> Response:
        response = self.backend.handle_request(Request("update", path, data or {}))
        assert isinstance(response, Response)
        return response

    def delete(self, path: str) -> None:
        self.backend.handle_request(Request("delete", path))


@pytest.fixture(scope="module")
def instance(world: Ec2World) -> Instance:
    """A running instance (in the world's subnet, with its instance profile) that no test
    changes; each test has its own storage, so its own access list."""
    return world.run_instance()


@pytest.fixture(scope="module")
def second_instance(world: Ec2World) -> Instance:
    return world.run_instance()


@pytest.fixture
def ec2(
    moto: MotoServer,
    world: Ec2World,
    signer: SigningCert,
    id_signer: SigningCert,
    instance: Instance,
    second_instance: Instance,
) -> Ec2Test:
    """A backend on a fresh storage and clock, with the pkcs7 signer registered as
    ``config/certificate/test`` and the identity signer as ``test-identity``."""
    storage, clock = MemoryStorage(), ManualClock()
    backend = configure_backend(
        Backend(storage=storage, clock=clock),
        moto,
        {"test": (signer, "pkcs7"), "test-identity": (id_signer, "identity")},
    )
    return Ec2Test(
        moto, backend, storage, clock, world, signer, id_signer, instance, second_instance
    )


@pytest.fixture
def fresh(ec2: Ec2Test) -> Ec2Test:
    """:func:`ec2` for an instance of this test's own (to tag, stop or terminate)."""
    return attrs.evolve(ec2, instance=ec2.world.run_instance())


# ---------------------------------------------------------------- successful logins


def test_pkcs7_login_with_named_role(ec2: Ec2Test) -> None:
    ec2.role(policies="web,Ops")
    response = ec2.backend.login(ec2.payload())
    auth = response.auth
    assert response.role == ROLE
    nonce = auth["metadata"]["nonce"]
    assert auth["metadata"] == {
        "role_tag_max_ttl": "0s",
        "role": ROLE,
        "account_id": ACCOUNT,
        "auth_type": "ec2",
        "nonce": nonce,
    }
    assert len(nonce) == 36  # a UUID
    assert auth["policies"] == ["default", "ops", "web"]
    assert auth["token_policies"] == ["default", "ops", "web"]
    assert auth["lease_duration"] == DEFAULT_TTL
    assert auth["renewable"] is True
    assert auth["token_type"] == "service"
    role_id = ec2.backend.read_role(ROLE)["role_id"]
    assert auth["entity_id"] == entity_id("aws/", role_id)  # ec2_alias defaults to role_id
    record = ec2.backend.lookup_token(auth["client_token"])
    assert record.display_name == "aws"
    assert record.internal_data == {
        "auth_type": "ec2",
        "role_name": ROLE,
        "role_id": role_id,
        "instance_id": ec2.instance.instance_id,
        "region": REGION,
        "account_id": ACCOUNT,
    }
    assert ec2.access_list() == ec2.expected_entry(nonce, ec2.clock.now())
    assert ec2.tokens() == 1
    # The nonce handed out is the one to log in again with.
    again = ec2.login(nonce=nonce)
    assert "nonce" not in again["metadata"]


def test_role_defaults_to_the_ami_id(ec2: Ec2Test) -> None:
    ami = ec2.instance.image_id
    ec2.role(ami, policies="by-ami")
    response = ec2.backend.login(ec2.payload(role=None))
    assert response.role == ami
    assert response.auth["metadata"]["role"] == ami
    assert response.auth["policies"] == ["by-ami", "default"]
    assert ec2.entry_field("role") == ami


def test_no_role_and_no_role_for_the_ami(ec2: Ec2Test) -> None:
    ec2.role()
    ami = ec2.instance.image_id
    ec2.login_refused(InvalidRequestError, 400, f'entry for role "{ami}" not found', role=None)
    ec2.login_refused(InvalidRequestError, 400, 'entry for role "nope" not found', role="nope")
    ec2.nothing_stored()


def test_identity_and_signature_login(ec2: Ec2Test) -> None:
    ec2.role()
    response = ec2.identity_login()
    assert response.auth["metadata"]["role"] == ROLE
    assert ec2.entry_field("pending_time") == ec2.instance.pending_time
    assert ec2.tokens() == 1


def test_signer_registered_for_the_other_type_is_not_used(ec2: Ec2Test) -> None:
    """A pkcs7 certificate never verifies an identity signature, and the reverse."""
    ec2.role()
    ec2.identity_refused(ec2.signer)
    ec2.login_refused(InvalidRequestError, 400, NO_CERTIFICATE, signer=ec2.id_signer)
    ec2.nothing_stored()


@pytest.mark.parametrize("alias", ["role_id", "instance_id", "image_id"])
def test_alias_per_ec2_alias(ec2: Ec2Test, alias: str) -> None:
    ec2.backend.write_identity_config({"ec2_alias": alias})
    ec2.role()
    expected = {
        "role_id": ec2.backend.read_role(ROLE)["role_id"],
        "instance_id": ec2.instance.instance_id,
        "image_id": ec2.instance.image_id,
    }[alias]
    assert ec2.login()["entity_id"] == entity_id("aws/", expected)


@pytest.mark.parametrize(
    ("ec2_metadata", "expected"),
    [
        (["instance_id"], {"instance_id"}),
        (
            ["account_id", "auth_type", "ami_id", "instance_id", "region"],
            {"account_id", "auth_type", "ami_id", "instance_id", "region"},
        ),
    ],
)
def test_metadata_selected_by_config_identity(
    ec2: Ec2Test, ec2_metadata: list[str], expected: set[str]
) -> None:
    ec2.backend.write_identity_config({"ec2_metadata": ec2_metadata})
    ec2.role()
    metadata = ec2.login(nonce="n-1")["metadata"]
    values = {
        "account_id": ACCOUNT,
        "auth_type": "ec2",
        "ami_id": ec2.instance.image_id,
        "instance_id": ec2.instance.instance_id,
        "region": REGION,
    }
    assert metadata == {
        "role_tag_max_ttl": "0s",
        "role": ROLE,
        **{name: values[name] for name in expected},
    }


def test_policies_and_ttls(ec2: Ec2Test) -> None:
    ec2.role(token_policies="a,b", token_ttl="1h", token_max_ttl="2h", token_no_default_policy=True)
    auth = ec2.login()
    assert auth["policies"] == ["a", "b"]
    assert auth["lease_duration"] == 3600
    record = ec2.backend.lookup_token(auth["client_token"])
    assert record.max_ttl == 7200
    # The entry lives as long as the longest max TTL (the mount's here).
    expires = rfc3339(ec2.clock.now() + timedelta(seconds=DEFAULT_TTL))
    assert ec2.entry_field("expiration_time") == expires


def test_access_list_entry_lives_as_long_as_the_longest_max_ttl(ec2: Ec2Test) -> None:
    """A role max TTL above the mount's: the token is capped by the mount's, the entry
    (which guards against replays of the document) lasts the role's."""
    ec2.role(token_max_ttl="1000h")
    auth = ec2.login()
    assert auth["lease_duration"] == DEFAULT_TTL
    assert ec2.backend.lookup_token(auth["client_token"]).max_ttl == DEFAULT_TTL
    expires = rfc3339(ec2.clock.now() + timedelta(hours=1000))
    assert ec2.entry_field("expiration_time") == expires


def test_a_given_nonce_is_kept_not_returned(ec2: Ec2Test) -> None:
    ec2.role()
    auth = ec2.login(nonce="client-chosen")
    assert "nonce" not in auth["metadata"]
    assert ec2.entry_field("client_nonce") == "client-chosen"


def test_unrecognized_fields_are_warned_about(ec2: Ec2Test) -> None:
    ec2.role()
    response = ec2.backend.login({**ec2.payload(), "extra": "x"})
    assert response.warnings == ("Endpoint ignored these unrecognized parameters: [extra]",)


def test_token_bound_cidrs_checked_at_login(ec2: Ec2Test) -> None:
    ec2.role(token_bound_cidrs="10.0.0.0/8")
    payload = ec2.payload()
    outside = functools.partial(ec2.backend.login, payload, remote_addr="192.0.2.7")
    refused(PermissionDeniedError, 403, "permission denied", outside)
    unknown = functools.partial(ec2.backend.login, payload)
    refused(PermissionDeniedError, 403, "permission denied", unknown)
    ec2.nothing_stored()
    token = ec2.backend.login(payload, remote_addr="10.1.2.3").auth["client_token"]
    assert ec2.backend.lookup_token(token, remote_addr="10.1.2.3").bound_cidrs == ("10.0.0.0/8",)


class SwitchableSink:
    """An audit sink that fails while ``fail`` is set."""

    def __init__(self) -> None:
        self.fail = False
        self.records: list[Mapping[str, object]] = []

    def write(self, record: Mapping[str, object]) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.records.append(record)


def test_failing_audit_revokes_the_ec2_login_token(ec2: Ec2Test) -> None:
    """A login whose audit record cannot be written fails, and its token is revoked: no
    token that was not audited stays usable."""
    sink = SwitchableSink()
    audited = ec2.rebuilt(audit=sink)
    audited.role()
    sink.fail = True
    request = Request("update", "login", audited.payload(nonce="n-1"))
    call = functools.partial(audited.backend.handle_request, request)
    refused(AuditFailedError, 500, "audit logging failed", call)
    assert audited.tokens() == 0
    sink.fail = False
    response = audited.backend.handle_request(request)
    assert audited.backend.lookup_token(response.auth["client_token"]).metadata["role"] == ROLE
    assert sink.records[-1]["path"] == "auth/aws/login"


# ------------------------------------------------------------------ reauthentication


def test_reauthentication_with_the_same_nonce(ec2: Ec2Test) -> None:
    ec2.role()
    ec2.login(nonce="n-1")
    created = ec2.clock.now()
    now = ec2.clock.advance(120)
    ec2.login(nonce="n-1")
    assert ec2.access_list() == ec2.expected_entry("n-1", created, now)
    assert ec2.tokens() == 2


@pytest.mark.parametrize(
    ("nonce", "message"),
    [
        ("n-2", "client nonce mismatch"),
        (None, "client nonce mismatch"),  # no nonce: the server's generated one is not it
        ("", "reauthentication is disabled"),  # the marker of a disabling login
    ],
)
def test_reauthentication_with_another_nonce_refused(
    ec2: Ec2Test, nonce: str | None, message: str
) -> None:
    ec2.role()
    ec2.login(nonce="n-1")
    before = ec2.stored()
    ec2.clock.advance(60)
    ec2.login_refused(InvalidRequestError, 400, message, nonce=nonce)
    assert ec2.stored() == before
    assert ec2.tokens() == 1


def test_empty_nonce_disables_reauthentication(ec2: Ec2Test) -> None:
    ec2.role()
    auth = ec2.login(nonce="")
    assert "nonce" not in auth["metadata"]
    assert ec2.entry_field("client_nonce") == ""
    assert ec2.entry_field("disallow_reauthentication") is True
    for nonce in ("", "anything", None):
        ec2.login_refused(InvalidRequestError, 400, "reauthentication is disabled", nonce=nonce)
    assert ec2.tokens() == 1


def test_role_disallowing_reauthentication(ec2: Ec2Test) -> None:
    ec2.role(disallow_reauthentication=True)
    auth = ec2.login()
    assert "nonce" not in auth["metadata"]  # nothing to reauthenticate with
    assert ec2.entry_field("client_nonce") == ""
    assert ec2.entry_field("disallow_reauthentication") is True
    # Allowing it on the role later does not reopen the instance's entry.
    ec2.backend.write_role(ROLE, {"disallow_reauthentication": False})
    ec2.login_refused(InvalidRequestError, 400, "reauthentication is disabled", nonce="n-1")
    assert ec2.tokens() == 1


def test_nonce_over_128_bytes(ec2: Ec2Test) -> None:
    ec2.role()
    message = "client nonce exceeding the limit of 128 characters"
    ec2.login_refused(InvalidRequestError, 400, message, nonce="n" * 129)
    ec2.nothing_stored()
    ec2.login(nonce="n" * 128)


MIGRATION_REFUSED = "client nonce mismatch and instance meta-data incorrect"


def test_instance_migration_with_a_newer_pending_time(ec2: Ec2Test) -> None:
    ec2.role(allow_instance_migration=True)
    ec2.login(nonce="n-1")
    # Same pendingTime, another nonce: not a migration.
    ec2.login_refused(InvalidRequestError, 400, MIGRATION_REFUSED, nonce="n-2")
    migrated = ec2.later(3600)
    ec2.login(nonce="n-2", pending_time=migrated)
    # The nonce of the first login stays; the pendingTime moves on.
    assert ec2.entry_field("client_nonce") == "n-1"
    assert ec2.entry_field("pending_time") == migrated
    again: dict[str, Any] = {"nonce": "n-2", "pending_time": migrated}
    ec2.login_refused(InvalidRequestError, 400, MIGRATION_REFUSED, **again)
    ec2.login(nonce="n-1", pending_time=migrated)
    assert ec2.tokens() == 3


def test_migration_without_a_nonce_keeps_the_first_nonce(ec2: Ec2Test) -> None:
    """Vault's rule: a migrated instance logging in without a nonce gets a token, but the
    access list keeps the first login's nonce; the nonce generated for the migrated
    login (returned, as Vault does) is not the one to reauthenticate with."""
    ec2.role(allow_instance_migration=True)
    first = ec2.login()["metadata"]["nonce"]
    migrated = ec2.later(3600)
    returned = ec2.login(pending_time=migrated)["metadata"]["nonce"]
    assert returned != first
    assert ec2.entry_field("client_nonce") == first
    again: dict[str, Any] = {"nonce": returned, "pending_time": migrated}
    ec2.login_refused(InvalidRequestError, 400, MIGRATION_REFUSED, **again)
    ec2.login(nonce=first, pending_time=migrated)
    assert ec2.tokens() == 3


def test_older_pending_time_refused(ec2: Ec2Test) -> None:
    ec2.role(allow_instance_migration=True)
    ec2.login(nonce="n-1")
    before = ec2.stored()
    older = ec2.later(-60)
    message = "instance meta-data is older than the one used for previous login"
    ec2.login_refused(InvalidRequestError, 400, message, nonce="n-1", pending_time=older)
    ec2.login_refused(InvalidRequestError, 400, MIGRATION_REFUSED, nonce="n-2", pending_time=older)
    assert ec2.stored() == before
    assert ec2.tokens() == 1


# --------------------------------------------------------- documents and signatures


def test_tampered_document_refused(ec2: Ec2Test) -> None:
    """The signed document of one instance, edited to name another."""
    ec2.role()
    blob = ec2.signer.pkcs7(ec2.instance.document())
    original, other = ec2.instance.instance_id, ec2.second.instance_id
    forged = tamper(blob, original.encode(), other.encode())
    call = functools.partial(ec2.backend.login, {"pkcs7": forged, "role": ROLE})
    message = "failed to verify the signature: message digest mismatch"
    refused(InvalidRequestError, 400, message, call)
    ec2.nothing_stored()
    ec2.nothing_stored(other)


def test_tampered_identity_document_refused(ec2: Ec2Test) -> None:
    ec2.role()
    payload = identity_login(ec2.id_signer, ec2.instance.document(), role=ROLE)
    payload["identity"] = base64.b64encode(ec2.second.document()).decode()
    call = functools.partial(ec2.backend.login, payload)
    refused(InvalidRequestError, 400, IDENTITY_UNVERIFIED, call)
    ec2.nothing_stored(ec2.second.instance_id)


def test_unregistered_certificate_refused(ec2: Ec2Test) -> None:
    ec2.role()
    stranger = make_signing_cert()
    ec2.login_refused(InvalidRequestError, 400, NO_CERTIFICATE, signer=stranger)
    ec2.identity_refused(stranger)
    ec2.nothing_stored()


@pytest.mark.parametrize("validity", ["expired", "not yet valid"])
def test_signer_outside_its_validity_refused(ec2: Ec2Test, validity: str) -> None:
    now = ec2.clock.now()
    days = (-30, -1) if validity == "expired" else (1, 30)
    bounded = make_signing_cert(
        key=ec2.signer.key,
        not_before=now + timedelta(days=days[0]),
        not_after=now + timedelta(days=days[1]),
    )
    register_certificate(ec2.backend, "bounded", bounded, "pkcs7")
    register_certificate(ec2.backend, "bounded-identity", bounded, "identity")
    ec2.role()
    message = "failed to verify the signature: signer certificate is not valid at the current time"
    ec2.login_refused(InvalidRequestError, 400, message, signer=bounded)
    ec2.identity_refused(bounded)
    ec2.nothing_stored()


def test_document_for_another_account_refused(ec2: Ec2Test) -> None:
    """A document naming an instance of ACCOUNT as if it ran in another account: without
    config/sts that account cannot be asked; with it, the instance is not there."""
    ec2.role()
    message = (
        f'failed to verify instance ID: unable to fetch client for account ID "{OTHER_ACCOUNT}"'
        f' -- default client is for account "{ACCOUNT}"'
    )
    ec2.login_refused(InvalidRequestError, 400, message, account_id=OTHER_ACCOUNT)
    other_admin, _keys = other_account_admin(ec2.moto)
    ec2.backend.write_sts_config(OTHER_ACCOUNT, {"sts_role": other_admin})
    message = not_described(ec2.instance.instance_id)
    ec2.login_refused(InvalidRequestError, 400, message, account_id=OTHER_ACCOUNT)
    ec2.nothing_stored()


@pytest.mark.parametrize("state", ["stopped", "terminated"])
def test_instance_not_running_refused(fresh: Ec2Test, state: str) -> None:
    instance_id = fresh.instance.instance_id
    (fresh.world.stop if state == "stopped" else fresh.world.terminate)(instance_id)
    fresh.role()
    message = "failed to verify instance ID: instance is not in 'running' state"
    fresh.login_refused(InvalidRequestError, 400, message)
    fresh.nothing_stored()


def test_wrong_region_refused(ec2: Ec2Test) -> None:
    ec2.role()
    message = not_described(ec2.instance.instance_id)
    ec2.login_refused(InvalidRequestError, 400, message, region="eu-west-1")
    ec2.nothing_stored()


def test_unknown_instance_refused(ec2: Ec2Test) -> None:
    ec2.role()
    message = not_described(MISSING_ID)
    ec2.login_refused(InvalidRequestError, 400, message, instance_id=MISSING_ID)
    ec2.nothing_stored(MISSING_ID)


# ------------------------------------------------------------------------------ binds


def _bind_cases(ec2: Ec2Test) -> dict[str, tuple[list[list[str]], str, str]]:
    """Per bind: values that match (each list one role write), a value that does not,
    and Vault's refusal."""
    world, instance = ec2.world, ec2.instance
    profile_base = f"arn:aws:iam::{ACCOUNT}:instance-profile"
    role_base = f"arn:aws:iam::{ACCOUNT}:role"
    prefix = "Error validating instance: "
    return {
        "bound_ami_id": (
            [[instance.image_id], ["ami-00000000", instance.image_id]],
            "ami-00000000",
            f'{prefix}AMI ID "{instance.image_id}" does not belong to role "{ROLE}"',
        ),
        "bound_account_id": (
            [[ACCOUNT]],
            "210987654321",
            f'{prefix}account ID "{ACCOUNT}" does not belong to role "{ROLE}"',
        ),
        "bound_region": (
            [[REGION], ["eu-west-1", REGION]],
            "eu-west-1",
            f'Region "{REGION}" does not satisfy the constraint on role "{ROLE}"',
        ),
        "bound_vpc_id": (
            [[instance.vpc_id]],
            "vpc-00000000",
            f'{prefix}VPC ID "{instance.vpc_id}" does not satisfy the constraint on role "{ROLE}"',
        ),
        "bound_subnet_id": (
            [[instance.subnet_id]],
            "subnet-00000000",
            f'{prefix}subnet ID "{instance.subnet_id}" does not satisfy the constraint on role '
            f'"{ROLE}"',
        ),
        "bound_ec2_instance_id": (
            [[instance.instance_id]],
            MISSING_ID,
            f'{prefix}instance ID "{instance.instance_id}" does not belong to the role "{ROLE}"',
        ),
        "bound_iam_instance_profile_arn": (
            [[world.profile_arn], [f"{profile_base}/fleet/*"], [f"{profile_base}/*"]],
            f"{profile_base}/other/*",
            f'{prefix}IAM instance profile ARN "{world.profile_arn}" does not satisfy the '
            f'constraint role "{ROLE}"',
        ),
        "bound_iam_role_arn": (
            [[world.role_arn], [f"{role_base}/svc/*"]],
            f"{role_base}/svc/other",
            f'{prefix}IAM role ARN "{world.role_arn}" does not satisfy the constraint role '
            f'"{ROLE}"',
        ),
    }


def binds(field: str, values: object) -> dict[str, Any]:
    """Role fields binding only ``field`` (the default AMI bind left out)."""
    return {"bound_ami_id": None, field: values}


BIND_FIELDS = [
    "bound_ami_id",
    "bound_account_id",
    "bound_region",
    "bound_vpc_id",
    "bound_subnet_id",
    "bound_ec2_instance_id",
    "bound_iam_instance_profile_arn",
    "bound_iam_role_arn",
]


@pytest.mark.parametrize("field", BIND_FIELDS)
def test_bind_matching(ec2: Ec2Test, field: str) -> None:
    matching, _other, _message = _bind_cases(ec2)[field]
    for count, values in enumerate(matching, start=1):
        ec2.role(**binds(field, values))
        ec2.login(nonce="n-1")
        assert ec2.tokens() == count


@pytest.mark.parametrize("field", BIND_FIELDS)
def test_bind_not_matching(ec2: Ec2Test, field: str) -> None:
    _matching, other, message = _bind_cases(ec2)[field]
    ec2.role(**binds(field, other))
    ec2.login_refused(InvalidRequestError, 400, message)
    ec2.nothing_stored()


def test_binds_checked_in_vault_order(ec2: Ec2Test) -> None:
    """The region first (before the instance binds), then instance ID before AMI ID."""
    ec2.role(
        bound_ami_id="ami-00000000", bound_ec2_instance_id=MISSING_ID, bound_region="eu-west-1"
    )
    message = f'Region "{REGION}" does not satisfy the constraint on role "{ROLE}"'
    ec2.login_refused(InvalidRequestError, 400, message)
    ec2.backend.write_role(ROLE, {"bound_region": []})
    message = (
        f'Error validating instance: instance ID "{ec2.instance.instance_id}" does not belong '
        f'to the role "{ROLE}"'
    )
    ec2.login_refused(InvalidRequestError, 400, message)
    ec2.nothing_stored()


@pytest.mark.parametrize("field", ["bound_iam_instance_profile_arn", "bound_iam_role_arn"])
def test_profile_binds_on_an_instance_without_profile(ec2: Ec2Test, field: str) -> None:
    bare = ec2.world.run_instance(profile=False)
    world = ec2.world
    arn = world.profile_arn if field == "bound_iam_instance_profile_arn" else world.role_arn
    ec2.role(**binds(field, arn))
    message = "IAM instance profile in the instance description is nil"
    ec2.login_refused(InternalError, 500, message, bare)
    ec2.nothing_stored(bare.instance_id)


# ------------------------------------------------------------------------- auth types


def test_iam_role_refuses_ec2_logins(ec2: Ec2Test) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/*"
    ec2.backend.write_role("iamrole", {"bound_iam_principal_arn": arn})
    message = "auth method ec2 not allowed for role iamrole"
    ec2.login_refused(InvalidRequestError, 400, message, role="iamrole")
    ec2.nothing_stored()


def test_ec2_role_refuses_iam_logins(ec2: Ec2Test) -> None:
    ec2.role("ec2role")
    _user, user_keys = ec2.moto.create_user(unique("ec2-login-user-"))
    call = functools.partial(ec2.backend.login, botocore_payload(user_keys, role="ec2role"))
    refused(InvalidRequestError, 400, "auth method iam not allowed for role ec2role", call)
    assert ec2.tokens() == 0


# -------------------------------------------------------------------------- role tags


def test_role_tag_login(fresh: Ec2Test) -> None:
    fresh.tagged_role()
    value = fresh.create_tag(policies="a", max_ttl="1h")
    assert value.startswith("v1:")
    assert ":r=web:d=false:m=false:p=a:t=3600:" in value
    fresh.tag(value)
    auth = fresh.login()
    assert auth["policies"] == ["a", "default"]
    assert auth["lease_duration"] == 3600
    assert auth["metadata"]["role_tag_max_ttl"] == "1h0m0s"
    assert auth["metadata"]["nonce"]
    record = fresh.backend.lookup_token(auth["client_token"])
    assert record.max_ttl == 3600
    # The entry lives as long as the longest max TTL (the mount's); renewal keeps the
    # tag's cap on the token.
    expires = rfc3339(fresh.clock.now() + timedelta(seconds=DEFAULT_TTL))
    assert fresh.entry_field("expiration_time") == expires
    fresh.clock.advance(600)
    assert fresh.backend.renew_token(auth["client_token"]).ttl == 3000
    assert fresh.tokens() == 1


def test_role_tag_without_policies_inherits_the_role_policies(fresh: Ec2Test) -> None:
    fresh.tagged_role()
    fresh.tag(fresh.create_tag())
    auth = fresh.login()
    assert auth["policies"] == ["a", "b", "c", "default"]
    assert auth["metadata"]["role_tag_max_ttl"] == "0s"


def test_role_tag_disallowing_reauthentication(fresh: Ec2Test) -> None:
    fresh.tagged_role()
    fresh.tag(fresh.create_tag(disallow_reauthentication=True))
    auth = fresh.login()
    assert "nonce" not in auth["metadata"]
    assert fresh.entry_field("disallow_reauthentication")
    fresh.login_refused(InvalidRequestError, 400, "reauthentication is disabled")
    assert fresh.tokens() == 1


def test_deny_listed_role_tag_refused(fresh: Ec2Test) -> None:
    fresh.tagged_role()
    value = fresh.create_tag(policies="a")
    fresh.tag(value)
    fresh.write(f"roletag-denylist/{value}")
    fresh.login_refused(InternalError, 500, "role tag is deny listed")
    fresh.nothing_stored()
    fresh.delete(f"roletag-denylist/{value}")
    fresh.login()


def _untagged(ec2: Ec2Test) -> None:
    """The instance carries no role tag."""


def _tag_for_another_instance(ec2: Ec2Test) -> None:
    ec2.tag(ec2.create_tag(instance_id=MISSING_ID))


def _tag_of_another_role(ec2: Ec2Test) -> None:
    ec2.tagged_role("other")
    ec2.tag(ec2.create_tag(role="other"))


def _forged_tag(ec2: Ec2Test) -> None:
    """A tag widened by hand (its policies edited) fails its HMAC."""
    ec2.tag(ec2.create_tag(policies="a").replace(":p=a:", ":p=b:"))


def _tag_policies_no_longer_on_the_role(ec2: Ec2Test) -> None:
    ec2.tag(ec2.create_tag(policies="c"))
    ec2.backend.write_role(ROLE, {"token_policies": "a,b"})


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(
            _untagged,
            f'missing tag with key "{TAG_KEY}" on the instance',
            id="missing-on-the-instance",
        ),
        pytest.param(
            _tag_for_another_instance,
            "role tag is being used by an unauthorized instance",
            id="for-another-instance",
        ),
        pytest.param(
            _tag_of_another_role,
            "role on the tag is not matching the role supplied",
            id="of-another-role",
        ),
        pytest.param(_forged_tag, "role tag signature verification failed", id="forged"),
        pytest.param(
            _tag_policies_no_longer_on_the_role,
            "policies on the role tag must be subset of policies on the role",
            id="policies-no-longer-on-the-role",
        ),
    ],
)
def test_role_tag_refused(fresh: Ec2Test, setup: Callable[[Ec2Test], None], message: str) -> None:
    fresh.tagged_role()
    setup(fresh)
    fresh.login_refused(InternalError, 500, message)
    fresh.nothing_stored()


def test_role_tag_creation_needs_role_tag_enabled(ec2: Ec2Test) -> None:
    ec2.role()
    call = functools.partial(ec2.write, f"role/{ROLE}/tag", {"policies": "a"})
    refused(InvalidRequestError, 400, "tag creation is not enabled for this role", call)
    call = functools.partial(ec2.write, "role/ghost/tag")
    refused(InvalidRequestError, 400, "entry not found for role ghost", call)


# ---------------------------------------------------------------------------- renewal


def test_renewal_moves_the_entry_expiry(ec2: Ec2Test) -> None:
    ec2.role(token_ttl="2h")
    created = ec2.clock.now()
    auth = ec2.login(nonce="n-1")
    now = ec2.clock.advance(3600)
    record = ec2.backend.renew_token(auth["client_token"])
    assert record.ttl == 7200
    assert record.expire_time == now + timedelta(seconds=7200)
    assert ec2.access_list() == ec2.expected_entry("n-1", created, now)
    # Over HTTP-shaped requests too.
    renew = Request("renew", "login", client_token=auth["client_token"])
    assert ec2.backend.handle_request(renew).auth["lease_duration"] == 7200


def test_renewal_refused_after_the_instance_stopped(fresh: Ec2Test) -> None:
    token = fresh.logged_in()
    fresh.backend.renew_token(token)
    before = fresh.stored()
    fresh.world.stop(fresh.instance.instance_id)
    fresh.clock.advance(60)
    message = (
        f'failed to renew entry: failed to verify instance ID "{fresh.instance.instance_id}": '
        "instance is not in 'running' state"
    )
    fresh.renewal_refused(token, message)
    assert fresh.stored() == before


def test_renewal_refused_after_the_entry_is_deleted(ec2: Ec2Test) -> None:
    token = ec2.logged_in()
    ec2.delete(f"identity-accesslist/{ec2.instance.instance_id}")
    message = (
        "failed to renew entry: failed to verify the access list identity entry for instance "
        f'ID: "{ec2.instance.instance_id}"'
    )
    ec2.renewal_refused(token, message)
    assert ec2.access_list() is None


def test_renewal_refused_after_the_role_is_deleted(ec2: Ec2Test) -> None:
    token = ec2.logged_in()
    before = ec2.stored()
    ec2.backend.delete_role(ROLE)
    ec2.renewal_refused(token, "failed to renew entry: role entry not found")
    assert ec2.stored() == before


def test_renewal_rechecks_the_binds_of_the_rewritten_role(ec2: Ec2Test) -> None:
    token = ec2.logged_in()
    ec2.backend.write_role(ROLE, {"bound_region": "eu-west-1"})
    message = (
        f'failed to renew entry: Region "{REGION}" does not satisfy the constraint on role "{ROLE}"'
    )
    ec2.renewal_refused(token, message)
    ec2.backend.write_role(ROLE, {"bound_region": [], "bound_ami_id": "ami-00000000"})
    message = (
        "failed to renew entry: Error validating instance: "
        f'AMI ID "{ec2.instance.image_id}" does not belong to role "{ROLE}"'
    )
    ec2.renewal_refused(token, message)


def test_renewal_when_ec2_fails_is_not_a_denial(ec2: Ec2Test) -> None:
    """AWS failing during a renewal's re-check is reported as such (502), not as 403."""
    token = ec2.logged_in()
    before = ec2.stored()
    ec2.backend.write_client_config({"endpoint": "http://127.0.0.1:1", "max_retries": 0})
    with pytest.raises(BackendError) as info:
        ec2.backend.renew_token(token)
    assert type(info.value) is UpstreamError
    assert info.value.status == 502
    instance_id = ec2.instance.instance_id
    assert info.value.message.startswith(
        f'failed to renew entry: failed to verify instance ID "{instance_id}": '
        f'error fetching description for instance ID "{instance_id}": '
    )
    assert ec2.stored() == before


# ------------------------------------------------------------------------------ races


class MeetingStorage(MemoryStorage):
    """A memory store where, once :meth:`arm` ed, the next ``parties`` commits writing
    ``key`` wait for each other before applying: every racer has read the key before any
    of them writes it, so all but one write conflict."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self._key = key
        self._waiting = 0
        self._barrier = threading.Barrier(1)
        self._count_lock = threading.Lock()
        self.conflicts = 0

    def arm(self, parties: int) -> None:
        with self._count_lock:
            self._waiting = parties
            self._barrier = threading.Barrier(parties)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        if any(op.key == self._key for op in operations):
            with self._count_lock:
                wait, barrier = self._waiting > 0, self._barrier
                self._waiting -= 1
            if wait:
                barrier.wait(timeout=60)  # a bound, not a timing: a broken race fails
        try:
            return super().commit(operations)
        except ConflictError:
            with self._count_lock:
                self.conflicts += 1
            raise


@pytest.fixture
def meeting(instance: Instance) -> MeetingStorage:
    return MeetingStorage(ACCESSLIST_STORAGE_PREFIX + instance.instance_id)


@pytest.fixture
def racing(ec2: Ec2Test, meeting: MeetingStorage) -> Ec2Test:
    """:func:`ec2` with a backend on the ``meeting`` storage."""
    return ec2.rebuilt(meeting)


def together(*calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` on as many threads; each one's result or :class:`BackendError`."""

    def outcome(call: Callable[[], object]) -> object:
        try:
            return call()
        except BackendError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(outcome, calls))


def test_two_first_logins_at_once_one_wins(racing: Ec2Test, meeting: MeetingStorage) -> None:
    """Both logins read no entry; the one whose write loses re-reads the winner's entry
    and gets the answer it would have got after it: Vault's nonce mismatch, no token."""
    racing.role()
    payloads = [racing.payload(nonce=f"nonce-{n}") for n in range(2)]
    meeting.arm(2)
    outcomes = together(*(functools.partial(racing.backend.login, p) for p in payloads))
    won = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, Response)]
    assert len(won) == 1, outcomes
    loser = outcomes[1 - won[0]]
    assert isinstance(loser, InvalidRequestError)
    assert (loser.status, loser.message) == (400, "client nonce mismatch")
    assert meeting.conflicts == 1  # the loser's first write; its second read refused it
    assert racing.tokens() == 1
    assert racing.entry_field("client_nonce") == f"nonce-{won[0]}"


def test_two_logins_with_one_nonce_at_once_both_succeed(
    racing: Ec2Test, meeting: MeetingStorage
) -> None:
    """The same instance reauthenticating twice at once (a retried request): as one after
    the other, both get a token."""
    racing.role()
    payload = racing.payload(nonce="n-1")
    racing.backend.login(payload)
    meeting.arm(2)
    outcomes = together(*(functools.partial(racing.backend.login, payload) for _ in range(2)))
    assert all(isinstance(outcome, Response) for outcome in outcomes), outcomes
    assert meeting.conflicts == 1
    assert racing.tokens() == 3


def test_renewals_and_a_login_of_one_instance_at_once_all_succeed(
    racing: Ec2Test, meeting: MeetingStorage
) -> None:
    """Renewals of two tokens of one instance and a login of it, all at once: each moves
    the one access list entry; none is refused for the others' writes."""
    racing.role()
    payload = racing.payload(nonce="n-1")
    tokens = [racing.backend.login(payload).auth["client_token"] for _ in range(2)]
    now = racing.clock.advance(600)
    meeting.arm(3)
    outcomes = together(
        functools.partial(racing.backend.renew_token, tokens[0]),
        functools.partial(racing.backend.renew_token, tokens[1]),
        functools.partial(racing.backend.login, payload),
    )
    assert isinstance(outcomes[0], TokenRecord), outcomes
    assert isinstance(outcomes[1], TokenRecord), outcomes
    assert isinstance(outcomes[2], Response), outcomes
    assert meeting.conflicts >= 2  # all three wrote over one version: two (at least) retried
    assert racing.entry_field("last_updated_time") == rfc3339(now)
    assert racing.entry_field("client_nonce") == "n-1"


def _login_in_process(
    driver_name: str,
    path: str,
    payload: dict[str, str],
    barrier: ProcessBarrier,
    results: Any,
) -> None:
    """One process's login on the shared SQLite file, after meeting the others."""

    async def run_async() -> Response:
        storage = AsyncSQLiteStorage(path)
        try:
            return await AsyncBackend(storage=storage).login(payload)
        finally:
            await storage.aclose()

    def run_sync() -> Response:
        storage = SQLiteStorage(path)
        try:
            return SyncBackend(storage=storage).login(payload)
        finally:
            storage.close()

    barrier.wait(timeout=60)
    try:
        response = asyncio.run(run_async()) if driver_name == "async" else run_sync()
    except BackendError as exc:
        results.put(("refused", payload["nonce"], type(exc).__name__, exc.status, exc.message))
        return
    results.put(("issued", payload["nonce"], "", 200, (response.auth or {})["client_token"]))


def test_two_first_logins_in_two_processes_one_wins(
    ec2: Ec2Test,
    tmp_path: Path,
    driver: str,  # noqa: F811
) -> None:
    path = str(tmp_path / "state.db")
    storage = SQLiteStorage(path)
    try:
        backend = Backend(storage=storage)
        configure_backend(backend, ec2.moto, {"test": (ec2.signer, "pkcs7")})
        shared = attrs.evolve(ec2, backend=backend)
        shared.role()
        payloads = [shared.payload(nonce=f"nonce-{n}") for n in range(2)]
        outcomes = run_together(
            _login_in_process, [(driver, path, payload) for payload in payloads]
        )
        issued = [o for o in outcomes if o[0] == "issued"]
        assert len(issued) == 1, outcomes
        (loser,) = [o for o in outcomes if o[0] == "refused"]
        assert loser[2:] == ("InvalidRequestError", 400, "client nonce mismatch"), outcomes
        assert len(token_keys(storage)) == 1
        assert shared.entry_field("client_nonce") == issued[0][1]
    finally:
        storage.close()


# -------------------------------------------------------------------- fault injection


class FailingIssuer:
    """A token issuer on ``storage`` whose ``issue`` raises while ``fail`` is set."""

    def __init__(self, storage: MemoryStorage, clock: ManualClock) -> None:
        self.inner = StoreTokenIssuer(storage, clock=clock)
        self.fail = False

    def issue(self, spec: TokenSpec) -> TokenRecord:
        if self.fail:
            raise RuntimeError("the token store is down")
        return self.inner.issue(spec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def failing(ec2: Ec2Test) -> FailingIssuer:
    return FailingIssuer(ec2.storage, ec2.clock)


@pytest.fixture
def faulty(ec2: Ec2Test, failing: FailingIssuer) -> Ec2Test:
    """:func:`ec2` with a backend issuing through ``failing``."""
    return ec2.rebuilt(issuer=failing)


def test_issuer_failing_on_a_first_login_leaves_no_entry(
    faulty: Ec2Test, failing: FailingIssuer
) -> None:
    faulty.role()
    failing.fail = True
    with pytest.raises(RuntimeError, match="the token store is down"):
        faulty.login(nonce="n-1")
    faulty.nothing_stored()
    # The instance can still log in once the store is back (its first login never was).
    failing.fail = False
    faulty.login(nonce="n-2")
    assert faulty.entry_field("client_nonce") == "n-2"


def test_issuer_failing_on_a_relogin_restores_the_entry(
    faulty: Ec2Test, failing: FailingIssuer
) -> None:
    faulty.role(allow_instance_migration=True)
    faulty.login(nonce="n-1")
    before = faulty.stored()
    assert before is not None
    faulty.clock.advance(600)
    failing.fail = True
    with pytest.raises(RuntimeError, match="the token store is down"):
        faulty.login(nonce="n-1", pending_time=faulty.later(60))
    after = faulty.stored()
    assert after is not None
    assert (after.value, after.expires_at) == (before.value, before.expires_at)
    assert faulty.tokens() == 1
    # The restored entry still accepts the old document.
    failing.fail = False
    faulty.login(nonce="n-1")


# -------------------------------------------------------------------------- endpoints


def test_certificate_endpoints(ec2: Ec2Test) -> None:
    pkcs7 = {"aws_public_cert": ec2.signer.pem, "type": "pkcs7"}
    identity = {"aws_public_cert": ec2.id_signer.pem, "type": "identity"}
    assert ec2.keys("config/certificates") == ["test", "test-identity"]
    assert ec2.read("config/certificate/test") == pkcs7
    assert ec2.read("config/certificate/test-identity") == identity
    # Base64 of the PEM is accepted (and stored decoded); the type is case-insensitive.
    encoded = base64.b64encode(ec2.signer.pem.encode()).decode()
    response = ec2.write(
        "config/certificate/extra", {"aws_public_cert": encoded, "type": "IDENTITY"}
    )
    assert response.warnings == ()
    assert ec2.read("config/certificate/extra") == {**pkcs7, "type": "identity"}
    # An update without a type keeps the stored one.
    ec2.write("config/certificate/extra", {"aws_public_cert": ec2.id_signer.pem})
    assert ec2.read("config/certificate/extra") == identity
    assert ec2.keys("config/certificates") == ["extra", "test", "test-identity"]
    ec2.delete("config/certificate/extra")
    assert ec2.read("config/certificate/extra") is None
    assert ec2.keys("config/certificates") == ["test", "test-identity"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "pkcs7"}, "missing aws_public_cert"),
        ({"aws_public_cert": "PEM", "type": "rsa"}, 'invalid certificate type "rsa"'),
        ({"type": "Bogus"}, 'invalid certificate type "bogus"'),
        ({"aws_public_cert": ""}, "invalid aws_public_cert"),
        ({"aws_public_cert": "hello"}, "invalid certificate; should be one PEM block only"),
        ("two blocks", "invalid certificate; should be one PEM block only"),
    ],
)
def test_certificate_write_refusals(ec2: Ec2Test, data: dict[str, str] | str, message: str) -> None:
    if data == "two blocks":
        data = {"aws_public_cert": ec2.signer.pem + ec2.id_signer.pem}
    assert isinstance(data, dict)
    call = functools.partial(ec2.write, "config/certificate/bad", data)
    refused(InvalidRequestError, 400, message, call)
    assert ec2.read("config/certificate/bad") is None
    assert ec2.keys("config/certificates") == ["test", "test-identity"]


def test_certificate_paths_need_a_name(ec2: Ec2Test) -> None:
    """As in Vault, ``config/certificate/`` without a name is no path at all."""
    for operation in ("update", "read", "delete"):
        request = Request(operation, "config/certificate/", {"aws_public_cert": ec2.signer.pem})
        call = functools.partial(ec2.backend.handle_request, request)
        refused(NotFoundError, 404, "unsupported path", call)
    assert ec2.keys("config/certificates") == ["test", "test-identity"]


def test_access_list_entry_paths_need_an_instance_id(ec2: Ec2Test) -> None:
    """``identity-accesslist/`` without an ID is the list path, which only lists."""
    ec2.role()
    ec2.login()
    for operation in ("read", "delete"):
        call = functools.partial(
            ec2.backend.handle_request, Request(operation, "identity-accesslist/")
        )
        refused(UnsupportedOperationError, 405, "unsupported operation", call)
    assert ec2.keys("identity-accesslist") == [ec2.instance.instance_id]


PAIR = "a tuple containing the instance identity document and its SHA256 RSA signature"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pkcs7": ""}, f"either pkcs7 or {PAIR} needs to be provided"),
        ({"identity": "", "signature": ""}, f"either pkcs7 or {PAIR} needs to be provided"),
        (
            {"pkcs7": "x", "identity": "eA==", "signature": "eQ=="},
            f"both pkcs7 and {PAIR} is supplied; provide only one",
        ),
    ],
)
def test_ec2_login_fields_refused(data: dict[str, str], message: str) -> None:
    refused(InvalidRequestError, 400, message, functools.partial(decode_any_login, data))


def test_ec2_login_payload_repr_shows_no_secrets() -> None:
    payload = decode_any_login(
        {
            "pkcs7": "",
            "identity": "c2VjcmV0LWRvYw==",
            "signature": "c2VjcmV0LXNpZw==",
            "nonce": "secret-nonce",
            "role": "web",
        }
    )
    assert isinstance(payload, Ec2LoginPayload)
    assert payload.nonce == "secret-nonce"
    assert repr(payload) == "Ec2LoginPayload(role='web')"


def test_malformed_stored_certificate_is_a_server_error(ec2: Ec2Test) -> None:
    """A certificate document the store mangled fails every ec2 login as a 500 naming it,
    never as if the path or the login's entry were missing."""
    ec2.role()
    ec2.storage.commit([Put("config/certificate/broken", {"aws_public_cert": 7, "type": "pkcs7"})])
    message = 'certificate storage has a malformed entry under the name: "broken"'
    ec2.login_refused(InternalError, 500, message)
    refused(InternalError, 500, message, functools.partial(ec2.read, "config/certificate/broken"))
    ec2.nothing_stored()
    ec2.delete("config/certificate/broken")
    ec2.login()


def test_deleted_certificate_no_longer_verifies(ec2: Ec2Test) -> None:
    ec2.role()
    ec2.delete("config/certificate/test")
    ec2.login_refused(InvalidRequestError, 400, NO_CERTIFICATE)
    ec2.nothing_stored()


@pytest.mark.parametrize("name", ["identity-accesslist", "identity-whitelist"])
def test_identity_access_list_endpoints(ec2: Ec2Test, name: str) -> None:
    ec2.role()
    first, second = ec2.instance.instance_id, ec2.second.instance_id
    assert ec2.keys(name) == []
    ec2.login(nonce="n-1")
    ec2.login(ec2.second, nonce="n-2")
    assert ec2.keys(name) == sorted([first, second])
    entry = ec2.read(f"{name}/{second}")
    assert entry is not None
    assert (entry["role"], entry["client_nonce"]) == (ROLE, "n-2")
    ec2.delete(f"{name}/{second}")
    assert ec2.read(f"{name}/{second}") is None
    assert ec2.keys(name) == [first]
    # A deleted entry lets the instance log in afresh (with any nonce).
    ec2.login(ec2.second, nonce="n-3")
    assert ec2.read(f"{name}/{MISSING_ID}") is None


def test_access_list_tidy(ec2: Ec2Test) -> None:
    ec2.role()
    ec2.login()
    ec2.clock.advance(DEFAULT_TTL + 10)  # the first entry expired 10 seconds ago
    ec2.login(ec2.second)
    both = sorted([ec2.instance.instance_id, ec2.second.instance_id])
    # Within the default safety buffer (72h): kept.
    ec2.write("tidy/identity-accesslist")
    assert ec2.keys("identity-accesslist") == both
    ec2.write("tidy/identity-whitelist", {"safety_buffer": "11s"})
    assert ec2.keys("identity-accesslist") == both
    ec2.write("tidy/identity-accesslist", {"safety_buffer": "9s"})
    assert ec2.keys("identity-accesslist") == [ec2.second.instance_id]


@pytest.mark.parametrize(
    ("name", "legacy", "default"),
    [
        ("identity-accesslist", "identity-whitelist", 259200),
        ("roletag-denylist", "roletag-blacklist", 15552000),
    ],
)
def test_tidy_config_endpoints(ec2: Ec2Test, name: str, legacy: str, default: int) -> None:
    path, legacy_path = f"config/tidy/{name}", f"config/tidy/{legacy}"
    assert ec2.read(path) is None
    ec2.write(path, {"disable_periodic_tidy": True})
    assert ec2.read(path) == {"safety_buffer": default, "disable_periodic_tidy": True}
    ec2.write(legacy_path, {"safety_buffer": "1h"})
    assert ec2.read(path) == {"safety_buffer": 3600, "disable_periodic_tidy": True}
    assert ec2.read(legacy_path) == ec2.read(path)
    message = (
        'Field validation failed: error converting input for field "safety_buffer": '
        'time: invalid duration "soon"'
    )
    call = functools.partial(ec2.write, path, {"safety_buffer": "soon"})
    refused(InvalidRequestError, 400, message, call)
    ec2.delete(legacy_path)
    assert ec2.read(path) is None


def test_periodic_tidy_follows_the_tidy_config(ec2: Ec2Test) -> None:
    ec2.role()
    ec2.login()
    ec2.clock.advance(DEFAULT_TTL + 10)
    ec2.write("config/tidy/identity-accesslist", {"safety_buffer": "5s"})
    ec2.write("config/tidy/roletag-denylist", {"disable_periodic_tidy": True})
    ec2.write("config/tidy/identity-accesslist", {"disable_periodic_tidy": True})
    assert ec2.backend.ec2_admin.tidy() == 0
    assert ec2.keys("identity-accesslist") == [ec2.instance.instance_id]
    ec2.write("config/tidy/identity-accesslist", {"disable_periodic_tidy": False})
    assert ec2.backend.ec2_admin.tidy() == 1
    assert ec2.read(f"identity-accesslist/{ec2.instance.instance_id}") is None


@pytest.mark.parametrize("name", ["roletag-denylist", "roletag-blacklist"])
def test_role_tag_deny_list_endpoints(ec2: Ec2Test, name: str) -> None:
    ec2.tagged_role()
    first, second = ec2.create_tag(policies="a"), ec2.create_tag(max_ttl="1000h")
    assert first != second
    ec2.write(f"{name}/{first}")
    # The tag may be given base64-encoded too.
    ec2.write(f"{name}/{base64.b64encode(second.encode()).decode()}")
    assert sorted(ec2.keys(name)) == sorted([first, second])
    now = ec2.clock.now()
    assert ec2.read(f"{name}/{first}") == {
        "creation_time": rfc3339(now),
        "expiration_time": rfc3339(now + timedelta(seconds=DEFAULT_TTL)),
    }
    # The tag's longer max TTL sets its entry's expiry.
    assert ec2.read(f"{name}/{second}") == {
        "creation_time": rfc3339(now),
        "expiration_time": rfc3339(now + timedelta(hours=1000)),
    }
    ec2.delete(f"{name}/{second}")
    assert ec2.read(f"{name}/{second}") is None
    assert ec2.keys(name) == [first]
    call = functools.partial(ec2.write, f"{name}/{first.replace(':p=a:', ':p=b:')}")
    refused(InternalError, 500, "role tag signature verification failed", call)
    assert ec2.keys(name) == [first]


def test_role_tag_deny_list_tidy(ec2: Ec2Test) -> None:
    ec2.tagged_role()
    old, fresh = ec2.create_tag(), ec2.create_tag()
    ec2.write(f"roletag-denylist/{old}")
    ec2.clock.advance(DEFAULT_TTL + 10)
    ec2.write(f"roletag-denylist/{fresh}")
    ec2.write("tidy/roletag-denylist")  # default buffer (72h): both kept
    assert sorted(ec2.keys("roletag-denylist")) == sorted([old, fresh])
    ec2.write("tidy/roletag-blacklist", {"safety_buffer": "9s"})
    assert ec2.keys("roletag-denylist") == [fresh]


def test_unsupported_operations(ec2: Ec2Test) -> None:
    for request in (
        Request("read", "config/certificates"),
        Request("list", "config/certificate/test"),
        Request("update", "identity-accesslist/i-0123456789abcdef0"),
        Request("read", "tidy/identity-accesslist"),
        Request("read", "role/web/tag"),
    ):
        with pytest.raises(UnsupportedOperationError):
            ec2.backend.handle_request(request)
