"""hvac as a black-box client of the dev server, started the way the README says:
``python -m aws_iam_backend server --dev ...`` in a subprocess, against moto's STS and IAM."""

from __future__ import annotations

import http.server
import json
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests

from tests.support.fakes import gci_body
from tests.support.moto_server import Keys, MotoServer
from tests.support.payloads import botocore_payload
from tests.support.server import DevServer

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    db = tmp_path_factory.mktemp("hvac") / "s.db"
    dev = DevServer(f"sqlite:///{db}")
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture(scope="module")
def mount(server: DevServer, moto: MotoServer) -> str:
    """A second mount, ``aws2``, configured for moto through hvac."""
    client = server.client()
    client.sys.enable_auth_method("aws", path="aws2")
    server.configure_for(moto, "aws2")  # hvac's configure, as a user would call it
    return "aws2"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def iam_login(server: DevServer, keys: Keys, role: str | None, mount: str) -> hvac.Client:
    client = server.client(token=None)
    client.auth.aws.iam_login(
        keys.access_key, keys.secret_key, keys.session_token, role=role, mount_point=mount
    )
    return client


def test_sys_auth_lists_both_mounts(server: DevServer, mount: str) -> None:
    mounts = server.client().sys.list_auth_methods()
    assert {"aws/", f"{mount}/", "token/"} <= set(mounts["data"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="path is already in use"):
        server.client().sys.enable_auth_method("aws", path=mount)


def test_roles_crud_with_legacy_fields(server: DevServer, mount: str, moto: MotoServer) -> None:
    _user, _keys = moto.create_user(unique("crud"))
    client = server.client()
    name = unique("role")
    client.auth.aws.create_role(
        name,
        auth_type="iam",
        bound_iam_principal_arn=[_user["Arn"]],
        policies=["dev", "ops"],
        ttl="1h",
        max_ttl="2h",
        mount_point=mount,
    )
    data = client.auth.aws.read_role(name, mount_point=mount)
    assert data["token_policies"] == ["dev", "ops"]
    assert data["token_ttl"] == 3600
    assert data["token_max_ttl"] == 7200
    assert data["bound_iam_principal_id"] == [_user["UserId"]]
    assert name in client.auth.aws.list_roles(mount_point=mount)["keys"]
    client.auth.aws.delete_role(name, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.auth.aws.read_role(name, mount_point=mount)


def test_user_login_and_token_lifecycle(server: DevServer, mount: str, moto: MotoServer) -> None:
    user_name = unique("user")
    user, keys = moto.create_user(user_name)
    server.client().auth.aws.create_role(
        "dev", auth_type="iam", bound_iam_principal_arn=[user["Arn"]], policies=["dev"],
        ttl="10m", max_ttl="1h", mount_point=mount,
    )  # fmt: skip
    client = iam_login(server, keys, "dev", mount)
    me = client.auth.token.lookup_self()["data"]
    assert me["path"] == f"auth/{mount}/login"
    assert me["policies"] == ["default", "dev"]
    assert me["meta"]["account_id"] == ACCOUNT
    assert me["display_name"] == f"{mount}-{user_name}"
    renewed = client.auth.token.renew_self()["auth"]
    assert renewed["client_token"] == client.token
    assert renewed["lease_duration"] == 600
    client.auth.token.revoke_self()
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()


def test_assumed_role_login_with_wildcard_and_default_role(
    server: DevServer, mount: str, moto: MotoServer
) -> None:
    prefix = unique("app")
    role = moto.create_role(f"{prefix}-web", path="/svc/")
    keys = moto.assume_role(role["Arn"], "session-1")
    server.client().auth.aws.create_role(
        f"{prefix}-web",
        auth_type="iam",
        bound_iam_principal_arn=[f"arn:aws:iam::{ACCOUNT}:role/svc/{prefix}*"],
        policies=["web"],
        mount_point=mount,
    )
    client = iam_login(server, keys, None, mount)  # role defaults to the friendly name
    me = client.auth.token.lookup_self()["data"]
    assert me["policies"] == ["default", "web"]
    assert me["display_name"] == f"{mount}-{prefix}-web/session-1"


def test_login_token_is_refused_on_config_endpoints(
    server: DevServer, mount: str, moto: MotoServer
) -> None:
    user, keys = moto.create_user(unique("nosy"))
    server.client().auth.aws.create_role(
        "nosy", auth_type="iam", bound_iam_principal_arn=[user["Arn"]], mount_point=mount
    )
    client = iam_login(server, keys, "nosy", mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.aws.read_config(mount_point=mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.aws.configure(sts_endpoint="http://127.0.0.1:1", mount_point=mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.aws.list_roles(mount_point=mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.sys.enable_auth_method("aws", path=unique("m"))


def test_login_refusals_are_hvac_errors(server: DevServer, mount: str, moto: MotoServer) -> None:
    _user, keys = moto.create_user(unique("stranger"))
    with pytest.raises(hvac.exceptions.InvalidRequest, match="entry for role nobody not found"):
        iam_login(server, keys, "nobody", mount)
    bad = Keys(keys.access_key, "wrong-secret")
    server.client().auth.aws.create_role(
        "any", auth_type="iam", bound_iam_principal_arn=[f"arn:aws:iam::{ACCOUNT}:user/*"],
        mount_point=mount,
    )  # fmt: skip
    with pytest.raises(hvac.exceptions.InvalidRequest, match="received error code 403 from STS"):
        iam_login(server, bad, "any", mount)


def test_restart_keeps_roles_config_mounts_and_tokens(moto: MotoServer, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    first = DevServer(storage)
    try:
        admin = first.client()
        admin.sys.enable_auth_method("aws", path="persist")
        first.configure_for(moto, "persist")
        user, keys = moto.create_user(unique("keeper"))
        admin.auth.aws.create_role(
            "keeper", auth_type="iam", bound_iam_principal_arn=[user["Arn"]], mount_point="persist"
        )
        token = iam_login(first, keys, "keeper", "persist").token
    finally:
        first.stop()
    second = DevServer(storage)
    try:
        admin = second.client()
        assert "persist/" in admin.sys.list_auth_methods()["data"]
        assert admin.auth.aws.read_role("keeper", mount_point="persist")
        config = admin.auth.aws.read_config(mount_point="persist")
        assert config["sts_endpoint"] == moto.endpoint
        me = second.client(token).auth.token.lookup_self()["data"]
        assert me["path"] == "auth/persist/login"
        assert second.client(token).auth.token.renew_self()["auth"]["client_token"] == token
    finally:
        out, _ = second.stop()
    assert "Root Token: root" in out


# ------------------------------------------------------------------ concurrency

SLOW_ARN = f"arn:aws:iam::{ACCOUNT}:user/slow"


class SlowSTS:
    """A loopback STS stub: answers GetCallerIdentity for ``SLOW_ARN``; the first request
    waits (up to 3 s) until ``release`` is set, after setting ``entered``."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if stub._first.acquire(blocking=False):
                    stub.entered.set()
                    stub.release.wait(3)
                body = gci_body(SLOW_ARN, "AIDASLOWUSER", ACCOUNT)
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_server_keeps_serving_while_a_login_waits_on_sts() -> None:
    sts = SlowSTS()
    dev = DevServer()
    try:
        admin = dev.client()
        admin.auth.aws.configure(access_key="AKIA", secret_key="x", sts_endpoint=sts.endpoint)
        admin.auth.aws.create_role(
            "slow", auth_type="iam", bound_iam_principal_arn=[SLOW_ARN],
            resolve_aws_unique_ids=False,
        )  # fmt: skip
        payload = json.dumps(botocore_payload(Keys("AKIAIOSFODNN7EXAMPLE", "s"), role="slow"))
        url = f"{dev.address}/v1/auth/aws/login"
        slow_done = threading.Event()
        results: dict[str, int] = {}

        def slow_login() -> None:
            results["slow"] = requests.post(url, data=payload, timeout=30).status_code
            slow_done.set()

        thread = threading.Thread(target=slow_login)
        thread.start()
        assert sts.entered.wait(10), "the slow login never reached STS"
        health = requests.get(f"{dev.address}/v1/sys/health", timeout=10)
        fast = requests.post(url, data=payload, timeout=10)
        assert not slow_done.is_set(), "the slow login finished before the others were served"
        assert (health.status_code, fast.status_code) == (200, 200)
        sts.release.set()
        thread.join(15)
        assert results == {"slow": 200}
    finally:
        dev.stop()
        sts.close()


def test_dev_server_prints_banner_and_stops_cleanly() -> None:
    dev = DevServer()
    out, err = dev.stop()
    assert dev.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises after shutdown
    assert "Finished server process" in err  # graceful shutdown ran
    assert "Root Token: root" in out
    assert "import boto3, hvac" in out
    assert "Traceback" not in err
