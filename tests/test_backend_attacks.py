"""attacks.md rows on the login and config paths, through :class:`Backend`.

Login attacks assert the typed rejection, that no outbound request was made (a recording
transport), and that no token was stored. Config attacks assert the 400 and that storage
did not change.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from aws_iam_backend.errors import (
    BackendError,
    InvalidRequestError,
    PermissionDeniedError,
    RequestTooLargeError,
    UpstreamError,
)
from aws_iam_backend.io.protocols import Document
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from tests.support.drivers import Backend, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, gci_body, ok_response
from tests.support.moto_server import Keys
from tests.support.payloads import BODY, b64, botocore_payload

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ACCOUNT = "123456789012"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
USER_ID = "AIDAEXAMPLEALICE0001"


class FixedClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def make_backend(transport: RecordingTransport, storage: MemoryStorage | None = None) -> Any:
    iam = FakeIam(unique_ids={USER_ARN: USER_ID})
    backend = Backend(
        storage=storage or MemoryStorage(),
        transport=transport,
        iam=iam,
        clock=FixedClock(),
    )
    backend.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    return backend


def valid(**overrides: Any) -> dict[str, Any]:
    payload = botocore_payload(KEYS, region="us-east-1", role="dev", when=NOW)
    payload.update(overrides)
    return payload


def headers_of(payload: dict[str, Any]) -> dict[str, str]:
    return dict(payload["iam_request_headers"])


def with_headers(**changes: str | None) -> dict[str, Any]:
    payload = valid()
    headers = headers_of(payload)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    payload["iam_request_headers"] = headers
    return payload


def snapshot(storage: MemoryStorage) -> dict[str, Document | None]:
    """Every document with its version: a rewrite of the same value is a change too."""
    return {key: storage.read(key) for key in storage.list("")}


def authz(signed: str = "content-type;host;x-amz-date", sig: str = "a" * 64) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={KEYS.access_key}/20261129/us-east-1/sts/aws4_request, "
        f"SignedHeaders={signed}, Signature={sig}"
    )


LOGIN_ATTACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "01_foreign_host": lambda: valid(iam_request_url=b64("https://evil.example/")),
    "02_lookalike_host": lambda: valid(
        iam_request_url=b64("https://sts.us-east-1.amazonaws.com.attacker.com/")
    ),
    "03_userinfo": lambda: valid(iam_request_url=b64("https://sts.amazonaws.com@evil.example/")),
    "04_backslash_authority": lambda: valid(
        iam_request_url=b64("https://sts.amazonaws.com\\@evil.example/")
    ),
    "05_control_chars": lambda: valid(iam_request_url=b64("https://sts.amazonaws.com\n@evil/")),
    "06_plain_http": lambda: valid(iam_request_url=b64("http://sts.us-east-1.amazonaws.com/")),
    "07_explicit_port": lambda: valid(
        iam_request_url=b64("https://sts.us-east-1.amazonaws.com:8443/")
    ),
    "08_s3_bucket_host": lambda: valid(iam_request_url=b64("https://sts.s3.amazonaws.com/")),
    "09_trailing_dot": lambda: valid(iam_request_url=b64("https://sts.us-east-1.amazonaws.com./")),
    "10_metadata_ip": lambda: valid(iam_request_url=b64("https://169.254.169.254/")),
    "11_path": lambda: valid(iam_request_url=b64("https://sts.us-east-1.amazonaws.com/x")),
    "12_post_query": lambda: valid(
        iam_request_url=b64("https://sts.us-east-1.amazonaws.com/?Action=AssumeRole")
    ),
    "19_host_header_mismatch": lambda: with_headers(Host="evil.example"),
    "20_put_method": lambda: valid(iam_http_request_method="PUT"),
    "21_lowercase_method": lambda: valid(iam_http_request_method="post"),
    "26_assume_role_body": lambda: valid(
        iam_request_body=b64("Action=AssumeRoleWithWebIdentity&RoleArn=x&WebIdentityToken=y")
    ),
    "27_two_actions": lambda: valid(
        iam_request_body=b64("Action=GetCallerIdentity&Action=AssumeRole")
    ),
    "28_case_variant_action": lambda: valid(
        iam_request_body=b64("action=AssumeRole&Action=GetCallerIdentity")
    ),
    "29_extra_param": lambda: valid(iam_request_body=b64(BODY + "&RoleArn=x")),
    "30_no_action": lambda: valid(iam_request_body=b64("Version=2011-06-15")),
    "31_semicolon": lambda: valid(iam_request_body=b64("Action=GetCallerIdentity;Action=X")),
    "33_other_version": lambda: valid(
        iam_request_body=b64("Action=GetCallerIdentity&Version=2099-01-01")
    ),
    "34_json_protocol": lambda: with_headers(
        Content_Type="application/x-amz-json-1.0",
        X_Amz_Target="AWSSecurityTokenServiceV20110615.AssumeRoleWithWebIdentity",
    ),
    "35_junk_base64": lambda: valid(iam_request_body="QWN0aW9u!!"),
    "35_urlsafe_base64": lambda: valid(iam_request_url="aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_"),
    "40_two_signedheaders": lambda: with_headers(
        Authorization=authz() + ", SignedHeaders=host;x-amz-date;x-vault-aws-iam-server-id"
    ),
    "42_sigv4a": lambda: with_headers(
        Authorization=authz().replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")
    ),
    "43_service_s3": lambda: with_headers(Authorization=authz().replace("/sts/", "/s3/")),
    "44_host_not_signed": lambda: with_headers(Authorization=authz("content-type;x-amz-date")),
    "44_signed_header_absent": lambda: with_headers(
        Authorization=authz("content-type;host;x-amz-date;x-foo")
    ),
    "45_mallory_header": lambda: with_headers(X_Amz_Mallory_Header="<?xml><h4ck0r/>"),
    "46_accept_json": lambda: with_headers(Accept="application/json"),
    "46_transfer_encoding": lambda: with_headers(Transfer_Encoding="chunked"),
    "46_content_length_mismatch": lambda: with_headers(Content_Length="999"),
    "46_forwarded_for": lambda: with_headers(X_Forwarded_For="1.2.3.4"),
    "47_crlf_value": lambda: with_headers(User_Agent="x\r\nX-Injected: 1"),
    "47_non_ascii_value": lambda: with_headers(User_Agent="caf\u00e9"),
    "48_bad_header_name": lambda: with_headers(X_Amz_Date=None, **{"X_Amz Date": "x"}),
    "49_headers_array": lambda: valid(iam_request_headers=b64("[1,2,3]")),
    "49_headers_empty": lambda: valid(iam_request_headers={}),
    "63_too_old": lambda: botocore_payload(
        KEYS, region="us-east-1", role="dev", when=datetime(2026, 11, 29, 11, 40, tzinfo=UTC)
    ),
    "64_future": lambda: botocore_payload(
        KEYS, region="us-east-1", role="dev", when=datetime(2026, 11, 29, 12, 10, tzinfo=UTC)
    ),
    "65_bad_date_format": lambda: with_headers(X_Amz_Date="2026-11-29T12:00:00Z"),
    "66_no_amz_date": lambda: with_headers(X_Amz_Date=None, Date="Sun, 29 Nov 2026 12:00:00 GMT"),
    "84_deep_nesting": lambda: valid(iam_request_headers={"X-Amz-Date": [[[["x"]]]]}),
}


@pytest.mark.parametrize("name", sorted(LOGIN_ATTACKS))
def test_login_attack_rejected_without_outbound_call(name: str) -> None:
    transport = RecordingTransport()
    storage = MemoryStorage()
    backend = make_backend(transport, storage)
    before = snapshot(storage)
    with pytest.raises(BackendError) as info:
        backend.login(LOGIN_ATTACKS[name]())
    assert info.value.status == 400, info.value.message
    assert transport.requests == []
    assert snapshot(storage) == before
    assert KEYS.secret_key not in info.value.message


def test_valid_payload_is_accepted_and_rebuilt() -> None:
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    backend = make_backend(transport)
    auth = backend.login(valid()).auth or {}
    assert auth["client_token"]
    [sent] = transport.requests
    assert sent.url == "https://sts.us-east-1.amazonaws.com/"
    assert sent.host == "sts.us-east-1.amazonaws.com"
    assert sent.body == BODY.encode()


def test_attack_82_oversized_login_is_413_before_decoding() -> None:
    transport = RecordingTransport()
    backend = make_backend(transport)
    with pytest.raises(RequestTooLargeError):
        backend.login(valid(role="x" * 70_000))
    assert transport.requests == []


def test_attack_91_no_config_still_validates() -> None:
    transport = RecordingTransport()
    backend = make_backend(transport)
    assert ops.get(backend.storage, "config/client") is None
    with pytest.raises(InvalidRequestError, match="invalid request header"):
        backend.login(with_headers(X_Amz_Target="x"))
    assert transport.requests == []


def test_attack_36_37_server_id_required_and_signed() -> None:
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    backend = make_backend(transport)
    backend.write_client_config({"iam_server_id_header_value": "vault.prod"})
    with pytest.raises(InvalidRequestError) as missing:
        backend.login(valid())
    assert missing.value.message == (
        "error validating X-Vault-AWS-IAM-Server-ID header: missing header "
        '"X-Vault-AWS-IAM-Server-ID"'
    )
    unsigned = with_headers(X_Vault_AWS_IAM_Server_ID="vault.prod")
    with pytest.raises(InvalidRequestError, match="vault header wasn't signed"):
        backend.login(unsigned)
    wrong = botocore_payload(KEYS, region="us-east-1", role="dev", when=NOW, server_id="vault.dev")
    with pytest.raises(InvalidRequestError, match=r'expected "vault\.prod" but got "vault\.dev"'):
        backend.login(wrong)
    assert transport.requests == []
    right = botocore_payload(KEYS, region="us-east-1", role="dev", when=NOW, server_id="vault.prod")
    assert backend.login(right).auth


def hostile(
    status: int, content_type: str, body: bytes
) -> Callable[[OutboundRequest], STSResponse]:
    return lambda _r: STSResponse(status, (("content-type", content_type),), body)


NS = "https://sts.amazonaws.com/doc/2011-06-15/"
EMBEDDED = gci_body(f"arn:aws:iam::{ACCOUNT}:user/alice", USER_ID, ACCOUNT)
HOSTILE_RESPONSES: dict[str, Callable[[OutboundRequest], STSResponse]] = {
    "18_redirect": lambda _r: STSResponse(
        302, (("location", "https://evil.example/"), ("content-type", "text/xml")), b""
    ),
    "50_json": hostile(200, "application/json", b'{"x": "' + EMBEDDED + b'"}'),
    "51_junk_before": hostile(200, "text/xml", b"x" + EMBEDDED),
    "51_two_documents": hostile(200, "text/xml", EMBEDDED + EMBEDDED),
    "52_wrong_root": hostile(
        200,
        "text/xml",
        f'<AssumeRoleResponse xmlns="{NS}"><AssumedRoleUser><Arn>{USER_ARN}</Arn>'
        "</AssumedRoleUser></AssumeRoleResponse>".encode(),
    ),
    "53_two_results": hostile(
        200,
        "text/xml",
        EMBEDDED.replace(
            b"</GetCallerIdentityResult>",
            b"</GetCallerIdentityResult><GetCallerIdentityResult><Arn>a</Arn>"
            b"<UserId>b</UserId><Account>c</Account></GetCallerIdentityResult>",
            1,
        ),
    ),
    "54_empty_arn": hostile(200, "text/xml", gci_body("", USER_ID, ACCOUNT)),
    "55_account_mismatch": hostile(200, "text/xml", gci_body(USER_ARN, USER_ID, "222222222222")),
    "56_entities": hostile(
        200,
        "text/xml",
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>' + EMBEDDED,
    ),
    "57_server_error": hostile(503, "text/xml", b"<ErrorResponse/>"),
    "58_application_xml": hostile(200, "application/xml", EMBEDDED),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_RESPONSES))
def test_hostile_sts_response_issues_no_token(name: str) -> None:
    storage = MemoryStorage()
    transport = RecordingTransport(HOSTILE_RESPONSES[name])
    backend = make_backend(transport, storage)
    before = snapshot(storage)
    with pytest.raises(UpstreamError):
        backend.login(valid())
    assert len(transport.requests) == 1
    assert snapshot(storage) == before


def test_attack_59_root_arn_cannot_log_in() -> None:
    transport = RecordingTransport(lambda _r: ok_response(f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT))
    backend = make_backend(transport)
    with pytest.raises(InvalidRequestError, match="error parsing arn"):
        backend.login(valid())


def test_attack_71_wildcard_cross_account_lookup_denied() -> None:
    attacker = "arn:aws:sts::999999999999:assumed-role/app/s"
    transport = RecordingTransport(
        lambda _r: ok_response(attacker, "AROAATTACKER00000001:s", "999999999999")
    )
    iam = FakeIam(
        full_arns={"arn:aws:iam::999999999999:role/app": f"arn:aws:iam::{ACCOUNT}:role/app"}
    )
    backend = Backend(storage=MemoryStorage(), transport=transport, iam=iam, clock=FixedClock())
    backend.write_role("app", {"bound_iam_principal_arn": f"arn:aws:iam::{ACCOUNT}:role/app*"})
    with pytest.raises(InvalidRequestError, match="does not belong to the role"):
        backend.login(valid(role="app"))


def test_attack_76_case_sensitive_binding() -> None:
    transport = RecordingTransport(
        lambda _r: ok_response(f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/s", "AROAX:s")
    )
    backend = Backend(
        storage=MemoryStorage(), transport=transport, iam=FakeIam(), clock=FixedClock()
    )
    backend.write_role(
        "adm",
        {
            "bound_iam_principal_arn": f"arn:aws:iam::{ACCOUNT}:role/Admin",
            "resolve_aws_unique_ids": False,
        },
    )
    with pytest.raises(InvalidRequestError, match="does not belong"):
        backend.login(valid(role="adm"))


def test_token_bound_cidrs_deny_with_403() -> None:
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    backend = make_backend(transport)
    backend.write_role(
        "dev", {"bound_iam_principal_arn": USER_ARN, "token_bound_cidrs": "10.0.0.0/8"}
    )
    with pytest.raises(PermissionDeniedError):
        backend.login(valid(), remote_addr="192.0.2.1")
    with pytest.raises(PermissionDeniedError):
        backend.login(valid())
    assert backend.login(valid(), remote_addr="10.1.2.3").auth


CONFIG_ATTACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "73_any_account": ("role", {"bound_iam_principal_arn": "arn:aws:iam::*:role/admin"}),
    "73_star": ("role", {"bound_iam_principal_arn": "*"}),
    "74_account_prefix": ("role", {"bound_iam_principal_arn": "arn:aws:iam::11111111111*"}),
    "94_root_upper": ("role", {"bound_iam_principal_arn": USER_ARN, "token_policies": "Root"}),
    "94_root_space": ("role", {"bound_iam_principal_arn": USER_ARN, "policies": "default, root "}),
    "96_not_arn": ("role", {"bound_iam_principal_arn": "not-an-arn"}),
    "96_short_account": ("role", {"bound_iam_principal_arn": "arn:aws:iam::12345:role/x"}),
    "96_bad_partition": (
        "role",
        {"bound_iam_principal_arn": "arn:aws-evil:iam::123456789012:role/x"},
    ),
    "96_group": ("role", {"bound_iam_principal_arn": "arn:aws:iam::123456789012:group/x"}),
    "96_inner_star": ("role", {"bound_iam_principal_arn": "arn:aws:iam::123456789012:role/*/x"}),
    "97_no_binding": ("role", {"token_policies": "dev"}),
    "98_http_endpoint": ("client", {"sts_endpoint": "http://sts.amazonaws.com"}),
    "98_userinfo_endpoint": ("client", {"sts_endpoint": "https://user@sts.amazonaws.com"}),
    "98_query_endpoint": ("client", {"sts_endpoint": "https://sts.amazonaws.com/path?x"}),
    "99_allow_host": ("client", {"allowed_sts_header_values": "Host"}),
    "99_allow_transfer_encoding": ("client", {"allowed_sts_header_values": "transfer-encoding"}),
    "99_allow_target": ("client", {"allowed_sts_header_values": "X-Amz-Target"}),
}


def write_config(backend: Any, kind: str, data: dict[str, Any]) -> None:
    if kind == "role":
        backend.write_role("target", data)
    else:
        backend.write_client_config(data)


@pytest.mark.parametrize("name", sorted(CONFIG_ATTACKS))
def test_config_attack_rejected_and_nothing_stored(name: str) -> None:
    storage = MemoryStorage()
    backend = make_backend(RecordingTransport(), storage)
    before = snapshot(storage)
    kind, data = CONFIG_ATTACKS[name]
    with pytest.raises(InvalidRequestError):
        write_config(backend, kind, data)
    assert snapshot(storage) == before


def test_attack_92_role_names_are_ascii_and_case_insensitive() -> None:
    backend = make_backend(RecordingTransport())
    backend.write_role("Admin", {"bound_iam_principal_arn": USER_ARN})
    assert backend.read_role("ADMIN")["bound_iam_principal_arn"] == [USER_ARN]
    for bad in ["adm\u0131n", "\uff41dmin", "admin ", "../config", "a/b", "", "a\x00b", "x" * 1000]:
        with pytest.raises(InvalidRequestError):
            backend.write_role(bad, {"bound_iam_principal_arn": USER_ARN})


def test_attack_100_duplicate_keys_rejected() -> None:
    from aws_iam_backend.vault.fields import loads_strict

    text = (
        json.dumps({"a": 1})[:-1]
        + ', "bound_iam_principal_arn": "x", "bound_iam_principal_arn": "*"}'
    )
    with pytest.raises(InvalidRequestError):
        loads_strict(text)


def test_base64_headers_shape_accepted() -> None:
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    backend = make_backend(transport)
    payload = valid()
    payload["iam_request_headers"] = base64.b64encode(
        json.dumps({k: [v] for k, v in headers_of(payload).items()}).encode()
    ).decode()
    assert backend.login(payload).auth
