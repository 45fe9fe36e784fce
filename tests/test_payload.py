from __future__ import annotations

import base64
from typing import Any

import pytest

from aws_iam_backend.errors import InvalidRequestError, RequestTooLargeError
from aws_iam_backend.login.decode import KNOWN_LOGIN_FIELDS, decode_login

BODY = "Action=GetCallerIdentity&Version=2011-06-15"
HEADERS = {"Content-Type": ["application/x-www-form-urlencoded"], "X-Amz-Date": "x"}


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def data(**overrides: object) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iam_http_request_method": "POST",
        "iam_request_url": b64("https://sts.amazonaws.com/"),
        "iam_request_body": b64(BODY),
        "iam_request_headers": HEADERS,
    }
    for key, value in overrides.items():
        if value is ...:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def err(d: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequestError) as info:
        decode_login(d)
    assert info.value.status == 400
    return info.value.message


def test_valid_post() -> None:
    p = decode_login(data(role="dev"))
    assert (p.method, p.url, p.body, p.role) == (
        "POST",
        "https://sts.amazonaws.com/",
        BODY.encode(),
        "dev",
    )
    assert p.headers.get("content-type") == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("role", [None, "", ...])
def test_role_absent_empty_or_null(role: object) -> None:
    assert decode_login(data(role=role)).role == ""


def test_valid_get_without_body() -> None:
    url = "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
    p = decode_login(
        data(iam_http_request_method="GET", iam_request_url=b64(url), iam_request_body=...)
    )
    assert p.body == b""
    assert p.method == "GET"


def test_known_fields() -> None:
    assert {
        "role",
        "iam_http_request_method",
        "iam_request_url",
        "iam_request_body",
        "iam_request_headers",
        "pkcs7",
        "identity",
        "signature",
        "nonce",
    } == KNOWN_LOGIN_FIELDS


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({}, "didn't supply required authentication values"),
        ({"role": "x"}, "didn't supply required authentication values"),
        (
            {"pkcs7": "x", "iam_request_url": "x"},
            "supplied auth values for both ec2 and iam auth types",
        ),
        ({"identity": "x"}, "supplied some of the auth values for the ec2 auth type but not all"),
        ({"pkcs7": "x"}, "this is an ec2 login; it cannot be verified as an iam login"),
        (
            {"identity": "eA==", "signature": "eQ=="},
            "this is an ec2 login; it cannot be verified as an iam login",
        ),
        (
            {"iam_request_url": "x"},
            "supplied some of the auth values for the iam auth type but not all",
        ),
        (
            data(iam_request_body=...),
            "supplied some of the auth values for the iam auth type but not all",
        ),
        (
            data(iam_request_headers=...),
            "supplied some of the auth values for the iam auth type but not all",
        ),
    ],
)
def test_dispatch(d: dict[str, Any], message: str) -> None:
    assert err(d) == message


@pytest.mark.parametrize(
    ("d", "message"),
    [
        (data(iam_http_request_method=""), "missing iam_http_request_method"),
        (
            data(iam_http_request_method="PUT"),
            "invalid iam_http_request_method; currently only 'GET' and 'POST' are supported",
        ),
        (data(iam_request_url=""), "missing iam_request_url"),
        (
            data(iam_request_url="aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8"),
            "failed to base64 decode iam_request_url",
        ),
        (
            data(iam_request_url=b64("https://sts.amazonaws.com/%zz")),
            "error parsing iam_request_url",
        ),
        (
            data(iam_request_url=b64("https://sts.amazonaws.com/?Action=GetCallerIdentity")),
            "invalid request",
        ),
        (data(iam_request_body=""), "missing iam_request_body which is required for POST requests"),
        (data(iam_request_body="QWN0aW9u!!"), "failed to base64 decode iam_request_body"),
        (data(iam_request_body=b64(BODY + "&RoleArn=x")), "iam request body is invalid"),
        (
            data(iam_request_body=b64("Action=GetCallerIdentity;Action=AssumeRole")),
            "invalid semicolon separator in query",
        ),
        (data(iam_request_body=b64("Action=%zz")), 'invalid URL escape "%zz"'),
        (data(iam_request_headers={}), "missing iam_request_headers"),
        (data(iam_request_headers=None), "missing iam_request_headers"),
    ],
)
def test_vault_shape_errors(d: dict[str, Any], message: str) -> None:
    assert err(d) == message


def test_get_action_checks() -> None:
    def get(query: str) -> str:
        return err(
            data(
                iam_http_request_method="GET",
                iam_request_url=b64("https://sts.amazonaws.com/?" + query),
            )
        )

    assert get("Version=2011-06-15") == "no action found in request"
    assert get("Action=GetCallerIdentity&Action=AssumeRole") == "found multiple actions"
    assert get("Action=AssumeRole") == "unexpected action parameter, AssumeRole"
    assert len(get("Action=" + "A" * 10_000)) < 120


@pytest.mark.parametrize(
    "field", ["iam_http_request_method", "iam_request_url", "iam_request_body", "role"]
)
@pytest.mark.parametrize("value", [1, True, ["x"], {"a": 1}])
def test_non_string_fields(field: str, value: object) -> None:
    assert err(data(**{field: value})).startswith(
        f'Field validation failed: error converting input for field "{field}": '
    )


def test_headers_field_validation_precedes_dispatch() -> None:
    assert err({"iam_request_headers": 5}).startswith(
        'Field validation failed: error converting input for field "iam_request_headers": '
    )


def test_attack_82_too_large_before_decoding() -> None:
    with pytest.raises(RequestTooLargeError) as info:
        decode_login(data(role="x" * 70_000))
    assert info.value.status == 413
    assert info.value.message == "login request exceeds 65536 bytes"
    with pytest.raises(RequestTooLargeError):
        decode_login(data(iam_request_headers={"X": ["y" * 1000] * 70}))
    with pytest.raises(RequestTooLargeError):
        decode_login(data(iam_request_headers="!" * 70_000))


@pytest.mark.parametrize(
    "url",
    [
        " https://evil.example",
        "https://sts.amazonaws.com\n@evil.example/",
        "https://sts.amazonaws.com/\t",
        "https://sts.amazonaws.com/\r",
        "\x00https://sts.amazonaws.com/",
        "https://ѕts.amazonaws.com/",  # noqa: RUF001
        "https://sts.amazonaws.com/\x7f",
    ],
)
def test_attack_5_control_whitespace_non_ascii_in_url(url: str) -> None:
    assert err(data(iam_request_url=b64(url))).startswith("error parsing iam_request_url")


@pytest.mark.parametrize(
    "method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT"]
)
def test_attack_20_methods(method: str) -> None:
    assert err(data(iam_http_request_method=method)).startswith("invalid iam_http_request_method")


@pytest.mark.parametrize("method", ["post", " POST", "POST\r\n", "POST / HTTP/1.1\r\nX: y"])
def test_attack_21_method_not_normalised(method: str) -> None:
    assert err(data(iam_http_request_method=method)).startswith("invalid iam_http_request_method")


def test_attack_22_get_multiple_actions() -> None:
    url = "https://sts.amazonaws.com/?Action=GetCallerIdentity&Action=AssumeRole"
    assert (
        err(data(iam_http_request_method="GET", iam_request_url=b64(url)))
        == "found multiple actions"
    )


def test_attack_12_post_query_action() -> None:
    url = "https://sts.amazonaws.com/?Action=AssumeRoleWithWebIdentity&RoleArn=x"
    assert err(data(iam_request_url=b64(url))) == "invalid request"


@pytest.mark.parametrize(
    "body",
    [
        "Action=GetCallerIdentity&Action=AssumeRole",
        "action=AssumeRole&Action=GetCallerIdentity",
        "ACTION=GetCallerIdentity",
        "Action=GetCallerIdentity&Version=2011-06-15&RoleArn=x",
        "Action=AssumeRoleWithWebIdentity&RoleArn=x&WebIdentityToken=y",
    ],
)
def test_attacks_26_to_29_body(body: str) -> None:
    assert err(data(iam_request_body=b64(body))) == "iam request body is invalid"


def test_attack_31_semicolon_body() -> None:
    body = "Action=GetCallerIdentity;Action=AssumeRole"
    assert err(data(iam_request_body=b64(body))) == "invalid semicolon separator in query"


@pytest.mark.parametrize(
    "value",
    ["QWN0aW9u!!", "QWN0aW9uPUdldENhbGxlcklkZW50aXR", "QWN0aW9u_-__", "QWN0a W9u"],
)
def test_attack_35_strict_base64(value: str) -> None:
    assert err(data(iam_request_body=value)) == "failed to base64 decode iam_request_body"


def test_base64_newlines_skipped_like_go() -> None:
    encoded = b64(BODY)
    assert (
        decode_login(data(iam_request_body=encoded[:10] + "\r\n" + encoded[10:])).body
        == BODY.encode()
    )
