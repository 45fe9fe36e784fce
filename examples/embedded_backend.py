"""Embed the AWS IAM auth backend in your own Python service.

This example runs without AWS: it starts moto's STS/IAM emulator on loopback, creates
an IAM user, and lets that user log in. Against real AWS, drop the moto part and the
``sts_endpoint``/``iam_endpoint`` settings.

Run: ``python examples/embedded_backend.py``
"""

from __future__ import annotations

import boto3
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer

from aws_iam_backend import Backend, SQLiteStorage
from aws_iam_backend.client import build_login_payload


def main() -> None:
    emulator = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    emulator.start()
    host, port = emulator.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="AKIAEXAMPLE0000000000",
            aws_secret_access_key="example",
        )
        user = iam.create_user(UserName="build-agent", Path="/ci/")["User"]
        key = iam.create_access_key(UserName="build-agent")["AccessKey"]

        # 1. The backend: SQLite storage, default botocore transport and IAM lookups.
        backend = Backend(storage=SQLiteStorage("example.db"))
        backend.write_client_config(
            {
                "sts_endpoint": endpoint,  # real AWS: leave unset
                "iam_endpoint": endpoint,  # real AWS: leave unset
                "access_key": "AKIAEXAMPLE0000000000",
                "secret_key": "example",
                "iam_server_id_header_value": "my-service.example.com",
            }
        )
        backend.write_role(
            "ci",
            {
                "bound_iam_principal_arn": user["Arn"],
                "token_policies": "deploy",
                "token_ttl": "1h",
            },
        )

        # 2. The workload signs GetCallerIdentity and sends the payload to you.
        credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        payload = build_login_payload(
            credentials, role="ci", server_id="my-service.example.com", region="us-east-1"
        )

        # 3. Your service verifies it and hands back a token.
        auth = backend.login(payload, remote_addr="127.0.0.1").auth or {}
        print("token policies:", auth["policies"], "ttl:", auth["lease_duration"])
        record = backend.lookup_token(auth["client_token"])
        print("principal:", record.internal_data["client_arn"])
        backend.renew_token(auth["client_token"])
        backend.revoke_token(auth["client_token"])
        print("renewed and revoked")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
