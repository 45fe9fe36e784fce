"""Embed the AWS IAM auth backend in your own Python service.

This example runs without AWS: it starts moto's STS/IAM emulator on loopback, creates
an IAM user, and lets that user log in. Against real AWS, drop the moto part and the
``sts_endpoint``/``iam_endpoint`` settings.

Run: ``python examples/embedded_backend.py``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _demo_aws import demo_aws

from aws_iam_backend import Backend, SQLiteStorage
from aws_iam_backend.client import build_login_payload


def main() -> None:
    with demo_aws() as aws, tempfile.TemporaryDirectory() as workdir:
        # (moto on loopback: with real AWS none of this is needed; the SQLite file lives in
        # a temporary directory, removed at the end.)
        # 1. The backend: SQLite storage, default botocore transport and IAM lookups.
        storage = SQLiteStorage(Path(workdir) / "example.db")
        backend = Backend(storage=storage)
        backend.write_client_config(
            {**aws.client_config(), "iam_server_id_header_value": "my-service.example.com"}
        )
        backend.write_role(
            "ci",
            {
                "bound_iam_principal_arn": aws.user_arn,
                "token_policies": "deploy",
                "token_ttl": "1h",
            },
        )

        # 2. The workload signs GetCallerIdentity and sends the payload to you.
        payload = build_login_payload(
            aws.user_credentials,
            role="ci",
            server_id="my-service.example.com",
            region="us-east-1",
        )

        # 3. Your service verifies it and hands back a token.
        auth = backend.login(payload, remote_addr="127.0.0.1").auth or {}
        print("token policies:", auth["policies"], "ttl:", auth["lease_duration"])
        record = backend.lookup_token(auth["client_token"])
        print("principal:", record.internal_data["client_arn"])
        backend.renew_token(auth["client_token"])
        backend.revoke_token(auth["client_token"])
        print("renewed and revoked")
        storage.close()


if __name__ == "__main__":
    main()
