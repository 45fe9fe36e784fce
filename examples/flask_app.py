"""Vault's AWS IAM login inside a Flask app, and a view only a ``deploy`` token may call.

Run the demo (no AWS needed: moto emulates STS and IAM on loopback)::

    python examples/flask_app.py

Serve it for real (``create_app()`` reads the environment)::

    AWS_IAM_ROOT_TOKEN=... AWS_IAM_STORAGE=sqlite:///aws-auth.db flask --app examples.flask_app run

Then configure ``/vault/v1/auth/aws/config/client`` and roles with the root token (as with
Vault), and clients log in at ``POST /vault/v1/auth/aws/login``.
"""

from __future__ import annotations

import os
from typing import Any

import flask

from aws_iam_backend import MemoryStorage, open_storage
from aws_iam_backend.client import build_login_payload
from aws_iam_backend.integrations.flask import AwsIamAuth, current_identity
from aws_iam_backend.server import VaultAPI


def api_from_env() -> VaultAPI:
    """A VaultAPI over ``$AWS_IAM_STORAGE`` (default ``memory://``) with the ``aws/`` mount."""
    api = VaultAPI(
        storage=open_storage(os.environ.get("AWS_IAM_STORAGE", "memory://")),
        root_token=os.environ["AWS_IAM_ROOT_TOKEN"],
    )
    api.mounts.ensure("aws/")
    return api


def create_app(api: VaultAPI | None = None) -> flask.Flask:
    """The app: Vault's API under ``/vault`` and a protected ``/deploy`` view."""
    app = flask.Flask(__name__)
    auth = AwsIamAuth(app, api=api or api_from_env(), url_prefix="/vault")

    @app.post("/deploy")
    @auth.require_token(policies=["deploy"])
    def deploy() -> dict[str, Any]:
        identity = current_identity()
        return {"deployed_by": identity.client_arn, "policies": list(identity.policies)}

    return app


def main() -> None:
    from _demo_aws import demo_aws  # the demo only: `flask`/`uvicorn` import create_app alone

    with demo_aws() as aws:  # moto on loopback; with real AWS none of this is needed
        app = create_app(VaultAPI(storage=MemoryStorage(), root_token="example-root"))
        client = app.test_client()
        admin = {"X-Vault-Token": "example-root"}

        # 1. The operator enables and configures the method through Vault's API.
        client.post("/vault/v1/sys/auth/aws", json={"type": "aws"}, headers=admin)
        client.post("/vault/v1/auth/aws/config/client", json=aws.client_config(), headers=admin)
        role = {"bound_iam_principal_arn": aws.user_arn, "token_policies": "deploy"}
        client.post("/vault/v1/auth/aws/role/ci", json=role, headers=admin)

        # 2. The workload logs in with a signed sts:GetCallerIdentity.
        payload = build_login_payload(aws.user_credentials, role="ci", region="us-east-1")
        login = client.post("/vault/v1/auth/aws/login", json=payload)
        assert login.status_code == 200, login.get_data(as_text=True)
        token = login.get_json()["auth"]["client_token"]

        # 3. ... and calls the protected view with its token.
        response = client.post("/deploy", headers={"X-Vault-Token": token})
        assert response.status_code == 200, response.get_data(as_text=True)
        print("identity:", response.get_json())
        assert client.post("/deploy").status_code == 403
        print("without a token: 403")


if __name__ == "__main__":
    main()
