"""The Flask extension: Vault's API mounted under /vault and token-protected views, with
logins verified by moto's STS (signature checking on)."""

from __future__ import annotations

import io
import uuid
from typing import Any

import attrs
import flask
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from aws_iam_backend import MemoryStorage
from aws_iam_backend.integrations import TokenIdentity
from aws_iam_backend.integrations.flask import AwsIamAuth, current_identity
from aws_iam_backend.server._sync.api import VaultAPI
from aws_iam_backend.server.api import MAX_BODY
from tests.support.moto_server import Keys, MotoServer
from tests.support.payloads import botocore_payload, hvac_payload

ROOT = "flask-root-token"
LOGIN = "/vault/v1/auth/aws/login"
DENIED = {"errors": ["permission denied"]}


@attrs.frozen
class Setup:
    client: FlaskClient
    keys: Keys
    arn: str


def make_app(api: VaultAPI) -> flask.Flask:
    app = flask.Flask(__name__)
    auth = AwsIamAuth(app, api=api)

    @app.get("/deploy")
    @auth.require_token(policies=["deploy"])
    def deploy() -> dict[str, Any]:
        return attrs.asdict(current_identity())

    @app.get("/whoami")
    @auth.require_token()
    def whoami() -> dict[str, Any]:
        identity: TokenIdentity = flask.g.aws_iam_identity
        return {"display_name": identity.display_name}

    return app


def root(client: FlaskClient, method: str, path: str, body: Any = None) -> TestResponse:
    return client.open(
        f"/vault/v1/{path}", method=method, json=body, headers={"X-Vault-Token": ROOT}
    )


@pytest.fixture(scope="module")
def setup(moto: MotoServer) -> Setup:
    client = make_app(VaultAPI(storage=MemoryStorage(), root_token=ROOT)).test_client()
    assert root(client, "POST", "sys/auth/aws", {"type": "aws"}).status_code == 204
    config = {
        "access_key": moto.admin.access_key,
        "secret_key": moto.admin.secret_key,
        "sts_endpoint": moto.endpoint,
        "iam_endpoint": moto.endpoint,
    }
    assert root(client, "POST", "auth/aws/config/client", config).status_code in (200, 204)
    user, keys = moto.create_user(f"flask{uuid.uuid4().hex[:8]}")
    roles: dict[str, dict[str, Any]] = {
        "deployer": {"token_policies": "deploy"},
        "reader": {"token_policies": "read"},
        "once": {"token_policies": "deploy", "token_num_uses": 1},
        "office": {"token_policies": "deploy", "token_bound_cidrs": "10.0.0.0/8"},
    }
    for name, fields in roles.items():
        body = {"bound_iam_principal_arn": user["Arn"], **fields}
        assert root(client, "POST", f"auth/aws/role/{name}", body).status_code in (200, 204)
    return Setup(client, keys, user["Arn"])


def login(setup: Setup, role: str, **environ: str) -> dict[str, Any]:
    response = setup.client.post(
        LOGIN, json=hvac_payload(setup.keys, role=role), environ_base=environ
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    auth: dict[str, Any] = response.get_json()["auth"]
    return auth


def assert_denied(response: TestResponse) -> None:
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == DENIED


def test_hvac_login_then_protected_view(setup: Setup) -> None:
    auth = login(setup, "deployer")
    response = setup.client.get("/deploy", headers={"X-Vault-Token": auth["client_token"]})
    assert response.status_code == 200
    identity = response.get_json()
    assert identity["accessor"] == auth["accessor"]
    assert identity["policies"] == ["default", "deploy"]
    assert identity["role_name"] == "deployer"
    assert identity["client_arn"] == setup.arn
    assert identity["metadata"]["account_id"] == "123456789012"
    assert auth["client_token"] not in response.get_data(as_text=True)


def test_botocore_login_then_bearer_token(setup: Setup) -> None:
    payload = botocore_payload(setup.keys, region="eu-west-1", role="deployer")
    response = setup.client.post(LOGIN, json=payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    token = response.get_json()["auth"]["client_token"]
    whoami = setup.client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert whoami.status_code == 200
    assert whoami.get_json()["display_name"].startswith("aws-flask")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Vault-Token": "hvs.not-a-token"},
        {"Authorization": "Basic eDp5"},
        {"X-Vault-Token": ROOT},
    ],
    ids=["none", "unknown", "not-bearer", "root"],
)
def test_protected_view_refuses(setup: Setup, headers: dict[str, str]) -> None:
    assert_denied(setup.client.get("/deploy", headers=headers))


def test_protected_view_refuses_a_token_without_the_policy(setup: Setup) -> None:
    token = login(setup, "reader")["client_token"]
    assert_denied(setup.client.get("/deploy", headers={"X-Vault-Token": token}))
    assert setup.client.get("/whoami", headers={"X-Vault-Token": token}).status_code == 200


def test_limited_use_token_is_spent_by_protected_views(setup: Setup) -> None:
    token = login(setup, "once")["client_token"]
    assert setup.client.get("/deploy", headers={"X-Vault-Token": token}).status_code == 200
    assert_denied(setup.client.get("/deploy", headers={"X-Vault-Token": token}))


def test_bound_cidrs_are_checked_against_the_client_address(setup: Setup) -> None:
    token = login(setup, "office", REMOTE_ADDR="10.1.2.3")["client_token"]
    headers = {"X-Vault-Token": token}
    inside = setup.client.get("/deploy", headers=headers, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert inside.status_code == 200
    assert_denied(setup.client.get("/deploy", headers=headers))  # from 127.0.0.1


def test_login_token_is_refused_on_config_endpoints(setup: Setup) -> None:
    headers = {"X-Vault-Token": login(setup, "deployer")["client_token"]}
    assert_denied(setup.client.get("/vault/v1/auth/aws/config/client", headers=headers))
    assert_denied(setup.client.post("/vault/v1/auth/aws/config/client", json={}, headers=headers))
    assert_denied(setup.client.open("/vault/v1/auth/aws/role", method="LIST", headers=headers))
    assert_denied(setup.client.post("/vault/v1/sys/auth/x", json={"type": "aws"}, headers=headers))


def test_list_method_and_list_query(setup: Setup) -> None:
    headers = {"X-Vault-Token": ROOT}
    by_method = setup.client.open("/vault/v1/auth/aws/role", method="LIST", headers=headers)
    by_query = setup.client.get("/vault/v1/auth/aws/role/?list=true", headers=headers)
    for response in (by_method, by_query):
        assert response.status_code == 200
        assert {"deployer", "reader"} <= set(response.get_json()["data"]["keys"])


def test_errors_are_vault_json_and_204_has_no_content_type(setup: Setup) -> None:
    missing = setup.client.get("/vault/v1/auth/aws/role/nobody", headers={"X-Vault-Token": ROOT})
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"
    assert missing.get_json() == {"errors": []}
    bad = setup.client.post(LOGIN, data=b"{not json", content_type="application/json")
    assert bad.status_code == 400
    assert bad.headers["Content-Type"] == "application/json"
    assert root(setup.client, "POST", "auth/aws/role/gone", {"bound_iam_principal_arn": setup.arn})
    deleted = root(setup.client, "DELETE", "auth/aws/role/gone")
    assert deleted.status_code == 204
    assert "Content-Type" not in deleted.headers


def test_oversized_bodies_get_413(setup: Setup) -> None:
    declared = setup.client.post(LOGIN, data=b"x" * (MAX_BODY + 1), content_type="application/json")
    stream = io.BytesIO(b"x" * (16 * MAX_BODY))
    chunked = setup.client.post(
        LOGIN,
        input_stream=stream,
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.headers["Content-Type"] == "application/json"
        assert response.get_json() == {"errors": ["request body too large"]}
    assert stream.tell() == MAX_BODY + 1  # the chunked body was not read to its end


def test_policies_must_not_be_a_bare_string() -> None:
    auth = AwsIamAuth(api=VaultAPI(storage=MemoryStorage(), root_token=ROOT))
    with pytest.raises(TypeError, match="not a string"):
        auth.require_token(policies="deploy")


def test_current_identity_outside_a_protected_view() -> None:
    with flask.Flask(__name__).test_request_context(), pytest.raises(RuntimeError):
        current_identity()
