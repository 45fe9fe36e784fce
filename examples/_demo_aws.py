"""A stand-in for AWS for the examples: the package's emulator (moto on loopback, checking
signatures as STS does, quiet) with one IAM user, ``/ci/build-agent``.

Not part of the library: with real AWS, the workload's credentials come from its
environment and the server needs no ``sts_endpoint``/``iam_endpoint`` settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import attrs
from botocore.credentials import Credentials

from aws_iam_backend.demo.emulator import Emulator, Keys


@attrs.frozen
class DemoAws:
    """Where the emulator listens, its administrator, and the IAM user a workload logs in as."""

    endpoint: str
    admin: Keys
    user_arn: str
    user_credentials: Credentials

    def client_config(self) -> dict[str, str]:
        """``config/client`` pointing the server at the emulator (unset all this for AWS)."""
        return {
            "sts_endpoint": self.endpoint,
            "iam_endpoint": self.endpoint,
            "access_key": self.admin.access_key,
            "secret_key": self.admin.secret_key,
        }


@contextlib.contextmanager
def demo_aws() -> Iterator[DemoAws]:
    """Run the emulator with the IAM user ``/ci/build-agent`` for the duration."""
    with Emulator() as aws:
        user, keys = aws.create_user("build-agent", path="/ci/")
        credentials = Credentials(keys.access_key, keys.secret_key)
        yield DemoAws(aws.endpoint, aws.admin, user["Arn"], credentials)
