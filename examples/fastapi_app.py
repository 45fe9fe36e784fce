"""Vault's AWS IAM login inside a FastAPI app, and a route only a ``deploy`` token may call.

Run the demo (no AWS needed: moto emulates STS and IAM on loopback)::

    python examples/fastapi_app.py

Serve it for real (``create_app()`` reads the environment)::

    AWS_IAM_ROOT_TOKEN=... AWS_IAM_STORAGE=sqlite:///aws-auth.db \\
        uvicorn --factory examples.fastapi_app:create_app

Then configure ``/vault/v1/auth/aws/config/client`` and roles with the root token (as with
Vault), and clients log in at ``POST /vault/v1/auth/aws/login``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from aws_iam_backend import AsyncMemoryStorage, open_async_storage
from aws_iam_backend.client import build_login_payload
from aws_iam_backend.integrations import TokenIdentity
from aws_iam_backend.integrations.starlette import (
    VaultHTTPException,
    require_token,
    vault_exception_handler,
    vault_router,
)
from aws_iam_backend.server import AsyncVaultAPI


def api_from_env() -> AsyncVaultAPI:
    """An AsyncVaultAPI over ``$AWS_IAM_STORAGE`` (default ``memory://``)."""
    return AsyncVaultAPI(
        storage=open_async_storage(os.environ.get("AWS_IAM_STORAGE", "memory://")),
        root_token=os.environ["AWS_IAM_ROOT_TOKEN"],
    )


def create_app(api: AsyncVaultAPI | None = None) -> FastAPI:
    """The app: Vault's API under ``/vault`` and a protected ``/deploy`` route. Every
    request is awaited on the event loop (no thread pool)."""
    api = api or api_from_env()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await api.start()  # a storage problem stops the startup here
        yield

    app = FastAPI(
        exception_handlers={VaultHTTPException: vault_exception_handler}, lifespan=lifespan
    )
    app.mount("/vault", vault_router(api))
    deployer = Depends(require_token(api, policies=["deploy"]))

    @app.post("/deploy")
    async def deploy(identity: TokenIdentity = deployer) -> dict[str, Any]:
        return {"deployed_by": identity.client_arn, "policies": list(identity.policies)}

    return app


def main() -> None:
    from _demo_aws import demo_aws  # the demo only: `flask`/`uvicorn` import create_app alone

    with demo_aws() as aws:  # moto on loopback; with real AWS none of this is needed
        app = create_app(AsyncVaultAPI(storage=AsyncMemoryStorage(), root_token="example-root"))
        with TestClient(app) as client:
            admin = {"X-Vault-Token": "example-root"}

            # 1. The operator enables and configures the method through Vault's API.
            client.post("/vault/v1/sys/auth/aws", json={"type": "aws"}, headers=admin)
            config = aws.client_config()
            client.post("/vault/v1/auth/aws/config/client", json=config, headers=admin)
            role = {"bound_iam_principal_arn": aws.user_arn, "token_policies": "deploy"}
            client.post("/vault/v1/auth/aws/role/ci", json=role, headers=admin)

            # 2. The workload logs in with a signed sts:GetCallerIdentity.
            payload = build_login_payload(aws.user_credentials, role="ci", region="us-east-1")
            login = client.post("/vault/v1/auth/aws/login", json=payload)
            assert login.status_code == 200, login.text
            token = login.json()["auth"]["client_token"]

            # 3. ... and calls the protected route with its token.
            response = client.post("/deploy", headers={"X-Vault-Token": token})
            assert response.status_code == 200, response.text
            print("identity:", response.json())
            assert client.post("/deploy").status_code == 403
            print("without a token: 403")


if __name__ == "__main__":
    main()
