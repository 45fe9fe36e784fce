"""A local stand-in for AWS: moto's server on a free loopback port, signature checking on.

``INITIAL_NO_AUTH_ACTION_COUNT`` lets the first three calls through unauthenticated; they
create an administrator, and every call after that must be signed with a key moto issued
(so a wrong secret is refused, as by AWS). moto answers as account ``123456789012``.

Used by ``aws-iam-backend demo``, the examples and the test suite; needs ``moto[server]``
(the ``demo`` extra). Not part of the library: with AWS, none of this is needed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

import attrs
import botocore.session

ACCOUNT_ID = "123456789012"
ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
ASSUME_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)
_BOOTSTRAP = ("AKIAIOSFODNN7EXAMPLE", "bootstrap")  # the unauthenticated calls ignore it
_START_TIMEOUT = 30.0


def wait_for_http(url: str, process: subprocess.Popen[Any], timeout: float) -> bool:
    """Poll ``url`` until it answers (True), ``process`` exits or ``timeout`` seconds pass
    (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 (loopback URL)
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


def stop_process(process: subprocess.Popen[Any]) -> None:
    """End a child process (SIGTERM, then SIGKILL after 10 seconds) and reap it."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmulatorError(Exception):
    """The emulator cannot start (moto missing, or it exited or never answered)."""


@attrs.frozen
class Keys:
    """An access key pair (and session token for temporary credentials)."""

    access_key: str
    secret_key: str
    session_token: str | None = None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def moto_available() -> bool:
    """Whether ``moto[server]`` is installed (the ``demo`` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("moto", "flask"))


class Emulator:
    """moto's server in a child process, with an administrator's keys in :attr:`admin`.

    A context manager; :meth:`stop` ends the process. With ``detached`` the process runs in
    a session of its own and outlives this one (stop it with its :attr:`pid`).
    Nothing moto prints reaches the terminal.
    """

    def __init__(self, *, detached: bool = False) -> None:
        if not moto_available():
            raise EmulatorError("the AWS emulator needs moto: pip install 'aws_iam_backend[demo]'")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(INITIAL_NO_AUTH_ACTION_COUNT="3", MOTO_ALLOW_NONEXISTENT_REGION="1")
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=detached,
        )
        self.pid = self.process.pid
        # The user's AWS profile, files and variables play no part here.
        self._session = botocore.session.Session(
            session_vars={
                "profile": (None, None, None, None),
                "config_file": (None, None, os.devnull, None),
                "credentials_file": (None, None, os.devnull, None),
            }
        )
        self._lock = threading.Lock()
        try:
            self._wait_ready()
            bootstrap = self.client("iam", Keys(*_BOOTSTRAP))
            bootstrap.create_user(UserName="moto-admin")
            key = bootstrap.create_access_key(UserName="moto-admin")["AccessKey"]
            bootstrap.put_user_policy(
                UserName="moto-admin", PolicyName="all", PolicyDocument=ADMIN_POLICY
            )
        except BaseException:
            self.stop()
            raise
        self.admin = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        self.iam: Any = self.client("iam", self.admin)
        self.sts: Any = self.client("sts", self.admin)

    def _wait_ready(self) -> None:
        if not wait_for_http(self.endpoint + "/moto-api/", self.process, _START_TIMEOUT):
            if self.process.poll() is not None:
                raise EmulatorError(f"moto exited with status {self.process.returncode}")
            raise EmulatorError(f"moto did not answer within {_START_TIMEOUT:.0f}s")

    def client(self, service: str, keys: Keys, region: str = "us-east-1") -> Any:
        """A botocore client for ``service`` at the emulator, signing with ``keys``."""
        with self._lock:  # creating clients from one session is not thread-safe
            return self._session.create_client(
                service,
                endpoint_url=self.endpoint,
                region_name=region,
                aws_access_key_id=keys.access_key,
                aws_secret_access_key=keys.secret_key,
                aws_session_token=keys.session_token,
            )

    def create_user(self, name: str, path: str = "/") -> tuple[dict[str, Any], Keys]:
        """Create an IAM user with an access key; return (User, keys)."""
        user: dict[str, Any] = self.iam.create_user(UserName=name, Path=path)["User"]
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return user, Keys(key["AccessKeyId"], key["SecretAccessKey"])

    def delete_user(self, name: str) -> None:
        """Delete an IAM user and its access keys."""
        for key in self.iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            self.iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        self.iam.delete_user(UserName=name)

    def create_role(self, name: str, path: str = "/") -> dict[str, Any]:
        """Create an IAM role anyone in the account may assume; return the Role."""
        role: dict[str, Any] = self.iam.create_role(
            RoleName=name, Path=path, AssumeRolePolicyDocument=ASSUME_POLICY
        )["Role"]
        return role

    def assume_role(self, role_arn: str, session: str, keys: Keys | None = None) -> Keys:
        """Temporary credentials for ``role_arn`` (as the administrator unless ``keys``)."""
        sts = self.client("sts", keys or self.admin)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
        return Keys(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

    def stop(self) -> None:
        """End the emulator (SIGTERM, then SIGKILL) and reap it."""
        stop_process(self.process)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def stop_detached(pid: int) -> bool:
    """SIGTERM a detached emulator by its pid; False if no such process."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
