"""A stand-in for AWS for the examples: moto's STS and IAM on loopback, with one IAM user.

Not part of the library: with real AWS, the workload's credentials come from its
environment and the server needs no ``sts_endpoint``/``iam_endpoint`` settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import attrs
import boto3
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer

ADMIN_KEY = "AKIAEXAMPLE0000000000"
ADMIN_SECRET = "example"


@attrs.frozen
class DemoAws:
    """Where the emulator listens, and the IAM user a workload logs in as."""

    endpoint: str
    user_arn: str
    user_credentials: Credentials

    def client_config(self) -> dict[str, str]:
        """``config/client`` pointing the server at the emulator (unset all this for AWS)."""
        return {
            "sts_endpoint": self.endpoint,
            "iam_endpoint": self.endpoint,
            "access_key": ADMIN_KEY,
            "secret_key": ADMIN_SECRET,
        }


@contextlib.contextmanager
def demo_aws() -> Iterator[DemoAws]:
    """Run the emulator with the IAM user ``/ci/build-agent`` for the duration."""
    emulator = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    emulator.start()
    host, port = emulator.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=ADMIN_KEY,
            aws_secret_access_key=ADMIN_SECRET,
        )
        user = iam.create_user(UserName="build-agent", Path="/ci/")["User"]
        key = iam.create_access_key(UserName="build-agent")["AccessKey"]
        yield DemoAws(
            endpoint, user["Arn"], Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        )
    finally:
        emulator.stop()
