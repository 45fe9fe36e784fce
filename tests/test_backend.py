"""Backend routing, role/config round trips, renewal re-checks and token lifecycle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from aws_iam_backend import Request
from aws_iam_backend.errors import (
    BackendError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedOperationError,
    UpstreamError,
)
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.vault.roles import Role, role_to_storage
from tests.support.drivers import Backend, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response, token_spec
from tests.test_backend_attacks import (
    ACCOUNT,
    NOW,
    USER_ARN,
    USER_ID,
    FixedClock,
    make_backend,
    valid,
)

OTHER_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob"


def backend_with(responder_arn: str = USER_ARN, user_id: str = USER_ID) -> Any:
    transport = RecordingTransport(lambda _r: ok_response(responder_arn, user_id))
    return make_backend(transport)


def req(operation: str, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Request:
    return Request(operation=operation, path=path, data=data or {}, **kw)


def test_routes_and_operations() -> None:
    backend = backend_with()
    assert backend.handle_request(req("list", "roles")).data == {"keys": ["dev"]}
    assert backend.handle_request(req("list", "role")).data == {"keys": ["dev"]}
    assert backend.handle_request(req("read", "role/DEV")).data
    with pytest.raises(NotFoundError):
        backend.handle_request(req("read", "nowhere"))
    with pytest.raises(UnsupportedOperationError):
        backend.handle_request(req("delete", "login"))
    with pytest.raises(UnsupportedOperationError):
        backend.handle_request(req("patch", "login"))
    with pytest.raises(NotFoundError) as missing:
        backend.handle_request(req("read", "role/ghost"))
    assert missing.value.errors == []
    with pytest.raises(NotFoundError):
        backend.handle_request(req("read", "config/client"))


def test_login_through_handle_request_with_warning() -> None:
    backend = backend_with()
    response = backend.handle_request(req("update", "login", valid(extra="x")))
    assert response.auth
    assert response.auth["client_token"]
    assert response.warnings == ("Endpoint ignored these unrecognized parameters: [extra]",)


def test_malformed_ec2_login_is_refused_before_any_lookup() -> None:
    backend = backend_with()
    with pytest.raises(
        InvalidRequestError,
        match=r"^failed to parse the BER encoded PKCS#7 signature: truncated$",
    ):
        backend.login({"pkcs7": "MIAGCSqGSIb3DQEHAqCAMIACAQEx"})
    assert backend.storage.list("whitelist/identity/") == []


def test_config_round_trips_and_secret_never_read() -> None:
    backend = backend_with()
    backend.write_client_config({"access_key": "AKIAEXAMPLE", "secret_key": "s3cr3t"})
    data = backend.handle_request(req("read", "config/client")).data or {}
    assert data["access_key"] == "AKIAEXAMPLE"
    assert "secret_key" not in data
    assert "s3cr3t" not in repr(data)
    backend.handle_request(req("delete", "config/client"))
    with pytest.raises(NotFoundError):
        backend.read_client_config()
    backend.write_identity_config({"iam_alias": "unique_id", "iam_metadata": "client_arn"})
    assert backend.read_identity_config()["iam_alias"] == "unique_id"


def test_sts_config_update_keeps_other_fields() -> None:
    backend = backend_with()
    role = "arn:aws:iam::222222222222:role/reader"
    backend.write_sts_config("222222222222", {"sts_role": role, "external_id": "ext-1"})
    backend.write_sts_config("222222222222", {"external_id": "ext-2"})
    data = backend.read_sts_config("222222222222")
    assert (data["sts_role"], data["external_id"]) == (role, "ext-2")
    assert backend.list_sts_configs().data == {"keys": ["222222222222"]}
    backend.delete_sts_config("222222222222")
    with pytest.raises(NotFoundError):
        backend.read_sts_config("222222222222")


def test_identity_config_selects_alias_and_metadata() -> None:
    backend = backend_with()
    backend.write_identity_config(
        {"iam_alias": "full_arn", "iam_metadata": "canonical_arn,client_user_id"}
    )
    auth = backend.login(valid()).auth or {}
    assert set(auth["metadata"]) == {"role_id", "canonical_arn", "client_user_id"}
    record = backend.lookup_token(auth["client_token"])
    assert record.metadata["client_user_id"] == USER_ID


def test_no_default_policy_and_num_uses() -> None:
    backend = backend_with()
    backend.write_role(
        "dev",
        {
            "bound_iam_principal_arn": USER_ARN,
            "token_no_default_policy": True,
            "token_policies": "a",
            "token_num_uses": 2,
        },
    )
    auth = backend.login(valid()).auth or {}
    assert auth["policies"] == ["a"]
    assert auth["num_uses"] == 2


def test_attack_70_renewal_denied_after_role_deleted() -> None:
    backend = backend_with()
    token = (backend.login(valid()).auth or {})["client_token"]
    backend.delete_role("dev")
    with pytest.raises(PermissionDeniedError, match="role entry not found"):
        backend.renew_token(token)


def test_renew_through_handle_request_checks_bound_cidrs() -> None:
    backend = backend_with()
    backend.write_role(
        "dev", {"bound_iam_principal_arn": USER_ARN, "token_bound_cidrs": "10.0.0.0/8"}
    )
    token = (backend.login(valid(), remote_addr="10.0.0.1").auth or {})["client_token"]
    renewed = backend.handle_request(
        req("renew", "login", client_token=token, remote_addr="10.0.0.1")
    )
    assert renewed.auth
    assert renewed.auth["renewable"]
    with pytest.raises(PermissionDeniedError):
        backend.handle_request(req("renew", "login", client_token=token, remote_addr="192.0.2.1"))


class UnreachableIam(FakeIam):
    """IAM that cannot be reached: every lookup is an upstream error."""

    def unique_id(self, entity: Any, access: Any) -> str:
        raise UpstreamError("connection refused")


def test_a_failed_unique_id_lookup_at_role_write_is_named_and_writes_nothing() -> None:
    storage = MemoryStorage()
    backend = Backend(storage=storage, iam=UnreachableIam())
    with pytest.raises(UpstreamError) as info:
        backend.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    assert info.value.message == (
        f'unable to resolve ARN "{USER_ARN}" to internal ID: connection refused'
    )
    assert storage.list("role/") == []


def test_renewal_uses_current_role_ttl() -> None:
    clock = FixedClock()
    storage = MemoryStorage()
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    backend = Backend(
        storage=storage, transport=transport, iam=FakeIam({USER_ARN: USER_ID}), clock=clock
    )
    backend.write_role("dev", {"bound_iam_principal_arn": USER_ARN, "token_ttl": 60})
    token = (backend.login(valid()).auth or {})["client_token"]
    backend.write_role("dev", {"token_ttl": 300})
    clock.current = NOW + timedelta(seconds=30)
    assert backend.renew_token(token).ttl == 300
    clock.current = NOW + timedelta(days=40)
    with pytest.raises(PermissionDeniedError):
        backend.lookup_token(token)


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:sts::{ACCOUNT}:federated-user/bob",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/app",
        f"arn:aws:iam::{ACCOUNT}:user:a",
    ],
)
def test_attack_59_unusable_arns_are_refused(arn: str) -> None:
    backend = backend_with(arn, USER_ID)
    with pytest.raises(InvalidRequestError, match="error parsing arn"):
        backend.login(valid())


def test_imported_role_without_binding_admits_nobody() -> None:
    backend = backend_with()
    ops.put(backend.storage, "role/open", role_to_storage(Role(name="open", role_id="r-1")))
    with pytest.raises(InvalidRequestError, match="does not belong"):
        backend.login(valid(role="open"))


def test_role_name_is_case_insensitive_at_login() -> None:
    backend = backend_with()
    assert backend.login(valid(role="DEV")).auth


def test_unknown_role_at_login() -> None:
    backend = backend_with()
    with pytest.raises(InvalidRequestError, match="entry for role ghost not found"):
        backend.login(valid(role="ghost"))


def test_auth_type_ec2_role_refuses_iam_login() -> None:
    backend = backend_with()
    backend.write_role("ec2role", {"auth_type": "ec2", "bound_ami_id": "ami-1"})
    with pytest.raises(InvalidRequestError, match="auth method iam not allowed for role ec2role"):
        backend.login(valid(role="ec2role"))


def test_other_principal_denied_then_allowed_after_rebind() -> None:
    backend = backend_with(OTHER_ARN, "AIDAOTHERUSER0000001")
    with pytest.raises(InvalidRequestError, match="does not belong"):
        backend.login(valid())
    backend.iam = FakeIam({OTHER_ARN: "AIDAOTHERUSER0000001"})
    backend.write_role("dev", {"bound_iam_principal_arn": OTHER_ARN})
    assert backend.login(valid()).auth


def test_writes_warn_about_unrecognized_parameters_like_vault() -> None:
    backend = backend_with()
    warning = "Endpoint ignored these unrecognized parameters: [colour shade]"
    role = {"bound_iam_principal_arn": USER_ARN, "colour": "red", "shade": 1}
    assert backend.write_role("dev", role) == [warning]
    assert backend.write_client_config({"max_retries": 1, "colour": "x", "shade": 2}) == [warning]
    assert backend.write_identity_config({"iam_alias": "role_id", "colour": 1, "shade": 1}) == [
        warning
    ]
    sts = {"sts_role": "arn:aws:iam::222222222222:role/r", "colour": 1, "shade": 1}
    assert backend.write_sts_config("222222222222", sts) == [warning]
    # the fields hvac sends are all known: no warning
    assert backend.write_role("dev", {"role": "dev", "auth_type": "iam", "policies": "a"}) == []
    response = backend.handle_request(req("update", "config/identity", {"iam_alias": "role_id"}))
    assert response.warnings == ()


def test_renew_increment_must_not_be_negative() -> None:
    backend = backend_with()
    token = (backend.login(valid()).auth or {})["client_token"]
    with pytest.raises(InvalidRequestError, match="increment must not be negative"):
        backend.renew_token(token, increment=-1)
    assert backend.renew_token(token, increment=120).ttl == 120


def test_login_reads_each_config_once() -> None:
    """A login whose role needs IAM's full ARN (a wildcard binding) reads ``config/client``
    and ``config/identity`` once each: the ARN lookup reuses the login's client config."""

    class Counting(MemoryStorage):
        def __init__(self) -> None:
            super().__init__()
            self.reads: list[str] = []

        def read(self, key: str) -> Any:
            self.reads.append(key)
            return super().read(key)

    iam = FakeIam(full_arns={USER_ARN: f"arn:aws:iam::{ACCOUNT}:user/team/alice"})
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    storage = Counting()
    backend = Backend(storage=storage, transport=transport, iam=iam, clock=FixedClock())
    backend.write_client_config({"max_retries": 1})
    backend.write_role("dev", {"bound_iam_principal_arn": f"arn:aws:iam::{ACCOUNT}:user/team/*"})
    storage.reads.clear()
    assert backend.login(valid()).auth
    assert iam.calls == [("full_arn", USER_ARN)]
    assert storage.reads.count("config/client") == 1
    assert storage.reads.count("config/identity") == 1


@pytest.mark.parametrize(
    ("internal", "message"),
    [
        (
            {"role_name": "dev"},
            'failed to renew entry: "canonical_arn" not found in auth metadata',
        ),
        (
            {"canonical_arn": USER_ARN},
            "failed to renew entry: error retrieving role_name during renewal",
        ),
        (
            {"canonical_arn": OTHER_ARN, "role_name": "dev", "client_user_id": "AIDAOTHER"},
            f'failed to renew entry: role "dev" no longer bound to ARN "{OTHER_ARN}"',
        ),
    ],
)
def test_renewal_refuses_a_token_it_cannot_recheck(internal: dict[str, str], message: str) -> None:
    backend = backend_with()
    record = backend.issuer.issue(
        token_spec(internal_data={"auth_type": "iam", **internal}, issued_at=NOW)
    )
    with pytest.raises(PermissionDeniedError) as info:
        backend.renew_token(record.client_token)
    assert info.value.message == message


class BrokenFullArnIam(FakeIam):
    """IAM whose full-ARN lookup fails (``error``) or answers nothing."""

    def __init__(self, error: Exception | None) -> None:
        super().__init__()
        self.error = error

    def full_arn(self, entity: Any, access: Any) -> str:
        if self.error is not None:
            raise self.error
        return ""


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            UpstreamError("connection refused"),
            f"error looking up full ARN of entity &{{aws {ACCOUNT} user  alice }} when "
            'attempting login for role "dev": connection refused',
        ),
        (
            None,
            "got empty string back when looking up full ARN of entity "
            f'&{{aws {ACCOUNT} user  alice }} when attempting login for role "dev"',
        ),
    ],
)
def test_a_failed_full_arn_lookup_refuses_the_login(error: Exception | None, message: str) -> None:
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    iam = BrokenFullArnIam(error)
    backend = Backend(storage=MemoryStorage(), transport=transport, iam=iam, clock=FixedClock())
    backend.write_role("dev", {"bound_iam_principal_arn": f"arn:aws:iam::{ACCOUNT}:user/*"})
    with pytest.raises(BackendError) as info:
        backend.login(valid())
    assert info.value.message == message
