"""The per-request log line: one per HTTP request, with the audit record's request ID, the
mount, the login's role (bounded), the error class; no secret; standard and JSON formats;
``--log-level``/``--log-format`` in dev mode and ``log_format`` in the TOML."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import requests

from aws_iam_backend import AsyncBackend, AsyncMemoryStorage, MemoryStorage
from aws_iam_backend.drivers.audit import MemoryAuditSink
from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server.config import ConfigError, config_from_document
from aws_iam_backend.server.logs import REQUEST_LOGGER, JsonFormatter, log_formatter
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from tests.support.drivers import Backend, VaultAPI, driver, raising_backend  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import Keys
from tests.support.payloads import botocore_payload
from tests.support.server import DevServer

ROOT = "root-token-Zq7vK2mXw9LpR4tN8bYc"
ARN = "arn:aws:iam::123456789012:user/alice"
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
ONCE = pytest.mark.parametrize("driver", ["sync"], indirect=True)
"""For tests that build no backend or API of the current driver: one run is enough."""


def make_api(audit: MemoryAuditSink | None = None, **options: Any) -> VaultAPI:
    transport = RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE"))
    api = VaultAPI(
        storage=MemoryStorage(),
        root_token=ROOT,
        backend_factory=functools.partial(Backend, transport=transport, iam=FakeIam()),
        audit=audit,
        **options,
    )
    api.mounts.ensure("aws")
    return api


def call(
    api: VaultAPI,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    remote: str = "192.0.2.7",
) -> HTTPResponse:
    headers = {} if token is None else {"x-vault-token": token}
    data = b"" if body is None else json.dumps(body).encode()
    response: HTTPResponse = api.handle(
        HTTPRequest(method, path, "", headers, data, remote_addr=remote)
    )
    return response


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The request fields of every request line logged."""
    return [
        dict(record.request_fields)  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == REQUEST_LOGGER
    ]


@pytest.fixture
def requests_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=REQUEST_LOGGER)
    return caplog


def add_role(api: VaultAPI) -> None:
    role = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}
    assert call(api, "POST", "/v1/auth/aws/role/alice", role, token=ROOT).status == 204


def test_one_line_per_request_with_the_audit_records_request_id(
    requests_log: pytest.LogCaptureFixture,
) -> None:
    sink = MemoryAuditSink()
    api = make_api(sink)
    add_role(api)
    statuses = [
        call(api, "POST", "/v1/auth/aws/login", botocore_payload(KEYS, role="alice")).status,
        call(api, "POST", "/v1/auth/aws/login", botocore_payload(KEYS, role="bob")).status,
        call(api, "GET", "/v1/sys/auth").status,
        call(api, "GET", "/v1/nowhere", token=ROOT).status,
        call(api, "GET", "/v1/sys/health").status,
    ]
    assert statuses == [200, 400, 403, 404, 200]
    logged = lines(requests_log)
    assert [line["status"] for line in logged] == [204, *statuses]
    audited = [r["request_id"] for r in sink.records]
    assert [line["request_id"] for line in logged[:-1]] == audited  # health is not audited
    assert len(set(audited)) == len(audited)
    login, refused, denied, missing, _health = logged[1:]
    assert {k: login[k] for k in ("method", "path", "mount", "role", "error")} == {
        "method": "POST", "path": "/v1/auth/aws/login", "mount": "aws/", "role": "alice",
        "error": "-",
    }  # fmt: skip
    assert (refused["mount"], refused["role"], refused["error"]) == (
        "aws/", "-", "InvalidRequestError",
    )  # fmt: skip
    assert (denied["mount"], denied["error"]) == ("-", "PermissionDeniedError")
    assert missing["error"] == "NotFoundError"
    assert login["remote_address"] == "192.0.2.7"
    assert all(isinstance(line["duration_ms"], float) for line in logged)
    levels = [r.levelno for r in requests_log.records if r.name == REQUEST_LOGGER]
    assert levels == [logging.INFO] * 5 + [logging.DEBUG]  # a healthy probe is DEBUG


def test_token_endpoints_log_the_token_mount(requests_log: pytest.LogCaptureFixture) -> None:
    api = make_api()
    add_role(api)
    reply = call(api, "POST", "/v1/auth/aws/login", botocore_payload(KEYS, role="alice"))
    token = json.loads(reply.body)["auth"]["client_token"]
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=token).status == 200
    assert lines(requests_log)[-1]["mount"] == "token/"


def test_no_secret_reaches_any_line(requests_log: pytest.LogCaptureFixture) -> None:
    api = make_api(MemoryAuditSink())
    add_role(api)
    payload = botocore_payload(KEYS, role="alice")
    reply = call(api, "POST", "/v1/auth/aws/login", payload)
    token = json.loads(reply.body)["auth"]["client_token"]
    call(api, "POST", "/v1/auth/token/lookup", {"token": token}, token=ROOT)
    call(api, "POST", "/v1/auth/aws/config/client", {"secret_key": KEYS.secret_key}, token=ROOT)
    call(api, "POST", "/v1/sys/audit-hash", {"input": "hush-hush"}, token=ROOT)
    authorization = payload["iam_request_headers"]["Authorization"]
    signature = authorization.rpartition("Signature=")[2]
    secrets = [ROOT, token, signature, KEYS.secret_key, "hush-hush", payload["iam_request_body"]]
    records = [r for r in requests_log.records if r.name == REQUEST_LOGGER]
    assert len(records) == 5
    for formatter in (log_formatter("standard"), log_formatter("json")):
        text = "\n".join(formatter.format(record) for record in records)
        for secret in secrets:
            assert secret not in text


def test_standard_lines_quote_what_the_client_chose(
    requests_log: pytest.LogCaptureFixture,
) -> None:
    api = make_api()
    call(api, "GET", '/v1/x\nINFO: request method=GET status=200 "=\\ \u00e9', token=ROOT)
    call(api, "GET", "/v1/" + "y" * 5000, token=ROOT)
    records = [r for r in requests_log.records if r.name == REQUEST_LOGGER]
    forged, long = (log_formatter("standard").format(r) for r in records)
    assert "\n" not in forged
    assert forged.startswith("INFO: request method=GET path=\"/v1/x\\nINFO: request method=GET")
    assert '\\"=\\\\ \\u00e9"' in forged
    assert f"path=/v1/{'y' * 252} status=404" in long


def test_json_lines(requests_log: pytest.LogCaptureFixture) -> None:
    api = make_api()
    call(api, "GET", "/v1/sys/auth")
    record = next(r for r in requests_log.records if r.name == REQUEST_LOGGER)
    document = json.loads(JsonFormatter().format(record))
    assert document["@level"] == "info"
    assert document["@module"] == REQUEST_LOGGER
    assert document["@message"] == "request"
    assert document["@timestamp"].endswith("Z")
    assert (document["path"], document["status"], document["error"]) == (
        "/v1/sys/auth", 403, "PermissionDeniedError",
    )  # fmt: skip
    other = logging.LogRecord("aws_iam_backend", logging.WARNING, "", 0, "a %s", ("b",), None)
    assert json.loads(JsonFormatter().format(other))["@message"] == "a b"
    assert json.loads(JsonFormatter().format(other))["@level"] == "warn"


def test_server_errors_are_warnings_with_their_class(
    requests_log: pytest.LogCaptureFixture,
) -> None:
    api = VaultAPI(
        storage=MemoryStorage(), root_token=ROOT, backend_factory=raising_backend(KeyError("x"))
    )
    api.mounts.ensure("aws")
    assert call(api, "GET", "/v1/auth/aws/role/x", token=ROOT).status == 500
    record = [r for r in requests_log.records if r.name == REQUEST_LOGGER][-1]
    assert record.levelno == logging.WARNING
    assert record.request_fields["error"] == "KeyError"  # type: ignore[attr-defined]


def test_adapter_refusals_are_logged(requests_log: pytest.LogCaptureFixture) -> None:
    api = make_api()
    reply = api.refuse(HTTPRequest("POST", "/v1/auth/aws/login"), 413, "request body too large")
    assert reply.status == 413
    line = lines(requests_log)[-1]
    assert (line["status"], line["error"]) == (413, "refused")


@ONCE
def test_a_request_whose_client_went_away_is_logged_499(
    requests_log: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()

    class Slow(AsyncBackend):
        async def handle_request(self, request: Any) -> Any:
            started.set()
            await asyncio.sleep(30)

    async def run() -> None:
        api = AsyncVaultAPI(storage=AsyncMemoryStorage(), root_token=ROOT, backend_factory=Slow)
        await api.mounts.ensure("aws")
        task = asyncio.create_task(
            api.handle(HTTPRequest("GET", "/v1/auth/aws/role/x", headers={"x-vault-token": ROOT}))
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    line = lines(requests_log)[-1]
    assert (line["status"], line["error"], line["mount"]) == (499, "cancelled", "aws/")


# ------------------------------------------------------------------ configuration


@ONCE
def test_log_format_in_the_toml() -> None:
    base: dict[str, Any] = {"listener": {"tls_disable": True}, "root_token": {"env": "T"}}
    environ = {"T": "a-long-random-root-token-Zq7vK2mXw9LpR4tN8bYc"}
    assert config_from_document(base, environ).log_format == "standard"
    assert config_from_document({**base, "log_format": "json"}, environ).log_format == "json"
    with pytest.raises(ConfigError, match="log_format: expected one of standard, json"):
        config_from_document({**base, "log_format": "xml"}, environ)


@ONCE
def test_dev_server_json_logs_at_the_chosen_level(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    server = DevServer(
        None, "--log-format", "json", "--log-level", "debug", "--audit-file", str(audit)
    )
    try:
        address = server.address
        refused = requests.post(f"{address}/v1/auth/aws/login", json={"role": "x"}, timeout=10)
        assert refused.status_code == 400
        assert requests.get(f"{address}/v1/sys/health", timeout=10).status_code == 200
    finally:
        _out, err = server.stop()
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    request_id = next(r["request_id"] for r in records if r["path"] == "auth/aws/login")
    documents = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert documents, err
    assert all({"@timestamp", "@level", "@module", "@message"} <= set(d) for d in documents)
    logins = [d for d in documents if d.get("path") == "/v1/auth/aws/login"]
    assert len(logins) == 1
    assert logins[0]["status"] == 400
    assert logins[0]["error"] == "InvalidRequestError"
    assert logins[0]["request_id"] == request_id
    probes = [d for d in documents if d.get("path") == "/v1/sys/health"]
    assert probes
    assert probes[-1]["@level"] == "debug"
    assert any(d["@module"].startswith("uvicorn") for d in documents)  # uvicorn's lines too
    # botocore's and urllib3's debug records may hold signed headers: never below INFO
    assert not [d for d in documents if d["@module"].startswith(("botocore", "urllib3"))
                and d["@level"] == "debug"]  # fmt: skip


@ONCE
def test_dev_server_standard_logs_name_each_request() -> None:
    server = DevServer(None)
    try:
        assert requests.get(f"{server.address}/v1/sys/auth", timeout=10).status_code == 403
    finally:
        _out, err = server.stop()
    line = next(line for line in err.splitlines() if "path=/v1/sys/auth " in line)
    assert line.startswith("INFO: request method=GET path=/v1/sys/auth status=403 ")
    assert "error=PermissionDeniedError" in line
