"""End to end: real SigV4 payloads (hvac, botocore, Go-style) verified by moto's STS with
signature checking on, IAM lookups against moto's IAM, tokens in real SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend.errors import InvalidRequestError, PermissionDeniedError
from aws_iam_backend.io.storage import SQLiteStorage
from tests.support.drivers import Backend, driver  # noqa: F401
from tests.support.moto_server import Keys, MotoServer
from tests.support.payloads import botocore_payload, go_style_payload, hvac_payload

ACCOUNT = "123456789012"


@pytest.fixture
def backend(moto: MotoServer, tmp_path: Path) -> Iterator[Backend]:
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    backend = Backend(storage=storage)
    backend.write_client_config(
        {
            "access_key": moto.admin.access_key,
            "secret_key": moto.admin.secret_key,
            "sts_endpoint": moto.endpoint,
            "iam_endpoint": moto.endpoint,
        }
    )
    yield backend
    storage.close()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def new_user(moto: MotoServer, path: str = "/") -> tuple[str, str, Keys]:
    name = unique("user")
    user, keys = moto.create_user(name, path)
    return name, user["Arn"], keys


def assumed(moto: MotoServer, path: str = "/") -> tuple[str, str, Keys]:
    name = unique("app")
    role = moto.create_role(name, path)
    return name, role["Arn"], moto.assume_role(role["Arn"], "session-1")


def test_hvac_login_user_without_path(moto: MotoServer, backend: Any) -> None:
    name, arn, keys = new_user(moto)
    backend.write_role("dev", {"bound_iam_principal_arn": arn, "policies": "dev,Ops"})
    response = backend.login(hvac_payload(keys, role="dev"))
    auth: dict[str, Any] = response.auth or {}
    assert auth["policies"] == ["default", "dev", "ops"]
    assert auth["token_policies"] == ["default", "dev", "ops"]
    assert auth["metadata"]["account_id"] == ACCOUNT
    assert auth["metadata"]["auth_type"] == "iam"
    assert auth["lease_duration"] == 768 * 3600
    assert auth["renewable"] is True
    assert auth["token_type"] == "service"
    assert auth["client_token"]
    record = backend.lookup_token(auth["client_token"])
    assert record.accessor == auth["accessor"]
    assert record.display_name == f"aws-{name}"


def test_botocore_regional_login_user_with_path(moto: MotoServer, backend: Any) -> None:
    _name, arn, keys = new_user(moto, "/team/")
    assert ":user/team/" in arn
    backend.write_role("pathy", {"bound_iam_principal_arn": [arn], "token_ttl": "1h"})
    response = backend.login(botocore_payload(keys, region="eu-west-1", role="pathy"))
    assert (response.auth or {})["lease_duration"] == 3600


def test_go_style_login_with_assumed_role(moto: MotoServer, backend: Any) -> None:
    _name, role_arn, keys = assumed(moto, "/svc/")
    backend.write_role("svc", {"bound_iam_principal_arn": role_arn})
    response = backend.login(go_style_payload(keys, role="svc"))
    assert (response.auth or {})["client_token"]


def test_unbound_principal_is_refused(moto: MotoServer, backend: Any) -> None:
    _n1, bound_arn, _k1 = new_user(moto)
    _n2, other_arn, other_keys = new_user(moto)
    backend.write_role("dev", {"bound_iam_principal_arn": bound_arn})
    with pytest.raises(InvalidRequestError) as info:
        backend.login(hvac_payload(other_keys, role="dev"))
    assert info.value.message == f'IAM Principal "{other_arn}" does not belong to the role "dev"'


def test_wrong_secret_is_rejected_by_sts(moto: MotoServer, backend: Any) -> None:
    _name, arn, keys = new_user(moto)
    backend.write_role("dev", {"bound_iam_principal_arn": arn})
    forged = Keys(keys.access_key, "not-the-secret")
    with pytest.raises(InvalidRequestError) as info:
        backend.login(hvac_payload(forged, role="dev"))
    assert info.value.message.startswith(
        "error making upstream request: received error code 403 from STS: SignatureDoesNotMatch"
    )
    assert "not-the-secret" not in info.value.message


def test_deleted_and_recreated_user_is_denied(moto: MotoServer, backend: Any) -> None:
    name, arn, keys = new_user(moto)
    backend.write_role("dev", {"bound_iam_principal_arn": arn})
    backend.login(hvac_payload(keys, role="dev"))
    moto.delete_user(name)
    _user, new_keys = moto.create_user(name)
    with pytest.raises(InvalidRequestError, match="does not belong to the role"):
        backend.login(hvac_payload(new_keys, role="dev"))
    # Re-writing the role with the same ARN re-resolves the unique ID.
    backend.write_role("dev", {"bound_iam_principal_arn": arn})
    backend.login(hvac_payload(new_keys, role="dev"))


def test_wildcard_with_path(moto: MotoServer, backend: Any) -> None:
    _n, _arn, inside = assumed(moto, "/team/")
    _m, _arn2, outside = assumed(moto, "/other/")
    backend.write_role("team", {"bound_iam_principal_arn": f"arn:aws:iam::{ACCOUNT}:role/team/*"})
    assert backend.login(botocore_payload(inside, role="team")).auth
    with pytest.raises(InvalidRequestError, match="does not belong to the role"):
        backend.login(botocore_payload(outside, role="team"))


def test_role_name_defaults_to_friendly_name(moto: MotoServer, backend: Any) -> None:
    name, arn, keys = new_user(moto)
    backend.write_role(name, {"bound_iam_principal_arn": arn})
    payload = hvac_payload(keys)
    assert payload["role"] is None
    response = backend.login(payload)
    record = backend.lookup_token((response.auth or {})["client_token"])
    assert record.internal_data["role_name"] == name


def test_canonical_arn_binding_without_unique_ids(moto: MotoServer, backend: Any) -> None:
    _name, arn, keys = new_user(moto, "/deep/path/")
    canonical = arn.replace("/deep/path/", "/")
    backend.write_role(
        "canon", {"bound_iam_principal_arn": canonical, "resolve_aws_unique_ids": False}
    )
    assert backend.login(hvac_payload(keys, role="canon")).auth


def test_renew_rechecks_binding_and_revoke(moto: MotoServer, backend: Any) -> None:
    _name, arn, keys = new_user(moto)
    _other_name, other_arn, _other = new_user(moto)
    backend.write_role("dev", {"bound_iam_principal_arn": arn, "token_ttl": 600})
    token = (backend.login(hvac_payload(keys, role="dev")).auth or {})["client_token"]
    renewed = backend.renew_token(token)
    assert renewed.ttl == 600
    backend.write_role("dev", {"bound_iam_principal_arn": other_arn})
    with pytest.raises(PermissionDeniedError, match="no longer bound"):
        backend.renew_token(token)
    backend.revoke_token(token)
    with pytest.raises(PermissionDeniedError):
        backend.lookup_token(token)


def test_revoke_by_accessor(moto: MotoServer, backend: Any) -> None:
    _name, arn, keys = new_user(moto)
    backend.write_role("dev", {"bound_iam_principal_arn": arn})
    auth = backend.login(hvac_payload(keys, role="dev")).auth or {}
    backend.revoke_accessor(auth["accessor"])
    with pytest.raises(PermissionDeniedError):
        backend.lookup_token(auth["client_token"])
