"""Start moto's server on a free loopback port with signature checking on.

``INITIAL_NO_AUTH_ACTION_COUNT`` lets the first three calls through unauthenticated;
we use them to create an administrator, and sign everything after that.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import attrs
import boto3

ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
ASSUME_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


@attrs.frozen
class Keys:
    """An access key pair (and session token for temporary credentials)."""

    access_key: str
    secret_key: str
    session_token: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """A running moto server with an administrator's keys."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", MOTO_ALLOW_NONEXISTENT_REGION="1")
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        bootstrap = self._iam(Keys("AKIAIOSFODNN7EXAMPLE", "bootstrap"))
        bootstrap.create_user(UserName="moto-admin")
        key = bootstrap.create_access_key(UserName="moto-admin")["AccessKey"]
        bootstrap.put_user_policy(
            UserName="moto-admin", PolicyName="all", PolicyDocument=ADMIN_POLICY
        )
        self.admin = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        self.iam = self._iam(self.admin)
        self.sts = self.client("sts", self.admin)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")

    def client(self, service: str, keys: Keys, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            aws_session_token=keys.session_token,
        )

    def _iam(self, keys: Keys) -> Any:
        return self.client("iam", keys)

    def create_user(self, name: str, path: str = "/") -> tuple[dict[str, Any], Keys]:
        """Create an IAM user with an access key; return (User, keys)."""
        user = self.iam.create_user(UserName=name, Path=path)["User"]
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return user, Keys(key["AccessKeyId"], key["SecretAccessKey"])

    def delete_user(self, name: str) -> None:
        for key in self.iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            self.iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        self.iam.delete_user(UserName=name)

    def create_role(self, name: str, path: str = "/") -> dict[str, Any]:
        role: dict[str, Any] = self.iam.create_role(
            RoleName=name, Path=path, AssumeRolePolicyDocument=ASSUME_POLICY
        )["Role"]
        return role

    def assume_role(self, role_arn: str, session: str, keys: Keys | None = None) -> Keys:
        sts = self.client("sts", keys or self.admin)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
        return Keys(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
