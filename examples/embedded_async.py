"""Embed the AWS IAM auth backend in an asyncio service: the twin of embedded_backend.py.

``AsyncBackend`` has the same methods as ``Backend``, awaitable. Storage, the STS call and
the token store are awaited on the event loop; SQLite runs on the storage's own thread,
and the IAM lookups of ``write_role`` on a worker thread, so the loop never blocks.

This example runs without AWS: it starts moto's STS/IAM emulator on loopback, creates
an IAM user, and lets that user log in. Against real AWS, drop the moto part and the
``sts_endpoint``/``iam_endpoint`` settings.

Run: ``python examples/embedded_async.py``
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from _demo_aws import demo_aws

from aws_iam_backend import AsyncBackend, AsyncSQLiteStorage
from aws_iam_backend.client import build_login_payload
from aws_iam_backend.io.aio_transport import AsyncHttpTransport


async def main() -> None:
    with demo_aws() as aws, tempfile.TemporaryDirectory() as workdir:
        # (moto on loopback: with real AWS none of this is needed; the SQLite file lives in
        # a temporary directory, removed at the end.)
        # 1. The backend: SQLite on a thread of its own, the asyncio STS transport and the
        #    default IAM lookups. `async with` opens (and migrates) the file up front and
        #    closes the file and the connection pool at the end.
        async with (
            AsyncSQLiteStorage(Path(workdir) / "example.db") as storage,
            AsyncHttpTransport() as transport,
        ):
            backend = AsyncBackend(storage=storage, transport=transport)
            await backend.write_client_config(
                {**aws.client_config(), "iam_server_id_header_value": "my-service.example.com"}
            )
            await backend.write_role(
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
            auth = (await backend.login(payload, remote_addr="127.0.0.1")).auth or {}
            print("token policies:", auth["policies"], "ttl:", auth["lease_duration"])
            record = await backend.lookup_token(auth["client_token"])
            print("principal:", record.internal_data["client_arn"])
            await backend.renew_token(auth["client_token"])
            await backend.revoke_token(auth["client_token"])
            print("renewed and revoked")


if __name__ == "__main__":
    asyncio.run(main())
