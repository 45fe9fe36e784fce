"""The audit trail: one record per request, no secret in clear in the audit file or the logs."""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend import BackendSettings, Request
from aws_iam_backend.drivers._sync.keys import audit_hash, audit_hasher
from aws_iam_backend.drivers.audit import (
    AuditHasher,
    JsonLinesAuditSink,
    MemoryAuditSink,
)
from aws_iam_backend.errors import InternalError, InvalidRequestError
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.server.config import ConfigError, config_from_document
from aws_iam_backend.server.messages import HTTPRequest
from aws_iam_backend.vault.tokens import TokenRecord, TokenSpec
from tests.support.drivers import Backend, VaultAPI, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import Keys, MotoServer
from tests.support.payloads import botocore_payload

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
ROOT = "root-TOKEN-c0ffee-9d1f"
SESSION = "FwoGZXIvYXdzEXAMPLESESSIONTOKENzz9a8b7c6d5e4f3"
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSIGNINGKEY", SESSION)
CONFIG_SECRET = "CONFIG-SECRET-KEY-5f4dcc3b5aa765d61d8327deb882cf99"
ARN = "arn:aws:iam::123456789012:user/alice"
STS_ROLE = "arn:aws:iam::210987654321:role/vault"


class FixedClock:
    def now(self) -> datetime:
        return NOW


class FailingSink:
    def __init__(self) -> None:
        self.calls = 0

    def write(self, record: Mapping[str, object]) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")


def payload(role: str = "alice") -> dict[str, Any]:
    return botocore_payload(KEYS, region="us-east-1", role=role, when=NOW)


def signature_of(data: Mapping[str, Any]) -> str:
    match = re.search(r"Signature=([0-9a-f]{64})", data["iam_request_headers"]["Authorization"])
    assert match
    return match[1]


def make_backend(sink: object, **settings: Any) -> Any:
    return Backend(
        storage=MemoryStorage(),
        transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
        iam=FakeIam(),
        clock=FixedClock(),
        settings=BackendSettings(**settings),
        audit=sink,
    )


def make_api(storage: MemoryStorage, sink: object, **settings: Any) -> VaultAPI:
    factory = functools.partial(
        Backend,
        transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
        iam=FakeIam(),
        clock=FixedClock(),
    )
    return VaultAPI(
        storage=storage,
        root_token=ROOT,
        backend_factory=factory,
        clock=FixedClock(),
        settings=BackendSettings(**settings),
        audit=sink,
    )


def call(
    api: VaultAPI, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"x-vault-token": token} if token else {}
    raw = b"" if body is None else json.dumps(body).encode()
    response = api.handle(HTTPRequest(method, path, "", headers, raw, remote_addr="10.1.2.3"))
    return response.status, json.loads(response.body) if response.body else None


ROLE = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}


# ------------------------------------------------------------------ through Backend


def test_backend_writes_one_record_per_login_and_config_write() -> None:
    sink = MemoryAuditSink()
    backend = make_backend(sink)
    requests = [
        Request(
            "update", "config/client", {"access_key": "AKIAADMIN", "secret_key": CONFIG_SECRET}
        ),
        Request("update", "config/identity", {"iam_alias": "full_arn"}),
        Request("update", "config/sts/210987654321", {"sts_role": STS_ROLE}),
        Request("update", "role/alice", ROLE),
        Request("update", "login", payload(), remote_addr="10.0.0.9"),
        Request("update", "login", payload(role="nobody"), remote_addr="10.0.0.9"),
    ]
    responses: list[Any] = []
    for request in requests:
        try:
            responses.append(backend.handle_request(request))
        except InvalidRequestError as exc:
            responses.append(exc)
    records = sink.records
    assert [r["path"] for r in records] == [
        "auth/aws/config/client",
        "auth/aws/config/identity",
        "auth/aws/config/sts/210987654321",
        "auth/aws/role/alice",
        "auth/aws/login",
        "auth/aws/login",
    ]
    assert len({r["request_id"] for r in records}) == 6
    assert [r["outcome"] for r in records] == ["success"] * 5 + ["error"]
    assert [r["status"] for r in records] == [204, 204, 204, 204, 200, 400]
    ok, bad = records[4], records[5]
    token = responses[4].auth["client_token"]
    hasher = audit_hasher(backend.storage)
    assert ok["principal_arn"] == ARN
    assert ok["account_id"] == "123456789012"
    assert ok["role"] == "alice"
    assert ok["remote_address"] == "10.0.0.9"
    assert ok["accessor"] == responses[4].auth["accessor"]
    assert ok["auth_client_token"] == hasher.hash(token)
    assert ok["access_key_id"] == KEYS.access_key
    assert ok["region"] == "us-east-1"
    assert ok["secrets"] == {
        "security_token": hasher.hash(SESSION),
        "signature": hasher.hash(signature_of(payload())),
    }
    assert bad["role"] == "nobody"
    assert bad["error"] == "entry for role nobody not found"
    assert "principal_arn" not in bad
    assert "accessor" not in bad
    assert records[0]["secrets"] == {"secret_key": hasher.hash(CONFIG_SECRET)}
    assert records[0]["fields"] == ["access_key", "secret_key"]
    assert records[0]["time"] == "2026-11-29T12:00:00Z"
    text = json.dumps(records)
    for secret in (CONFIG_SECRET, token, signature_of(payload()), SESSION, KEYS.secret_key):
        assert secret not in text


def test_backend_uses_the_given_request_id_and_client_token() -> None:
    sink = MemoryAuditSink()
    backend = make_backend(sink)
    backend.handle_request(Request("read", "config/identity", request_id="rid-1", client_token="t"))
    (record,) = sink.records
    assert record["request_id"] == "rid-1"
    assert record["operation"] == "read"
    assert record["client_token"] == audit_hasher(backend.storage).hash("t")


class CapturingIssuer:
    """Wraps the backend's issuer to learn the token a failed login issued."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.issued: list[str] = []

    def issue(self, spec: TokenSpec) -> TokenRecord:
        record: TokenRecord = self.inner.issue(spec)
        self.issued.append(record.client_token or "")
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_failing_sink_fails_the_login_and_revokes_its_token() -> None:
    sink = FailingSink()
    backend = make_backend(sink)
    backend.write_role("alice", ROLE)  # typed calls are not audited
    capture = CapturingIssuer(backend.issuer)
    backend.issuer = capture
    with pytest.raises(InternalError) as caught:
        backend.handle_request(Request("update", "login", payload()))
    assert caught.value.status == 500
    assert caught.value.message == "audit logging failed"
    (token,) = capture.issued
    assert token
    assert backend.issuer.lookup(token) is None
    with pytest.raises(InternalError, match="audit logging failed"):
        backend.handle_request(Request("read", "config/identity"))


def test_audit_not_required_serves_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    backend = make_backend(FailingSink(), audit_required=False)
    backend.write_role("alice", ROLE)
    with caplog.at_level(logging.DEBUG, logger="aws_iam_backend"):
        response = backend.handle_request(Request("update", "login", payload()))
    assert response.auth
    assert backend.issuer.lookup(response.auth["client_token"]) is not None
    assert "audit sink failed: OSError" in caplog.text


def test_hmac_key_persists_in_storage() -> None:
    storage = MemoryStorage()
    first = audit_hasher(storage).hash("x")
    assert first.startswith("hmac-sha256:")
    assert len(first) == len("hmac-sha256:") + 64
    assert audit_hash(storage, "x") == first
    assert audit_hash(MemoryStorage(), "x") != first
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuditHasher(b"short")


# ------------------------------------------------------------------ through VaultAPI


def test_api_audit_file_has_every_request_once_and_no_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aws_iam_backend")
    storage = MemoryStorage()
    path = tmp_path / "audit.log"
    sink = JsonLinesAuditSink(str(path))
    api = make_api(storage, sink)
    steps: list[tuple[str, str, Any, str | None]] = [
        ("POST", "/v1/sys/auth/aws", {"type": "aws"}, ROOT),
        ("POST", "/v1/auth/aws/config/client", {"secret_key": CONFIG_SECRET}, ROOT),
        ("POST", "/v1/auth/aws/config/identity", {"iam_alias": "unique_id"}, ROOT),
        ("POST", "/v1/auth/aws/config/sts/210987654321", {"sts_role": STS_ROLE}, ROOT),
        ("POST", "/v1/auth/aws/role/alice", ROLE, ROOT),
        ("POST", "/v1/auth/aws/login", payload(), None),
        ("POST", "/v1/auth/aws/login", payload(role="nobody"), None),
        ("GET", "/v1/auth/aws/config/client", None, "wrong-token"),
        ("GET", "/v1/nowhere", None, None),
    ]
    replies = [call(api, *step) for step in steps]
    assert [status for status, _ in replies] == [204, 204, 204, 204, 204, 200, 400, 403, 404]
    token = replies[5][1]["auth"]["client_token"]
    more = [
        call(api, "GET", "/v1/auth/token/lookup-self", token=token),
        call(api, "POST", "/v1/auth/token/lookup", {"token": token}, ROOT),
        call(api, "POST", "/v1/sys/audit-hash/file", {"input": token}, ROOT),
        call(api, "GET", "/v1/sys/health"),  # not audited
    ]
    assert [status for status, _ in more] == [200, 200, 200, 200]
    sink.close()
    raw = path.read_bytes()
    records = [json.loads(line) for line in raw.decode().splitlines()]
    assert [r["path"] for r in records] == [
        "sys/auth/aws",
        "auth/aws/config/client",
        "auth/aws/config/identity",
        "auth/aws/config/sts/210987654321",
        "auth/aws/role/alice",
        "auth/aws/login",
        "auth/aws/login",
        "auth/aws/config/client",
        "nowhere",
        "auth/token/lookup-self",
        "auth/token/lookup",
        "sys/audit-hash/file",
    ]
    ids = [r["request_id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert all(ids)
    assert ids[5] == replies[5][1]["request_id"]  # the envelope's request_id
    assert [r["mount"] for r in records][:2] == ["sys/", "aws/"]
    assert records[9]["mount"] == "token/"
    assert records[5]["principal_arn"] == ARN
    assert records[5]["remote_address"] == "10.1.2.3"
    assert records[6]["outcome"] == "error"
    assert records[7]["status"] == 403
    hasher = audit_hasher(storage)
    assert more[2][1]["data"]["hash"] == hasher.hash(token)
    text = raw.decode()
    for value in (CONFIG_SECRET, SESSION, signature_of(payload()), token, ROOT):
        assert hasher.hash(value) in text
    assert records[1]["client_token"] == hasher.hash(ROOT)
    assert records[5]["auth_client_token"] == hasher.hash(token)
    assert records[10]["secrets"] == {"token": hasher.hash(token)}
    logs = caplog.text
    for secret in (CONFIG_SECRET, SESSION, signature_of(payload()), token, ROOT, "wrong-token"):
        assert secret.encode() not in raw
        assert secret not in logs
    assert KEYS.secret_key.encode() not in raw


def test_api_failing_sink_fails_login_and_leaves_no_token() -> None:
    storage = MemoryStorage()
    sink = MemoryAuditSink()
    api = make_api(storage, sink)
    call(api, "POST", "/v1/sys/auth/aws", {"type": "aws"}, ROOT)
    call(api, "POST", "/v1/auth/aws/role/alice", ROLE, ROOT)
    sink.write = FailingSink().write  # type: ignore[method-assign]
    status, body = call(api, "POST", "/v1/auth/aws/login", payload())
    assert (status, body) == (500, {"errors": ["audit logging failed"]})
    assert storage.list("sys/token/token/") == []
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=ROOT)[0] == 500


def test_api_audit_not_required_serves_anyway() -> None:
    api = make_api(MemoryStorage(), FailingSink(), audit_required=False)
    call(api, "POST", "/v1/sys/auth/aws", {"type": "aws"}, ROOT)
    assert call(api, "POST", "/v1/auth/aws/role/alice", ROLE, ROOT)[0] == 204
    assert call(api, "POST", "/v1/auth/aws/login", payload())[0] == 200


def test_api_refuses_a_backend_factory_that_drops_the_sink() -> None:
    def factory(**kwargs: Any) -> Any:
        kwargs.pop("audit")
        return Backend(**kwargs)

    sink = MemoryAuditSink()
    api = VaultAPI(storage=MemoryStorage(), root_token=ROOT, backend_factory=factory, audit=sink)
    api.mounts.ensure("aws/")
    assert call(api, "GET", "/v1/auth/aws/config/identity", token=ROOT)[0] == 500
    assert [r["status"] for r in sink.records] == [500]


def test_audit_hash_endpoint_needs_root() -> None:
    api = make_api(MemoryStorage(), MemoryAuditSink())
    assert call(api, "POST", "/v1/sys/audit-hash", {"input": "x"})[0] == 403
    assert call(api, "POST", "/v1/sys/audit-hash", {}, ROOT)[0] == 400
    status, body = call(api, "POST", "/v1/sys/audit-hash", {"input": "x"}, ROOT)
    assert status == 200
    assert body["hash"] == api.audit_hash("x")


# ------------------------------------------------------------------ sink and config


def test_json_lines_sink_from_eight_threads_writes_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    sink = JsonLinesAuditSink(str(path))

    def writer(n: int) -> None:
        for i in range(200):
            sink.write({"thread": n, "i": i, "pad": "x" * (i * 37 % 5000)})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == 1600
    assert {(r["thread"], r["i"]) for r in records} == {
        (n, i) for n in range(8) for i in range(200)
    }
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="closed file"):
        sink.write({})


def test_server_config_audit_section() -> None:
    base = {"listener": {"tls_disable": True}, "root_token": {"env": "T"}}
    environ = {"T": "audit-Zq7vK2mXw9LpR4tN8bYc"}
    config = config_from_document(
        {**base, "audit": {"file": "/tmp/a.log", "required": False}}, environ
    )
    assert (config.audit_file, config.audit_required) == ("/tmp/a.log", False)
    default = config_from_document(base, environ)
    assert (default.audit_file, default.audit_required) == (None, True)
    with pytest.raises(ConfigError, match=r"audit\.required"):
        config_from_document({**base, "audit": {"required": "yes"}}, environ)
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_document({**base, "audit": {"path": "x"}}, environ)


# ------------------------------------------------------------------ dev server end to end


def test_dev_server_audit_file_after_hvac_login(moto: MotoServer, tmp_path: Path) -> None:
    from tests.support.server import DevServer
    from tests.test_server_hvac import iam_login, unique

    path = tmp_path / "audit.log"
    server = DevServer(None, "--audit-file", str(path))
    try:
        admin = server.client()
        server.configure_for(moto)
        user, keys = moto.create_user(unique("audited"))
        admin.auth.aws.create_role(
            "audited", auth_type="iam", bound_iam_principal_arn=[user["Arn"]]
        )
        client = iam_login(server, keys, "audited", "aws")
        token = client.token
        hashed = admin.adapter.post("/v1/sys/audit-hash/file", json={"input": token})
    finally:
        _out, err = server.stop()
    raw = path.read_bytes()
    records = [json.loads(line) for line in raw.decode().splitlines()]
    logins = [r for r in records if r["path"] == "auth/aws/login"]
    assert len(logins) == 1
    assert logins[0]["principal_arn"] == user["Arn"]
    assert logins[0]["auth_client_token"] == hashed["data"]["hash"]
    for secret in (token, moto.admin.secret_key, keys.secret_key):
        assert secret.encode() not in raw
        assert secret not in err


def test_cli_refuses_an_audit_file_it_cannot_open(capsys: pytest.CaptureFixture[str]) -> None:
    from aws_iam_backend.cli import main

    args = ["server", "--dev", "--listen", "127.0.0.1:18299", "--audit-file", "/nonexistent/a"]
    assert main(args) == 1
    assert "audit: cannot open /nonexistent/a" in capsys.readouterr().err
