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
from aws_iam_backend.login.issue import entity_id
from aws_iam_backend.vault.tokens import TokenRecord, TokenSpec, rfc3339
from tests.support.drivers import Backend, driver  # noqa: F401
from tests.support.ec2 import (
    ACCOUNT,
    OTHER_ACCOUNT,
    REGION,
    Ec2World,
    Instance,
    ManualClock,
    SigningCert,
    access_list_entry,
    build_world,
    configure_backend,
    identity_login,
    make_signing_cert,
    other_account_admin,
    pkcs7_login,
    register_certificate,
    tamper,
    token_keys,
    unique,
)
from tests.support.moto_server import MotoServer
from tests.support.payloads import botocore_payload
from tests.support.processes import run_together

ROLE = "web"
TAG_KEY = "VaultRole"
MISSING_ID = "i-0000000000000000a"


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world(moto: MotoServer) -> Ec2World:
    return build_world(moto)


@pytest.fixture(scope="module")
def signer() -> SigningCert:
    """Registered as ``config/certificate/test`` (pkcs7) by :func:`backend`."""
    return make_signing_cert(common_name="ec2-login-pkcs7")


@pytest.fixture(scope="module")
def id_signer() -> SigningCert:
    """Registered as ``config/certificate/test-identity`` (identity) by :func:`backend`."""
    return make_signing_cert(common_name="ec2-login-identity")


@pytest.fixture(scope="module")
def instance(world: Ec2World) -> Instance:
    """A running instance (in the world's subnet, with its instance profile) that no test
    changes; each test has its own storage, so its own access list."""
    return world.run_instance()


@pytest.fixture(scope="module")
def second_instance(world: Ec2World) -> Instance:
    return world.run_instance()


@pytest.fixture
def fresh_instance(world: Ec2World) -> Instance:
    """An instance of this test's own (to tag, stop or terminate)."""
    return world.run_instance()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def backend(
    moto: MotoServer,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    id_signer: SigningCert,
) -> Any:
    """A backend on ``storage`` and ``clock``, its AWS calls sent to moto, with the test
    signer registered as ``config/certificate/test`` (pkcs7) and the identity signer as
    ``config/certificate/test-identity``."""
    return configure_backend(
        Backend(storage=storage, clock=clock),
        moto,
        {"test": (signer, "pkcs7"), "test-identity": (id_signer, "identity")},
    )


def ec2_role(backend: Any, instance: Instance, name: str = ROLE, **fields: Any) -> None:
    """Write an ``auth_type=ec2`` role, bound to the instance's AMI unless ``fields`` give
    other binds (a bind given as None is left out)."""
    data: dict[str, Any] = {"auth_type": "ec2", "bound_ami_id": instance.image_id}
    data.update(fields)
    backend.write_role(name, {k: v for k, v in data.items() if v is not None})


def login(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
    *,
    role: str | None = ROLE,
    nonce: str | None = None,
    **document: Any,
) -> dict[str, Any]:
    """A pkcs7 login of ``instance`` (``document`` overrides its identity document);
    the ``auth`` of the response."""
    response = backend.login(
        pkcs7_login(signer, instance.document(**document), role=role, nonce=nonce)
    )
    assert isinstance(response, Response)
    auth: dict[str, Any] = response.auth or {}
    assert auth["client_token"]
    return auth


def refused(
    kind: type[BackendError], call: Callable[[], object], message: str, status: int
) -> BackendError:
    """Run ``call``, which must raise exactly ``kind`` with ``message`` and ``status``."""
    with pytest.raises(BackendError) as info:
        call()
    assert type(info.value) is kind, info.value
    assert info.value.message == message
    assert info.value.status == status
    return info.value


def entry_field(backend: Any, instance_id: str, field: str) -> Any:
    """One field of the instance's access list entry, read through the backend."""
    entry = access_list_entry(backend, instance_id)
    assert entry is not None, f"no access list entry for {instance_id}"
    return entry[field]


def stored_entry(storage: MemoryStorage, instance_id: str) -> Document | None:
    return storage.read(ACCESSLIST_STORAGE_PREFIX + instance_id)


def assert_nothing_stored(storage: MemoryStorage, instance_id: str) -> None:
    assert stored_entry(storage, instance_id) is None
    assert token_keys(storage) == []


def later(instance: Instance, seconds: int) -> str:
    """The instance's pendingTime moved by ``seconds`` (a stop/start, or an older one)."""
    pending = datetime.strptime(instance.pending_time, "%Y-%m-%dT%H:%M:%S%z")
    return (pending + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def read(backend: Any, path: str) -> dict[str, Any] | None:
    data = backend.handle_request(Request("read", path)).data
    return None if data is None else dict(data)


def keys(backend: Any, path: str) -> list[str]:
    return list((backend.handle_request(Request("list", path)).data or {})["keys"])


def write(backend: Any, path: str, data: dict[str, Any] | None = None) -> Response:
    response = backend.handle_request(Request("update", path, data or {}))
    assert isinstance(response, Response)
    return response


def delete(backend: Any, path: str) -> None:
    backend.handle_request(Request("delete", path))


# ---------------------------------------------------------------- successful logins


def test_pkcs7_login_with_named_role(
    backend: Any,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance, policies="web,Ops")
    response = backend.login(pkcs7_login(signer, instance.document(), role=ROLE))
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
    role_id = backend.read_role(ROLE)["role_id"]
    assert auth["entity_id"] == entity_id("aws/", role_id)  # ec2_alias defaults to role_id
    record = backend.lookup_token(auth["client_token"])
    assert record.display_name == "aws"
    assert record.internal_data == {
        "auth_type": "ec2",
        "role_name": ROLE,
        "role_id": role_id,
        "instance_id": instance.instance_id,
        "region": REGION,
        "account_id": ACCOUNT,
    }
    now = clock.now()
    assert access_list_entry(backend, instance.instance_id) == {
        "role": ROLE,
        "client_nonce": nonce,
        "creation_time": rfc3339(now),
        "disallow_reauthentication": False,
        "pending_time": instance.pending_time,
        "expiration_time": rfc3339(now + timedelta(seconds=DEFAULT_TTL)),
        "last_updated_time": rfc3339(now),
    }
    assert len(token_keys(storage)) == 1
    # The nonce handed out is the one to log in again with.
    again = login(backend, signer, instance, nonce=nonce)
    assert "nonce" not in again["metadata"]


def test_role_defaults_to_the_ami_id(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance, name=instance.image_id, policies="by-ami")
    response = backend.login(pkcs7_login(signer, instance.document()))
    assert response.role == instance.image_id
    assert response.auth["metadata"]["role"] == instance.image_id
    assert response.auth["policies"] == ["by-ami", "default"]
    assert entry_field(backend, instance.instance_id, "role") == instance.image_id


def test_no_role_and_no_role_for_the_ami(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: backend.login(pkcs7_login(signer, instance.document())),
        f'entry for role "{instance.image_id}" not found',
        400,
    )
    refused(
        InvalidRequestError,
        lambda: backend.login(pkcs7_login(signer, instance.document(), role="nope")),
        'entry for role "nope" not found',
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


def test_identity_and_signature_login(
    backend: Any,
    storage: MemoryStorage,
    id_signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    response = backend.login(identity_login(id_signer, instance.document(), role=ROLE))
    assert response.auth["metadata"]["role"] == ROLE
    assert entry_field(backend, instance.instance_id, "pending_time") == instance.pending_time
    assert len(token_keys(storage)) == 1


def test_signer_registered_for_the_other_type_is_not_used(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    id_signer: SigningCert,
    instance: Instance,
) -> None:
    """A pkcs7 certificate never verifies an identity signature, and the reverse."""
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: backend.login(identity_login(signer, instance.document(), role=ROLE)),
        "instance identity verification using SHA256 RSA signature is unsuccessful",
        400,
    )
    refused(
        InvalidRequestError,
        lambda: backend.login(pkcs7_login(id_signer, instance.document(), role=ROLE)),
        "failed to verify the signature: no certificate for signer",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


@pytest.mark.parametrize("alias", ["role_id", "instance_id", "image_id"])
def test_alias_per_ec2_alias(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
    alias: str,
) -> None:
    backend.write_identity_config({"ec2_alias": alias})
    ec2_role(backend, instance)
    expected = {
        "role_id": backend.read_role(ROLE)["role_id"],
        "instance_id": instance.instance_id,
        "image_id": instance.image_id,
    }[alias]
    assert login(backend, signer, instance)["entity_id"] == entity_id("aws/", expected)


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
    backend: Any,
    signer: SigningCert,
    instance: Instance,
    ec2_metadata: list[str],
    expected: set[str],
) -> None:
    backend.write_identity_config({"ec2_metadata": ec2_metadata})
    ec2_role(backend, instance)
    metadata = login(backend, signer, instance, nonce="n-1")["metadata"]
    values = {
        "account_id": ACCOUNT,
        "auth_type": "ec2",
        "ami_id": instance.image_id,
        "instance_id": instance.instance_id,
        "region": REGION,
    }
    assert metadata == {
        "role_tag_max_ttl": "0s",
        "role": ROLE,
        **{name: values[name] for name in expected},
    }


def test_policies_and_ttls(
    backend: Any,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(
        backend,
        instance,
        token_policies="a,b",
        token_ttl="1h",
        token_max_ttl="2h",
        token_no_default_policy=True,
    )
    auth = login(backend, signer, instance)
    assert auth["policies"] == ["a", "b"]
    assert auth["lease_duration"] == 3600
    record = backend.lookup_token(auth["client_token"])
    assert record.max_ttl == 7200
    # The entry lives as long as the longest max TTL (the mount's here).
    entry = access_list_entry(backend, instance.instance_id)
    assert entry is not None
    assert entry["expiration_time"] == rfc3339(clock.now() + timedelta(seconds=DEFAULT_TTL))


def test_access_list_entry_lives_as_long_as_the_longest_max_ttl(
    backend: Any,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """A role max TTL above the mount's: the token is capped by the mount's, the entry
    (which guards against replays of the document) lasts the role's."""
    ec2_role(backend, instance, token_max_ttl="1000h")
    auth = login(backend, signer, instance)
    assert auth["lease_duration"] == DEFAULT_TTL
    assert backend.lookup_token(auth["client_token"]).max_ttl == DEFAULT_TTL
    entry = access_list_entry(backend, instance.instance_id)
    assert entry is not None
    assert entry["expiration_time"] == rfc3339(clock.now() + timedelta(hours=1000))


def test_a_given_nonce_is_kept_not_returned(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    auth = login(backend, signer, instance, nonce="client-chosen")
    assert "nonce" not in auth["metadata"]
    assert entry_field(backend, instance.instance_id, "client_nonce") == "client-chosen"


def test_unrecognized_fields_are_warned_about(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    payload = {**pkcs7_login(signer, instance.document(), role=ROLE), "extra": "x"}
    response = backend.login(payload)
    assert response.warnings == ("Endpoint ignored these unrecognized parameters: [extra]",)


def test_token_bound_cidrs_checked_at_login(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance, token_bound_cidrs="10.0.0.0/8")
    payload = pkcs7_login(signer, instance.document(), role=ROLE)
    refused(
        PermissionDeniedError,
        lambda: backend.login(payload, remote_addr="192.0.2.7"),
        "permission denied",
        403,
    )
    refused(PermissionDeniedError, lambda: backend.login(payload), "permission denied", 403)
    assert_nothing_stored(storage, instance.instance_id)
    token = backend.login(payload, remote_addr="10.1.2.3").auth["client_token"]
    assert backend.lookup_token(token, remote_addr="10.1.2.3").bound_cidrs == ("10.0.0.0/8",)


class SwitchableSink:
    """An audit sink that fails while ``fail`` is set."""

    def __init__(self) -> None:
        self.fail = False
        self.records: list[Mapping[str, object]] = []

    def write(self, record: Mapping[str, object]) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.records.append(record)


def test_failing_audit_revokes_the_ec2_login_token(
    moto: MotoServer,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """A login whose audit record cannot be written fails, and its token is revoked: no
    token that was not audited stays usable."""
    sink = SwitchableSink()
    backend = configure_backend(
        Backend(storage=storage, clock=clock, audit=sink), moto, {"test": (signer, "pkcs7")}
    )
    ec2_role(backend, instance)
    sink.fail = True
    payload = pkcs7_login(signer, instance.document(), role=ROLE, nonce="n-1")
    refused(
        AuditFailedError,
        lambda: backend.handle_request(Request("update", "login", payload)),
        "audit logging failed",
        500,
    )
    assert token_keys(storage) == []
    sink.fail = False
    response = backend.handle_request(Request("update", "login", payload))
    assert backend.lookup_token(response.auth["client_token"]).metadata["role"] == ROLE
    assert sink.records[-1]["path"] == "auth/aws/login"


# ------------------------------------------------------------------ reauthentication


def test_reauthentication_with_the_same_nonce(
    backend: Any,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    login(backend, signer, instance, nonce="n-1")
    created = clock.now()
    now = clock.advance(120)
    login(backend, signer, instance, nonce="n-1")
    assert access_list_entry(backend, instance.instance_id) == {
        "role": ROLE,
        "client_nonce": "n-1",
        "creation_time": rfc3339(created),
        "disallow_reauthentication": False,
        "pending_time": instance.pending_time,
        "expiration_time": rfc3339(now + timedelta(seconds=DEFAULT_TTL)),
        "last_updated_time": rfc3339(now),
    }
    assert len(token_keys(storage)) == 2


@pytest.mark.parametrize(
    ("nonce", "message"),
    [
        ("n-2", "client nonce mismatch"),
        (None, "client nonce mismatch"),  # no nonce: the server's generated one is not it
        ("", "reauthentication is disabled"),  # the marker of a disabling login
    ],
)
def test_reauthentication_with_another_nonce_refused(
    backend: Any,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
    nonce: str | None,
    message: str,
) -> None:
    ec2_role(backend, instance)
    login(backend, signer, instance, nonce="n-1")
    before = stored_entry(storage, instance.instance_id)
    clock.advance(60)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce=nonce),
        message,
        400,
    )
    assert stored_entry(storage, instance.instance_id) == before
    assert len(token_keys(storage)) == 1


def test_empty_nonce_disables_reauthentication(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    auth = login(backend, signer, instance, nonce="")
    assert "nonce" not in auth["metadata"]
    entry = access_list_entry(backend, instance.instance_id)
    assert entry is not None
    assert (entry["client_nonce"], entry["disallow_reauthentication"]) == ("", True)
    for nonce in ("", "anything", None):
        refused(
            InvalidRequestError,
            functools.partial(login, backend, signer, instance, nonce=nonce),
            "reauthentication is disabled",
            400,
        )
    assert len(token_keys(storage)) == 1


def test_role_disallowing_reauthentication(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance, disallow_reauthentication=True)
    auth = login(backend, signer, instance)
    assert "nonce" not in auth["metadata"]  # nothing to reauthenticate with
    entry = access_list_entry(backend, instance.instance_id)
    assert entry is not None
    assert (entry["client_nonce"], entry["disallow_reauthentication"]) == ("", True)
    # Allowing it on the role later does not reopen the instance's entry.
    backend.write_role(ROLE, {"disallow_reauthentication": False})
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce="n-1"),
        "reauthentication is disabled",
        400,
    )
    assert len(token_keys(storage)) == 1


def test_nonce_over_128_bytes(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce="n" * 129),
        "client nonce exceeding the limit of 128 characters",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)
    login(backend, signer, instance, nonce="n" * 128)


def test_instance_migration_with_a_newer_pending_time(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance, allow_instance_migration=True)
    login(backend, signer, instance, nonce="n-1")
    # Same pendingTime, another nonce: not a migration.
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce="n-2"),
        "client nonce mismatch and instance meta-data incorrect",
        400,
    )
    migrated = later(instance, 3600)
    login(backend, signer, instance, nonce="n-2", pending_time=migrated)
    entry = access_list_entry(backend, instance.instance_id)
    assert entry is not None
    # The nonce of the first login stays; the pendingTime moves on.
    assert (entry["client_nonce"], entry["pending_time"]) == ("n-1", migrated)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce="n-2", pending_time=migrated),
        "client nonce mismatch and instance meta-data incorrect",
        400,
    )
    login(backend, signer, instance, nonce="n-1", pending_time=migrated)
    assert len(token_keys(storage)) == 3


def test_migration_without_a_nonce_keeps_the_first_nonce(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """Vault's rule: a migrated instance logging in without a nonce gets a token, but the
    access list keeps the first login's nonce; the nonce generated for the migrated
    login (returned, as Vault does) is not the one to reauthenticate with."""
    ec2_role(backend, instance, allow_instance_migration=True)
    first = login(backend, signer, instance)["metadata"]["nonce"]
    migrated = later(instance, 3600)
    returned = login(backend, signer, instance, pending_time=migrated)["metadata"]["nonce"]
    assert returned != first
    assert entry_field(backend, instance.instance_id, "client_nonce") == first
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce=returned, pending_time=migrated),
        "client nonce mismatch and instance meta-data incorrect",
        400,
    )
    login(backend, signer, instance, nonce=first, pending_time=migrated)
    assert len(token_keys(storage)) == 3


def test_older_pending_time_refused(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance, allow_instance_migration=True)
    login(backend, signer, instance, nonce="n-1")
    before = stored_entry(storage, instance.instance_id)
    older = later(instance, -60)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce="n-1", pending_time=older),
        "instance meta-data is older than the one used for previous login",
        400,
    )
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, nonce="n-2", pending_time=older),
        "client nonce mismatch and instance meta-data incorrect",
        400,
    )
    assert stored_entry(storage, instance.instance_id) == before
    assert len(token_keys(storage)) == 1


# --------------------------------------------------------- documents and signatures


def test_tampered_document_refused(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
    second_instance: Instance,
) -> None:
    """The signed document of one instance, edited to name another."""
    ec2_role(backend, instance)
    blob = signer.pkcs7(instance.document())
    forged = tamper(blob, instance.instance_id.encode(), second_instance.instance_id.encode())
    refused(
        InvalidRequestError,
        lambda: backend.login({"pkcs7": forged, "role": ROLE}),
        "failed to verify the signature: message digest mismatch",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)
    assert_nothing_stored(storage, second_instance.instance_id)


def test_tampered_identity_document_refused(
    backend: Any,
    storage: MemoryStorage,
    id_signer: SigningCert,
    instance: Instance,
    second_instance: Instance,
) -> None:
    ec2_role(backend, instance)
    payload = identity_login(id_signer, instance.document(), role=ROLE)
    payload["identity"] = base64.b64encode(second_instance.document()).decode()
    refused(
        InvalidRequestError,
        lambda: backend.login(payload),
        "instance identity verification using SHA256 RSA signature is unsuccessful",
        400,
    )
    assert_nothing_stored(storage, second_instance.instance_id)


def test_unregistered_certificate_refused(
    backend: Any,
    storage: MemoryStorage,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    stranger = make_signing_cert()
    refused(
        InvalidRequestError,
        lambda: login(backend, stranger, instance),
        "failed to verify the signature: no certificate for signer",
        400,
    )
    refused(
        InvalidRequestError,
        lambda: backend.login(identity_login(stranger, instance.document(), role=ROLE)),
        "instance identity verification using SHA256 RSA signature is unsuccessful",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


@pytest.mark.parametrize("validity", ["expired", "not yet valid"])
def test_signer_outside_its_validity_refused(
    backend: Any,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
    validity: str,
) -> None:
    now = clock.now()
    days = (-30, -1) if validity == "expired" else (1, 30)
    bounded = make_signing_cert(
        key=signer.key,
        not_before=now + timedelta(days=days[0]),
        not_after=now + timedelta(days=days[1]),
    )
    register_certificate(backend, "bounded", bounded, "pkcs7")
    register_certificate(backend, "bounded-identity", bounded, "identity")
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: login(backend, bounded, instance),
        "failed to verify the signature: signer certificate is not valid at the current time",
        400,
    )
    refused(
        InvalidRequestError,
        lambda: backend.login(identity_login(bounded, instance.document(), role=ROLE)),
        "instance identity verification using SHA256 RSA signature is unsuccessful",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


def test_document_for_another_account_refused(
    moto: MotoServer,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """A document naming an instance of ACCOUNT as if it ran in another account: without
    config/sts that account cannot be asked; with it, the instance is not there."""
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, account_id=OTHER_ACCOUNT),
        f'failed to verify instance ID: unable to fetch client for account ID "{OTHER_ACCOUNT}"'
        f' -- default client is for account "{ACCOUNT}"',
        400,
    )
    other_admin, _keys = other_account_admin(moto)
    backend.write_sts_config(OTHER_ACCOUNT, {"sts_role": other_admin})
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, account_id=OTHER_ACCOUNT),
        f'failed to verify instance ID: error fetching description for instance ID "'
        f'{instance.instance_id}": InvalidInstanceID.NotFound: The instance ID '
        f"'{instance.instance_id}' does not exist",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


@pytest.mark.parametrize("state", ["stopped", "terminated"])
def test_instance_not_running_refused(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    fresh_instance: Instance,
    state: str,
) -> None:
    (world.stop if state == "stopped" else world.terminate)(fresh_instance.instance_id)
    ec2_role(backend, fresh_instance)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, fresh_instance),
        "failed to verify instance ID: instance is not in 'running' state",
        400,
    )
    assert_nothing_stored(storage, fresh_instance.instance_id)


def test_wrong_region_refused(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, region="eu-west-1"),
        f'failed to verify instance ID: error fetching description for instance ID "'
        f'{instance.instance_id}": InvalidInstanceID.NotFound: The instance ID '
        f"'{instance.instance_id}' does not exist",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


def test_unknown_instance_refused(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, instance_id=MISSING_ID),
        f'failed to verify instance ID: error fetching description for instance ID "'
        f"{MISSING_ID}\": InvalidInstanceID.NotFound: The instance ID '{MISSING_ID}' does not "
        "exist",
        400,
    )
    assert_nothing_stored(storage, MISSING_ID)


# ------------------------------------------------------------------------------ binds


def _bind_cases(world: Ec2World, instance: Instance) -> dict[str, tuple[list[list[str]], str, str]]:
    """Per bind: values that match (each list one role write), a value that does not,
    and Vault's refusal."""
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
def test_bind_matching(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
    field: str,
) -> None:
    matching, _other, _message = _bind_cases(world, instance)[field]
    for count, values in enumerate(matching, start=1):
        ec2_role(backend, instance, **binds(field, values))
        login(backend, signer, instance, nonce="n-1")
        assert len(token_keys(storage)) == count


@pytest.mark.parametrize("field", BIND_FIELDS)
def test_bind_not_matching(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
    field: str,
) -> None:
    _matching, other, message = _bind_cases(world, instance)[field]
    ec2_role(backend, instance, **binds(field, other))
    refused(InvalidRequestError, lambda: login(backend, signer, instance), message, 400)
    assert_nothing_stored(storage, instance.instance_id)


def test_binds_checked_in_vault_order(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """The region first (before the instance binds), then instance ID before AMI ID."""
    ec2_role(
        backend,
        instance,
        bound_ami_id="ami-00000000",
        bound_ec2_instance_id=MISSING_ID,
        bound_region="eu-west-1",
    )
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance),
        f'Region "{REGION}" does not satisfy the constraint on role "{ROLE}"',
        400,
    )
    backend.write_role(ROLE, {"bound_region": []})
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance),
        f'Error validating instance: instance ID "{instance.instance_id}" does not belong to '
        f'the role "{ROLE}"',
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


@pytest.mark.parametrize("field", ["bound_iam_instance_profile_arn", "bound_iam_role_arn"])
def test_profile_binds_on_an_instance_without_profile(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    field: str,
) -> None:
    bare = world.run_instance(profile=False)
    arn = world.profile_arn if field == "bound_iam_instance_profile_arn" else world.role_arn
    ec2_role(backend, bare, **binds(field, arn))
    refused(
        InternalError,
        lambda: login(backend, signer, bare),
        "IAM instance profile in the instance description is nil",
        500,
    )
    assert_nothing_stored(storage, bare.instance_id)


# ------------------------------------------------------------------------- auth types


def test_iam_role_refuses_ec2_logins(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    backend.write_role("iamrole", {"bound_iam_principal_arn": f"arn:aws:iam::{ACCOUNT}:role/*"})
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance, role="iamrole"),
        "auth method ec2 not allowed for role iamrole",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


def test_ec2_role_refuses_iam_logins(
    moto: MotoServer, backend: Any, storage: MemoryStorage, instance: Instance
) -> None:
    ec2_role(backend, instance, name="ec2role")
    _user, user_keys = moto.create_user(unique("ec2-login-user-"))
    refused(
        InvalidRequestError,
        lambda: backend.login(botocore_payload(user_keys, role="ec2role")),
        "auth method iam not allowed for role ec2role",
        400,
    )
    assert token_keys(storage) == []


# -------------------------------------------------------------------------- role tags


def tagged_role(backend: Any, instance: Instance, **fields: Any) -> None:
    ec2_role(backend, instance, role_tag=TAG_KEY, token_policies="a,b,c", **fields)


def create_tag(backend: Any, role: str = ROLE, **fields: Any) -> str:
    data = write(backend, f"role/{role}/tag", fields).data
    assert data is not None
    assert data["tag_key"] == TAG_KEY
    value: str = data["tag_value"]
    return value


def test_role_tag_login(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    tagged_role(backend, fresh_instance)
    value = create_tag(backend, policies="a", max_ttl="1h")
    assert value.startswith("v1:")
    assert ":r=web:d=false:m=false:p=a:t=3600:" in value
    world.tag(fresh_instance.instance_id, TAG_KEY, value)
    auth = login(backend, signer, fresh_instance)
    assert auth["policies"] == ["a", "default"]
    assert auth["lease_duration"] == 3600
    assert auth["metadata"]["role_tag_max_ttl"] == "1h0m0s"
    assert auth["metadata"]["nonce"]
    record = backend.lookup_token(auth["client_token"])
    assert record.max_ttl == 3600
    # The entry lives as long as the longest max TTL (the mount's); renewal keeps the
    # tag's cap on the token.
    entry = access_list_entry(backend, fresh_instance.instance_id)
    assert entry is not None
    assert entry["expiration_time"] == rfc3339(clock.now() + timedelta(seconds=DEFAULT_TTL))
    clock.advance(600)
    assert backend.renew_token(auth["client_token"]).ttl == 3000
    assert len(token_keys(storage)) == 1


def test_role_tag_without_policies_inherits_the_role_policies(
    world: Ec2World,
    backend: Any,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    tagged_role(backend, fresh_instance)
    world.tag(fresh_instance.instance_id, TAG_KEY, create_tag(backend))
    auth = login(backend, signer, fresh_instance)
    assert auth["policies"] == ["a", "b", "c", "default"]
    assert auth["metadata"]["role_tag_max_ttl"] == "0s"


def test_role_tag_disallowing_reauthentication(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    tagged_role(backend, fresh_instance)
    value = create_tag(backend, disallow_reauthentication=True)
    world.tag(fresh_instance.instance_id, TAG_KEY, value)
    auth = login(backend, signer, fresh_instance)
    assert "nonce" not in auth["metadata"]
    assert entry_field(backend, fresh_instance.instance_id, "disallow_reauthentication")
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, fresh_instance),
        "reauthentication is disabled",
        400,
    )
    assert len(token_keys(storage)) == 1


def test_role_tag_missing_on_the_instance(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    tagged_role(backend, instance)
    refused(
        InternalError,
        lambda: login(backend, signer, instance),
        f'missing tag with key "{TAG_KEY}" on the instance',
        500,
    )
    assert_nothing_stored(storage, instance.instance_id)


def test_deny_listed_role_tag_refused(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    tagged_role(backend, fresh_instance)
    value = create_tag(backend, policies="a")
    world.tag(fresh_instance.instance_id, TAG_KEY, value)
    write(backend, f"roletag-denylist/{value}")
    refused(
        InternalError,
        lambda: login(backend, signer, fresh_instance),
        "role tag is deny listed",
        500,
    )
    assert_nothing_stored(storage, fresh_instance.instance_id)
    delete(backend, f"roletag-denylist/{value}")
    login(backend, signer, fresh_instance)


def test_role_tag_for_another_instance_refused(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    tagged_role(backend, fresh_instance)
    world.tag(fresh_instance.instance_id, TAG_KEY, create_tag(backend, instance_id=MISSING_ID))
    refused(
        InternalError,
        lambda: login(backend, signer, fresh_instance),
        "role tag is being used by an unauthorized instance",
        500,
    )
    assert_nothing_stored(storage, fresh_instance.instance_id)


def test_role_tag_of_another_role_refused(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    tagged_role(backend, fresh_instance)
    tagged_role(backend, fresh_instance, name="other")
    world.tag(fresh_instance.instance_id, TAG_KEY, create_tag(backend, role="other"))
    refused(
        InternalError,
        lambda: login(backend, signer, fresh_instance),
        "role on the tag is not matching the role supplied",
        500,
    )
    assert_nothing_stored(storage, fresh_instance.instance_id)


def test_role_tag_forged_refused(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    """A tag widened by hand (its policies edited) fails its HMAC."""
    tagged_role(backend, fresh_instance)
    value = create_tag(backend, policies="a")
    world.tag(fresh_instance.instance_id, TAG_KEY, value.replace(":p=a:", ":p=b:"))
    refused(
        InternalError,
        lambda: login(backend, signer, fresh_instance),
        "role tag signature verification failed",
        500,
    )
    assert_nothing_stored(storage, fresh_instance.instance_id)


def test_role_tag_policies_no_longer_on_the_role(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    tagged_role(backend, fresh_instance)
    world.tag(fresh_instance.instance_id, TAG_KEY, create_tag(backend, policies="c"))
    backend.write_role(ROLE, {"token_policies": "a,b"})
    refused(
        InternalError,
        lambda: login(backend, signer, fresh_instance),
        "policies on the role tag must be subset of policies on the role",
        500,
    )
    assert_nothing_stored(storage, fresh_instance.instance_id)


def test_role_tag_creation_needs_role_tag_enabled(backend: Any, instance: Instance) -> None:
    ec2_role(backend, instance)
    refused(
        InvalidRequestError,
        lambda: write(backend, f"role/{ROLE}/tag", {"policies": "a"}),
        "tag creation is not enabled for this role",
        400,
    )
    refused(
        InvalidRequestError,
        lambda: write(backend, "role/ghost/tag"),
        "entry not found for role ghost",
        400,
    )


# ---------------------------------------------------------------------------- renewal


def test_renewal_moves_the_entry_expiry(
    backend: Any,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance, token_ttl="2h")
    created = clock.now()
    auth = login(backend, signer, instance, nonce="n-1")
    now = clock.advance(3600)
    record = backend.renew_token(auth["client_token"])
    assert record.ttl == 7200
    assert record.expire_time == now + timedelta(seconds=7200)
    assert access_list_entry(backend, instance.instance_id) == {
        "role": ROLE,
        "client_nonce": "n-1",
        "creation_time": rfc3339(created),
        "disallow_reauthentication": False,
        "pending_time": instance.pending_time,
        "expiration_time": rfc3339(now + timedelta(seconds=DEFAULT_TTL)),
        "last_updated_time": rfc3339(now),
    }
    # Over HTTP-shaped requests too.
    response = backend.handle_request(Request("renew", "login", client_token=auth["client_token"]))
    assert response.auth["lease_duration"] == 7200


def test_renewal_refused_after_the_instance_stopped(
    world: Ec2World,
    backend: Any,
    storage: MemoryStorage,
    clock: ManualClock,
    signer: SigningCert,
    fresh_instance: Instance,
) -> None:
    ec2_role(backend, fresh_instance)
    token = login(backend, signer, fresh_instance)["client_token"]
    backend.renew_token(token)
    before = stored_entry(storage, fresh_instance.instance_id)
    world.stop(fresh_instance.instance_id)
    clock.advance(60)
    refused(
        PermissionDeniedError,
        lambda: backend.renew_token(token),
        f'failed to renew entry: failed to verify instance ID "{fresh_instance.instance_id}": '
        "instance is not in 'running' state",
        403,
    )
    assert stored_entry(storage, fresh_instance.instance_id) == before


def test_renewal_refused_after_the_entry_is_deleted(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    token = login(backend, signer, instance)["client_token"]
    delete(backend, f"identity-accesslist/{instance.instance_id}")
    refused(
        PermissionDeniedError,
        lambda: backend.renew_token(token),
        "failed to renew entry: failed to verify the access list identity entry for instance "
        f'ID: "{instance.instance_id}"',
        403,
    )
    assert access_list_entry(backend, instance.instance_id) is None


def test_renewal_refused_after_the_role_is_deleted(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    token = login(backend, signer, instance)["client_token"]
    before = stored_entry(storage, instance.instance_id)
    backend.delete_role(ROLE)
    refused(
        PermissionDeniedError,
        lambda: backend.renew_token(token),
        "failed to renew entry: role entry not found",
        403,
    )
    assert stored_entry(storage, instance.instance_id) == before


def test_renewal_rechecks_the_binds_of_the_rewritten_role(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    token = login(backend, signer, instance)["client_token"]
    backend.write_role(ROLE, {"bound_region": "eu-west-1"})
    refused(
        PermissionDeniedError,
        lambda: backend.renew_token(token),
        f'failed to renew entry: Region "{REGION}" does not satisfy the constraint on role '
        f'"{ROLE}"',
        403,
    )
    backend.write_role(ROLE, {"bound_region": [], "bound_ami_id": "ami-00000000"})
    refused(
        PermissionDeniedError,
        lambda: backend.renew_token(token),
        f'failed to renew entry: Error validating instance: AMI ID "{instance.image_id}" does '
        f'not belong to role "{ROLE}"',
        403,
    )


def test_renewal_when_ec2_fails_is_not_a_denial(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """AWS failing during a renewal's re-check is reported as such (502), not as 403."""
    ec2_role(backend, instance)
    token = login(backend, signer, instance)["client_token"]
    before = stored_entry(storage, instance.instance_id)
    backend.write_client_config({"endpoint": "http://127.0.0.1:1", "max_retries": 0})
    with pytest.raises(BackendError) as info:
        backend.renew_token(token)
    assert type(info.value) is UpstreamError
    assert info.value.status == 502
    assert info.value.message.startswith(
        f'failed to renew entry: failed to verify instance ID "{instance.instance_id}": '
        f'error fetching description for instance ID "{instance.instance_id}": '
    )
    assert stored_entry(storage, instance.instance_id) == before


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
def racing_backend(
    moto: MotoServer, meeting: MeetingStorage, clock: ManualClock, signer: SigningCert
) -> Any:
    return configure_backend(
        Backend(storage=meeting, clock=clock), moto, {"test": (signer, "pkcs7")}
    )


def together(*calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` on as many threads; each one's result or :class:`BackendError`."""

    def outcome(call: Callable[[], object]) -> object:
        try:
            return call()
        except BackendError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(outcome, calls))


def test_two_first_logins_at_once_one_wins(
    racing_backend: Any, meeting: MeetingStorage, signer: SigningCert, instance: Instance
) -> None:
    """Both logins read no entry; the one whose write loses re-reads the winner's entry
    and gets the answer it would have got after it: Vault's nonce mismatch, no token."""
    ec2_role(racing_backend, instance)
    payloads = [
        pkcs7_login(signer, instance.document(), role=ROLE, nonce=f"nonce-{n}") for n in range(2)
    ]
    meeting.arm(2)
    outcomes = together(*(functools.partial(racing_backend.login, p) for p in payloads))
    won = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, Response)]
    assert len(won) == 1, outcomes
    loser = outcomes[1 - won[0]]
    assert isinstance(loser, InvalidRequestError)
    assert (loser.status, loser.message) == (400, "client nonce mismatch")
    assert meeting.conflicts == 1  # the loser's first write; its second read refused it
    assert len(token_keys(meeting)) == 1
    assert entry_field(racing_backend, instance.instance_id, "client_nonce") == (f"nonce-{won[0]}")


def test_two_logins_with_one_nonce_at_once_both_succeed(
    racing_backend: Any, meeting: MeetingStorage, signer: SigningCert, instance: Instance
) -> None:
    """The same instance reauthenticating twice at once (a retried request): as one after
    the other, both get a token."""
    ec2_role(racing_backend, instance)
    payload = pkcs7_login(signer, instance.document(), role=ROLE, nonce="n-1")
    racing_backend.login(payload)
    meeting.arm(2)
    outcomes = together(*(functools.partial(racing_backend.login, payload) for _ in range(2)))
    assert all(isinstance(outcome, Response) for outcome in outcomes), outcomes
    assert meeting.conflicts == 1
    assert len(token_keys(meeting)) == 3


def test_renewals_and_a_login_of_one_instance_at_once_all_succeed(
    racing_backend: Any,
    meeting: MeetingStorage,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """Renewals of two tokens of one instance and a login of it, all at once: each moves
    the one access list entry; none is refused for the others' writes."""
    ec2_role(racing_backend, instance)
    payload = pkcs7_login(signer, instance.document(), role=ROLE, nonce="n-1")
    tokens = [racing_backend.login(payload).auth["client_token"] for _ in range(2)]
    now = clock.advance(600)
    meeting.arm(3)
    outcomes = together(
        functools.partial(racing_backend.renew_token, tokens[0]),
        functools.partial(racing_backend.renew_token, tokens[1]),
        functools.partial(racing_backend.login, payload),
    )
    assert isinstance(outcomes[0], TokenRecord), outcomes
    assert isinstance(outcomes[1], TokenRecord), outcomes
    assert isinstance(outcomes[2], Response), outcomes
    assert meeting.conflicts >= 2  # all three wrote over one version: two (at least) retried
    entry = access_list_entry(racing_backend, instance.instance_id)
    assert entry is not None
    assert entry["last_updated_time"] == rfc3339(now)
    assert entry["client_nonce"] == "n-1"


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
    moto: MotoServer,
    tmp_path: Path,
    signer: SigningCert,
    instance: Instance,
    driver: str,  # noqa: F811
) -> None:
    path = str(tmp_path / "state.db")
    storage = SQLiteStorage(path)
    try:
        backend = configure_backend(Backend(storage=storage), moto, {"test": (signer, "pkcs7")})
        ec2_role(backend, instance)
        payloads = [
            pkcs7_login(signer, instance.document(), role=ROLE, nonce=f"nonce-{n}")
            for n in range(2)
        ]
        outcomes = run_together(
            _login_in_process, [(driver, path, payload) for payload in payloads]
        )
        issued = [o for o in outcomes if o[0] == "issued"]
        assert len(issued) == 1, outcomes
        (loser,) = [o for o in outcomes if o[0] == "refused"]
        assert loser[2:] == ("InvalidRequestError", 400, "client nonce mismatch"), outcomes
        assert len(token_keys(storage)) == 1
        entry = access_list_entry(backend, instance.instance_id)
        assert entry is not None
        assert entry["client_nonce"] == issued[0][1]
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
def failing(storage: MemoryStorage, clock: ManualClock) -> FailingIssuer:
    return FailingIssuer(storage, clock)


@pytest.fixture
def faulty_backend(
    moto: MotoServer,
    storage: MemoryStorage,
    clock: ManualClock,
    failing: FailingIssuer,
    signer: SigningCert,
) -> Any:
    return configure_backend(
        Backend(storage=storage, clock=clock, issuer=failing),
        moto,
        {"test": (signer, "pkcs7")},
    )


def test_issuer_failing_on_a_first_login_leaves_no_entry(
    faulty_backend: Any,
    storage: MemoryStorage,
    failing: FailingIssuer,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(faulty_backend, instance)
    failing.fail = True
    with pytest.raises(RuntimeError, match="the token store is down"):
        login(faulty_backend, signer, instance, nonce="n-1")
    assert_nothing_stored(storage, instance.instance_id)
    # The instance can still log in once the store is back (its first login never was).
    failing.fail = False
    login(faulty_backend, signer, instance, nonce="n-2")
    assert entry_field(faulty_backend, instance.instance_id, "client_nonce") == "n-2"


def test_issuer_failing_on_a_relogin_restores_the_entry(
    faulty_backend: Any,
    storage: MemoryStorage,
    clock: ManualClock,
    failing: FailingIssuer,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(faulty_backend, instance, allow_instance_migration=True)
    login(faulty_backend, signer, instance, nonce="n-1")
    before = stored_entry(storage, instance.instance_id)
    assert before is not None
    clock.advance(600)
    failing.fail = True
    with pytest.raises(RuntimeError, match="the token store is down"):
        login(faulty_backend, signer, instance, nonce="n-1", pending_time=later(instance, 60))
    after = stored_entry(storage, instance.instance_id)
    assert after is not None
    assert (after.value, after.expires_at) == (before.value, before.expires_at)
    assert len(token_keys(storage)) == 1
    # The restored entry still accepts the old document.
    failing.fail = False
    login(faulty_backend, signer, instance, nonce="n-1")


# -------------------------------------------------------------------------- endpoints


def test_certificate_endpoints(
    backend: Any,
    signer: SigningCert,
    id_signer: SigningCert,
) -> None:
    assert keys(backend, "config/certificates") == ["test", "test-identity"]
    assert read(backend, "config/certificate/test") == {
        "aws_public_cert": signer.pem,
        "type": "pkcs7",
    }
    assert read(backend, "config/certificate/test-identity") == {
        "aws_public_cert": id_signer.pem,
        "type": "identity",
    }
    # Base64 of the PEM is accepted (and stored decoded); the type is case-insensitive.
    encoded = base64.b64encode(signer.pem.encode()).decode()
    response = write(
        backend, "config/certificate/extra", {"aws_public_cert": encoded, "type": "IDENTITY"}
    )
    assert response.warnings == ()
    assert read(backend, "config/certificate/extra") == {
        "aws_public_cert": signer.pem,
        "type": "identity",
    }
    # An update without a type keeps the stored one.
    write(backend, "config/certificate/extra", {"aws_public_cert": id_signer.pem})
    assert read(backend, "config/certificate/extra") == {
        "aws_public_cert": id_signer.pem,
        "type": "identity",
    }
    assert keys(backend, "config/certificates") == ["extra", "test", "test-identity"]
    delete(backend, "config/certificate/extra")
    assert read(backend, "config/certificate/extra") is None
    assert keys(backend, "config/certificates") == ["test", "test-identity"]


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
def test_certificate_write_refusals(
    backend: Any,
    signer: SigningCert,
    id_signer: SigningCert,
    data: dict[str, str] | str,
    message: str,
) -> None:
    if data == "two blocks":
        data = {"aws_public_cert": signer.pem + id_signer.pem}
    assert isinstance(data, dict)
    refused(
        InvalidRequestError,
        lambda: write(backend, "config/certificate/bad", data),
        message,
        400,
    )
    assert read(backend, "config/certificate/bad") is None
    assert keys(backend, "config/certificates") == ["test", "test-identity"]


def test_certificate_paths_need_a_name(backend: Any, signer: SigningCert) -> None:
    """As in Vault, ``config/certificate/`` without a name is no path at all."""
    for operation in ("update", "read", "delete"):
        request = Request(operation, "config/certificate/", {"aws_public_cert": signer.pem})
        refused(
            NotFoundError,
            functools.partial(backend.handle_request, request),
            "unsupported path",
            404,
        )
    assert keys(backend, "config/certificates") == ["test", "test-identity"]


def test_malformed_stored_certificate_is_a_server_error(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    """A certificate document the store mangled fails every ec2 login as a 500 naming it,
    never as if the path or the login's entry were missing."""
    ec2_role(backend, instance)
    storage.commit([Put("config/certificate/broken", {"aws_public_cert": 7, "type": "pkcs7"})])
    message = 'certificate storage has a malformed entry under the name: "broken"'
    refused(InternalError, lambda: login(backend, signer, instance), message, 500)
    refused(InternalError, lambda: read(backend, "config/certificate/broken"), message, 500)
    assert_nothing_stored(storage, instance.instance_id)
    delete(backend, "config/certificate/broken")
    login(backend, signer, instance)


def test_deleted_certificate_no_longer_verifies(
    backend: Any,
    storage: MemoryStorage,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    delete(backend, "config/certificate/test")
    refused(
        InvalidRequestError,
        lambda: login(backend, signer, instance),
        "failed to verify the signature: no certificate for signer",
        400,
    )
    assert_nothing_stored(storage, instance.instance_id)


@pytest.mark.parametrize("name", ["identity-accesslist", "identity-whitelist"])
def test_identity_access_list_endpoints(
    backend: Any,
    signer: SigningCert,
    instance: Instance,
    second_instance: Instance,
    name: str,
) -> None:
    ec2_role(backend, instance)
    assert keys(backend, name) == []
    login(backend, signer, instance, nonce="n-1")
    login(backend, signer, second_instance, nonce="n-2")
    assert keys(backend, name) == sorted([instance.instance_id, second_instance.instance_id])
    entry = read(backend, f"{name}/{second_instance.instance_id}")
    assert entry is not None
    assert (entry["role"], entry["client_nonce"]) == (ROLE, "n-2")
    delete(backend, f"{name}/{second_instance.instance_id}")
    assert read(backend, f"{name}/{second_instance.instance_id}") is None
    assert keys(backend, name) == [instance.instance_id]
    # A deleted entry lets the instance log in afresh (with any nonce).
    login(backend, signer, second_instance, nonce="n-3")
    assert read(backend, f"{name}/{MISSING_ID}") is None


def test_access_list_tidy(
    backend: Any,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
    second_instance: Instance,
) -> None:
    ec2_role(backend, instance)
    login(backend, signer, instance)
    clock.advance(DEFAULT_TTL + 10)  # the first entry expired 10 seconds ago
    login(backend, signer, second_instance)
    both = sorted([instance.instance_id, second_instance.instance_id])
    # Within the default safety buffer (72h): kept.
    write(backend, "tidy/identity-accesslist")
    assert keys(backend, "identity-accesslist") == both
    write(backend, "tidy/identity-whitelist", {"safety_buffer": "11s"})
    assert keys(backend, "identity-accesslist") == both
    write(backend, "tidy/identity-accesslist", {"safety_buffer": "9s"})
    assert keys(backend, "identity-accesslist") == [second_instance.instance_id]


@pytest.mark.parametrize(
    ("name", "legacy", "default"),
    [
        ("identity-accesslist", "identity-whitelist", 259200),
        ("roletag-denylist", "roletag-blacklist", 15552000),
    ],
)
def test_tidy_config_endpoints(backend: Any, name: str, legacy: str, default: int) -> None:
    path, legacy_path = f"config/tidy/{name}", f"config/tidy/{legacy}"
    assert read(backend, path) is None
    write(backend, path, {"disable_periodic_tidy": True})
    assert read(backend, path) == {"safety_buffer": default, "disable_periodic_tidy": True}
    write(backend, legacy_path, {"safety_buffer": "1h"})
    assert read(backend, path) == {"safety_buffer": 3600, "disable_periodic_tidy": True}
    assert read(backend, legacy_path) == read(backend, path)
    refused(
        InvalidRequestError,
        lambda: write(backend, path, {"safety_buffer": "soon"}),
        'Field validation failed: error converting input for field "safety_buffer": '
        'time: invalid duration "soon"',
        400,
    )
    delete(backend, legacy_path)
    assert read(backend, path) is None


def test_periodic_tidy_follows_the_tidy_config(
    backend: Any,
    clock: ManualClock,
    signer: SigningCert,
    instance: Instance,
) -> None:
    ec2_role(backend, instance)
    login(backend, signer, instance)
    clock.advance(DEFAULT_TTL + 10)
    write(backend, "config/tidy/identity-accesslist", {"safety_buffer": "5s"})
    write(backend, "config/tidy/roletag-denylist", {"disable_periodic_tidy": True})
    write(backend, "config/tidy/identity-accesslist", {"disable_periodic_tidy": True})
    assert backend.ec2_admin.tidy() == 0
    assert keys(backend, "identity-accesslist") == [instance.instance_id]
    write(backend, "config/tidy/identity-accesslist", {"disable_periodic_tidy": False})
    assert backend.ec2_admin.tidy() == 1
    assert read(backend, f"identity-accesslist/{instance.instance_id}") is None


@pytest.mark.parametrize("name", ["roletag-denylist", "roletag-blacklist"])
def test_role_tag_deny_list_endpoints(
    backend: Any, clock: ManualClock, instance: Instance, name: str
) -> None:
    tagged_role(backend, instance)
    first, second = create_tag(backend, policies="a"), create_tag(backend, max_ttl="1000h")
    assert first != second
    write(backend, f"{name}/{first}")
    # The tag may be given base64-encoded too.
    write(backend, f"{name}/{base64.b64encode(second.encode()).decode()}")
    assert sorted(keys(backend, name)) == sorted([first, second])
    now = clock.now()
    assert read(backend, f"{name}/{first}") == {
        "creation_time": rfc3339(now),
        "expiration_time": rfc3339(now + timedelta(seconds=DEFAULT_TTL)),
    }
    # The tag's longer max TTL sets its entry's expiry.
    assert read(backend, f"{name}/{second}") == {
        "creation_time": rfc3339(now),
        "expiration_time": rfc3339(now + timedelta(hours=1000)),
    }
    delete(backend, f"{name}/{second}")
    assert read(backend, f"{name}/{second}") is None
    assert keys(backend, name) == [first]
    refused(
        InternalError,
        lambda: write(backend, f"{name}/{first.replace(':p=a:', ':p=b:')}"),
        "role tag signature verification failed",
        500,
    )
    assert keys(backend, name) == [first]


def test_role_tag_deny_list_tidy(backend: Any, clock: ManualClock, instance: Instance) -> None:
    tagged_role(backend, instance)
    old, fresh = create_tag(backend), create_tag(backend)
    write(backend, f"roletag-denylist/{old}")
    clock.advance(DEFAULT_TTL + 10)
    write(backend, f"roletag-denylist/{fresh}")
    write(backend, "tidy/roletag-denylist")  # default buffer (72h): both kept
    assert sorted(keys(backend, "roletag-denylist")) == sorted([old, fresh])
    write(backend, "tidy/roletag-blacklist", {"safety_buffer": "9s"})
    assert keys(backend, "roletag-denylist") == [fresh]


def test_unsupported_operations(backend: Any) -> None:
    for request in (
        Request("read", "config/certificates"),
        Request("list", "config/certificate/test"),
        Request("update", "identity-accesslist/i-0123456789abcdef0"),
        Request("read", "tidy/identity-accesslist"),
        Request("read", "role/web/tag"),
    ):
        with pytest.raises(UnsupportedOperationError):
            backend.handle_request(request)
