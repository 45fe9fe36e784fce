"""Server challenge (attacks.md #61 alternative, #69): a signed, one-time, short-lived nonce.

Pure nonce tests, the login path through :class:`Backend` (mount- and role-level
requirement), :class:`VaultAPI` treating ``challenge`` as unauthenticated, and the client
helper and CLI ``--challenge`` end to end against moto.
"""

from __future__ import annotations

import functools
import json
import secrets
import urllib.error
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.credentials import Credentials

from aws_iam_backend import BackendSettings, InvalidRequestError, Request
from aws_iam_backend.cli import main
from aws_iam_backend.client import build_login_payload
from aws_iam_backend.client import login as client_login
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.login.challenge import CHALLENGE_HEADER, KEY_BYTES, issue_nonce, verify_nonce
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from aws_iam_backend.server.messages import HTTPRequest
from tests.support.drivers import Backend, VaultAPI, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import MotoServer
from tests.support.payloads import botocore_payload, signing_time
from tests.support.server import ROOT, DevServer
from tests.test_backend_attacks import KEYS, NOW, USER_ARN, USER_ID, FixedClock
from tests.test_cli import use_keys

CREDS = Credentials(KEYS.access_key, KEYS.secret_key)


def ok(_request: OutboundRequest) -> STSResponse:
    return ok_response(USER_ARN, USER_ID)


# ----------------------------------------------------------------- nonces


def test_nonce_round_trip_and_rejections() -> None:
    key = secrets.token_bytes(KEY_BYTES)
    nonce, expires = issue_nonce(key, NOW, 60)
    assert expires == int(NOW.timestamp()) + 60
    assert verify_nonce(key, nonce, NOW) == expires
    assert verify_nonce(key, nonce, NOW + timedelta(seconds=59)) == expires
    assert verify_nonce(key, nonce, NOW + timedelta(seconds=60)) is None  # expired
    assert verify_nonce(secrets.token_bytes(KEY_BYTES), nonce, NOW) is None  # another server's key
    body, _, mac = nonce.partition(".")
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    for bad in ("", ".", body, f"{forged_body}.{mac}", f"{body}.{mac[:-1]}", nonce + "x",
                "é" + nonce, "x" * 500, f"{body}.{mac}.x"):  # fmt: skip
        assert verify_nonce(key, bad, NOW) is None, bad
    assert issue_nonce(key, NOW)[0] != issue_nonce(key, NOW)[0]  # random part


# ----------------------------------------------------------------- backend


def backend(
    transport: RecordingTransport,
    *,
    mount_level: bool = True,
    clock: FixedClock | None = None,
    role: dict[str, Any] | None = None,
) -> Any:
    b = Backend(
        storage=MemoryStorage(),
        transport=transport,
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
        clock=clock or FixedClock(),
    )
    b.write_role("dev", {"bound_iam_principal_arn": USER_ARN, **(role or {})})
    b.write_client_config({"require_challenge": mount_level})
    return b


def signed(nonce: str | None, when: datetime = NOW) -> dict[str, Any]:
    with signing_time(when):
        return build_login_payload(CREDS, "dev", region="us-east-1", nonce=nonce)


def unsigned_nonce(nonce: str) -> dict[str, Any]:
    payload = botocore_payload(KEYS, region="us-east-1", role="dev", when=NOW)
    payload["iam_request_headers"] = {**payload["iam_request_headers"], CHALLENGE_HEADER: nonce}
    return payload


def rejected(b: Any, payload: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequestError) as info:
        b.login(payload)
    assert info.value.status == 400
    return info.value.message


def test_challenge_endpoint_shape() -> None:
    b = backend(RecordingTransport(ok))
    for operation in ("update", "read"):
        data = b.handle_request(Request(operation, "challenge")).data
        assert data is not None
        assert set(data) == {"nonce", "expires_in", "header"}
        assert data["expires_in"] == 60
        assert data["header"] == CHALLENGE_HEADER
    settings = BackendSettings(challenge_ttl=15)
    assert Backend(settings=settings, storage=MemoryStorage()).issue_challenge()["expires_in"] == 15


def test_mount_level_challenge_rejections_make_no_sts_call() -> None:
    transport = RecordingTransport(ok)
    clock = FixedClock()
    b = backend(transport, clock=clock)
    assert rejected(b, signed(None)) == "missing challenge nonce"
    nonce = b.issue_challenge()["nonce"]
    assert rejected(b, unsigned_nonce(nonce)) == "challenge nonce is not signed"
    forged, _ = issue_nonce(secrets.token_bytes(KEY_BYTES), NOW, 60)
    assert rejected(b, signed(forged)) == "challenge nonce expired or invalid"
    assert rejected(b, signed("not-a-nonce")) == "challenge nonce expired or invalid"
    clock.current = NOW + timedelta(seconds=61)  # the nonce is stale, the signature is not
    assert rejected(b, signed(nonce)) == "challenge nonce expired or invalid"
    assert transport.requests == []


def test_right_nonce_accepted_once() -> None:
    transport = RecordingTransport(ok)
    b = backend(transport)
    nonce = b.issue_challenge()["nonce"]
    assert b.login(signed(nonce)).auth
    # Re-signed with the same nonce (a new signature): the nonce is spent.
    assert rejected(b, signed(nonce, NOW + timedelta(seconds=1))) == "challenge nonce already used"
    assert len(transport.requests) == 1
    # A fresh nonce works.
    assert b.login(signed(b.issue_challenge()["nonce"], NOW + timedelta(seconds=2))).auth


def test_presigned_get_with_nonce() -> None:
    b = backend(RecordingTransport(ok))
    nonce = b.issue_challenge()["nonce"]
    with signing_time(NOW):
        payload = build_login_payload(CREDS, "dev", region="us-east-1", method="GET", nonce=nonce)
    assert b.login(payload).auth


def test_role_level_challenge() -> None:
    transport = RecordingTransport(ok)
    b = backend(transport, mount_level=False, role={"require_challenge": True})
    assert b.read_role("dev")["require_challenge"] is True
    assert ops.get(b.storage, "role/dev")["require_challenge"] is True  # type: ignore[index]
    assert rejected(b, signed(None)) == "missing challenge nonce"  # known only after STS
    assert b.login(signed(b.issue_challenge()["nonce"], NOW + timedelta(seconds=1))).auth
    b.write_role("dev", {"require_challenge": False})
    assert b.login(signed(None, NOW + timedelta(seconds=2))).auth


def test_not_required_by_default() -> None:
    b = backend(RecordingTransport(ok), mount_level=False)
    assert b.read_client_config()["require_challenge"] is False
    assert b.read_role("dev")["require_challenge"] is False
    assert b.login(signed(None)).auth


# ----------------------------------------------------------------- HTTP


def test_vault_api_challenge_is_unauthenticated() -> None:
    factory = functools.partial(
        Backend, transport=RecordingTransport(ok), iam=FakeIam(unique_ids={USER_ARN: USER_ID})
    )
    api = VaultAPI(storage=MemoryStorage(), root_token=ROOT, backend_factory=factory)
    api.mounts.ensure("aws")
    for method in ("PUT", "POST", "GET"):
        reply = api.handle(HTTPRequest(method, "/v1/auth/aws/challenge", body=b""))
        assert reply.status == 200, reply.body
        assert json.loads(reply.body)["data"]["header"] == CHALLENGE_HEADER
    assert api.handle(HTTPRequest("DELETE", "/v1/auth/aws/challenge")).status == 403
    assert api.handle(HTTPRequest("GET", "/v1/auth/aws/config/client")).status == 403


# ----------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def dev(moto: MotoServer) -> Iterator[DevServer]:
    server = DevServer()
    try:
        server.configure_for(moto)
        server.client().write("auth/aws/config/client", require_challenge=True)
        yield server
    finally:
        server.stop()


@pytest.mark.moto
def test_client_and_cli_challenge_end_to_end(
    dev: DevServer,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"chal{uuid.uuid4().hex[:8]}"
    user, keys = moto.create_user(name)
    dev.client().auth.aws.create_role(name, auth_type="iam", bound_iam_principal_arn=[user["Arn"]])
    creds = Credentials(keys.access_key, keys.secret_key)
    auth = client_login(dev.address, creds, role=name, region="us-east-1", challenge=True)
    assert auth["client_token"]
    with pytest.raises(urllib.error.HTTPError) as info:
        client_login(dev.address, creds, role=name, region="us-east-1")
    assert info.value.code == 400
    assert json.loads(info.value.read()) == {"errors": ["missing challenge nonce"]}

    use_keys(monkeypatch, keys)
    argv = ["login", "--address", dev.address, "--role", name, "--region", "us-east-1",
            "-field=token", "-no-store"]
    assert main([*argv, "--challenge"]) == 0
    token = capsys.readouterr().out.strip()
    assert name in dev.client(token).auth.token.lookup_self()["data"]["display_name"]
    assert main(argv) == 1
    assert "missing challenge nonce" in capsys.readouterr().err
