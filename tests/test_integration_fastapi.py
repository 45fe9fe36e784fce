"""The FastAPI/Starlette adapter: Vault's API mounted under /vault and token-protected
routes, with logins verified by moto's STS (signature checking on)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from aws_iam_backend import AsyncMemoryStorage, TokenRecord
from aws_iam_backend.integrations import TokenIdentity
from aws_iam_backend.integrations.starlette import (
    VaultHTTPException,
    require_token,
    vault_exception_handler,
    vault_router,
)
from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server.api import MAX_BODY
from tests.support.moto_server import Keys, MotoServer
from tests.support.payloads import botocore_payload, hvac_payload

ROOT = "fastapi-root-token"
LOGIN = "/vault/v1/auth/aws/login"
DENIED = {"errors": ["permission denied"]}


class ThreadRecordingAPI(AsyncVaultAPI):
    """Records the thread each token lookup runs on."""

    lookup_threads: list[int]

    async def lookup_token(
        self, token: str, *, remote_addr: str | None, forwarded_for: str | None = None
    ) -> TokenRecord:
        self.lookup_threads.append(threading.get_ident())
        return await super().lookup_token(
            token, remote_addr=remote_addr, forwarded_for=forwarded_for
        )


@attrs.frozen
class Setup:
    api: ThreadRecordingAPI
    app: FastAPI
    client: TestClient
    keys: Keys
    arn: str
    route_threads: list[int]


def make_app(api: AsyncVaultAPI, route_threads: list[int]) -> FastAPI:
    app = FastAPI(exception_handlers={VaultHTTPException: vault_exception_handler})
    app.mount("/vault", vault_router(api))

    @app.get("/deploy")
    async def deploy(
        identity: TokenIdentity = Depends(require_token(api, policies=["deploy"])),  # noqa: B008
    ) -> dict[str, Any]:
        route_threads.append(threading.get_ident())
        return attrs.asdict(identity)

    @app.get("/whoami")
    async def whoami(identity: TokenIdentity = Depends(require_token(api))) -> str:  # noqa: B008
        return identity.display_name

    return app


def root(client: TestClient, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"X-Vault-Token": ROOT}
    response: httpx.Response = client.request(
        method, f"/vault/v1/{path}", json=body, headers=headers
    )
    return response


@pytest.fixture(scope="module")
def setup(moto: MotoServer) -> Iterator[Setup]:
    api = ThreadRecordingAPI(storage=AsyncMemoryStorage(), root_token=ROOT)
    api.lookup_threads = []
    route_threads: list[int] = []
    app = make_app(api, route_threads)
    with TestClient(app) as client:
        assert root(client, "POST", "sys/auth/aws", {"type": "aws"}).status_code == 204
        config = {
            "access_key": moto.admin.access_key,
            "secret_key": moto.admin.secret_key,
            "sts_endpoint": moto.endpoint,
            "iam_endpoint": moto.endpoint,
        }
        assert root(client, "POST", "auth/aws/config/client", config).status_code in (200, 204)
        user, keys = moto.create_user(f"fastapi{uuid.uuid4().hex[:8]}")
        roles = {
            "deployer": {"token_policies": "deploy"},
            "reader": {"token_policies": "read"},
            "office": {"token_policies": "deploy", "token_bound_cidrs": "10.0.0.0/8"},
        }
        for name, fields in roles.items():
            body = {"bound_iam_principal_arn": user["Arn"], **fields}
            assert root(client, "POST", f"auth/aws/role/{name}", body).status_code in (200, 204)
        yield Setup(api, app, client, keys, user["Arn"], route_threads)


def login(client: TestClient, keys: Keys, role: str) -> dict[str, Any]:
    response = client.post(LOGIN, json=hvac_payload(keys, role=role))
    assert response.status_code == 200, response.text
    auth: dict[str, Any] = response.json()["auth"]
    return auth


def assert_denied(response: httpx.Response) -> None:
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DENIED


def test_hvac_login_then_protected_route(setup: Setup) -> None:
    auth = login(setup.client, setup.keys, "deployer")
    response = setup.client.get("/deploy", headers={"X-Vault-Token": auth["client_token"]})
    assert response.status_code == 200
    identity = response.json()
    assert identity["accessor"] == auth["accessor"]
    assert identity["policies"] == ["default", "deploy"]
    assert identity["role_name"] == "deployer"
    assert identity["client_arn"] == setup.arn
    assert identity["metadata"]["account_id"] == "123456789012"
    assert auth["client_token"] not in response.text


def test_botocore_login_then_bearer_token(setup: Setup) -> None:
    payload = botocore_payload(setup.keys, region="eu-west-1", role="deployer")
    response = setup.client.post(LOGIN, json=payload)
    assert response.status_code == 200, response.text
    token = response.json()["auth"]["client_token"]
    whoami = setup.client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert whoami.status_code == 200
    assert whoami.json().startswith("aws-fastapi")


def test_token_lookup_is_awaited_on_the_event_loop_thread(setup: Setup) -> None:
    """No thread pool: the lookup is awaited where the route runs."""
    token = login(setup.client, setup.keys, "deployer")["client_token"]
    setup.api.lookup_threads.clear()
    setup.route_threads.clear()
    assert setup.client.get("/deploy", headers={"X-Vault-Token": token}).status_code == 200
    assert len(setup.api.lookup_threads) == len(setup.route_threads) == 1
    assert setup.api.lookup_threads[0] == setup.route_threads[0]


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
def test_protected_route_refuses(setup: Setup, headers: dict[str, str]) -> None:
    assert_denied(setup.client.get("/deploy", headers=headers))


def test_protected_route_refuses_a_token_without_the_policy(setup: Setup) -> None:
    token = login(setup.client, setup.keys, "reader")["client_token"]
    assert_denied(setup.client.get("/deploy", headers={"X-Vault-Token": token}))
    assert setup.client.get("/whoami", headers={"X-Vault-Token": token}).status_code == 200


def test_bound_cidrs_are_checked_against_the_client_address(setup: Setup) -> None:
    with TestClient(setup.app, client=("10.1.2.3", 50000)) as office:
        token = login(office, setup.keys, "office")["client_token"]
        assert office.get("/deploy", headers={"X-Vault-Token": token}).status_code == 200
    assert_denied(setup.client.get("/deploy", headers={"X-Vault-Token": token}))


def test_without_the_handler_fastapi_still_answers_403_json(setup: Setup) -> None:
    app = FastAPI()

    @app.get("/deploy")
    async def deploy(identity: TokenIdentity = Depends(require_token(setup.api))) -> str:  # noqa: B008
        return identity.accessor

    response = TestClient(app).get("/deploy")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "permission denied"}


def test_login_token_is_refused_on_config_endpoints(setup: Setup) -> None:
    headers = {"X-Vault-Token": login(setup.client, setup.keys, "deployer")["client_token"]}
    client = setup.client
    assert_denied(client.get("/vault/v1/auth/aws/config/client", headers=headers))
    assert_denied(client.post("/vault/v1/auth/aws/config/client", json={}, headers=headers))
    assert_denied(client.request("LIST", "/vault/v1/auth/aws/role", headers=headers))
    assert_denied(client.post("/vault/v1/sys/auth/x", json={"type": "aws"}, headers=headers))


def test_list_method_and_list_query(setup: Setup) -> None:
    headers = {"X-Vault-Token": ROOT}
    by_method = setup.client.request("LIST", "/vault/v1/auth/aws/role", headers=headers)
    by_query = setup.client.get("/vault/v1/auth/aws/role/?list=true", headers=headers)
    for response in (by_method, by_query):
        assert response.status_code == 200
        assert {"deployer", "reader"} <= set(response.json()["data"]["keys"])


def test_errors_are_vault_json(setup: Setup) -> None:
    missing = setup.client.get("/vault/v1/auth/aws/role/nobody", headers={"X-Vault-Token": ROOT})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json() == {"errors": []}
    bad = setup.client.post(LOGIN, content=b"{not json")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/json"


def test_oversized_bodies_get_413(setup: Setup) -> None:
    big = b"x" * (MAX_BODY + 1)
    declared = setup.client.post(LOGIN, content=big)
    chunked = setup.client.post(LOGIN, content=iter([big[:MAX_BODY], big[MAX_BODY:]]))
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"errors": ["request body too large"]}


def test_policies_must_not_be_a_bare_string(setup: Setup) -> None:
    with pytest.raises(TypeError, match="not a string"):
        require_token(setup.api, policies="deploy")
