"""The aiohttp adapter: Vault's API as a sub-application and token-protected handlers,
over a real aiohttp server on loopback (STS answered by a fake)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from aws_iam_backend import AsyncBackend, AsyncMemoryStorage
from aws_iam_backend.integrations import TokenIdentity
from aws_iam_backend.integrations.aiohttp import require_token, vault_app
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from aws_iam_backend.server import AsyncVaultAPI
from aws_iam_backend.server.api import MAX_BODY
from tests.support.fakes import FakeIam, ok_response
from tests.support.moto_server import Keys
from tests.support.payloads import botocore_payload

ROOT = "aiohttp-root-token"
ARN = "arn:aws:iam::123456789012:user/alice"
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "secret")
DENIED = {"errors": ["permission denied"]}


class FakeSTS:
    async def send(
        self, request: OutboundRequest, *, timeout: float, max_retries: int
    ) -> STSResponse:
        return ok_response(ARN, "AIDAALICE")


def make_app() -> web.Application:
    api = AsyncVaultAPI(
        storage=AsyncMemoryStorage(),
        root_token=ROOT,
        backend_factory=lambda **kw: AsyncBackend(transport=FakeSTS(), iam=FakeIam(), **kw),
    )
    app = web.Application()
    app.add_subapp("/vault", vault_app(api))

    @require_token(api, policies=["deploy"])
    async def deploy(_request: web.Request, identity: TokenIdentity) -> web.Response:
        return web.json_response({"role": identity.role_name, "arn": identity.client_arn})

    app.router.add_post("/deploy", deploy)
    return app


def run(scenario: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(make_app())) as client:
            await scenario(client)

    asyncio.run(main())


async def setup_role(client: TestClient[Any, Any], policies: str) -> None:
    admin = {"X-Vault-Token": ROOT}
    assert (
        await client.post("/vault/v1/sys/auth/aws", json={"type": "aws"}, headers=admin)
    ).status == 204
    role = {
        "bound_iam_principal_arn": ARN,
        "resolve_aws_unique_ids": False,
        "token_policies": policies,
    }
    response = await client.post("/vault/v1/auth/aws/role/alice", json=role, headers=admin)
    assert response.status == 204


async def login(client: TestClient[Any, Any]) -> str:
    response = await client.post(
        "/vault/v1/auth/aws/login", json=botocore_payload(KEYS, role="alice")
    )
    assert response.status == 200, await response.text()
    token: str = (await response.json())["auth"]["client_token"]
    return token


def test_login_then_protected_handler() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        await setup_role(client, "deploy")
        token = await login(client)
        response = await client.post("/deploy", headers={"X-Vault-Token": token})
        assert response.status == 200
        assert await response.json() == {"role": "alice", "arn": ARN}
        # aiohttp's HTTP parser refuses the LIST method: list with ?list=true.
        listed = await client.get(
            "/vault/v1/auth/aws/role?list=true", headers={"X-Vault-Token": ROOT}
        )
        assert (await listed.json())["data"]["keys"] == ["alice"]

    run(scenario)


def test_protected_handler_refuses_missing_unknown_and_underprivileged_tokens() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        await setup_role(client, "read")
        token = await login(client)
        for headers in ({}, {"X-Vault-Token": "hvs.unknown"}, {"X-Vault-Token": token}):
            response = await client.post("/deploy", headers=headers)
            assert response.status == 403
            assert await response.json() == DENIED

    run(scenario)


def test_vault_errors_are_json_and_large_bodies_are_refused() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        bad = await client.post("/vault/v1/auth/aws/login", data=b"{not json")
        assert bad.status == 400
        assert bad.headers["content-type"] == "application/json"
        big = await client.post("/vault/v1/auth/aws/login", data=b"x" * (MAX_BODY + 1))
        assert big.status == 413
        assert json.loads(await big.read()) == {"errors": ["request body too large"]}

    run(scenario)
