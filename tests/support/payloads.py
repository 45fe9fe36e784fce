"""Login payloads built the ways real clients build them."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import hvac
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.moto_server import Keys

BODY = "Action=GetCallerIdentity&Version=2011-06-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@contextlib.contextmanager
def signing_time(when: datetime | None) -> Iterator[None]:
    """Make botocore sign as if the clock showed ``when`` (no change if None)."""
    if when is None:
        yield
        return
    naive = when.astimezone(UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        yield


def _creds(keys: Keys) -> Credentials:
    return Credentials(keys.access_key, keys.secret_key, keys.session_token)


class _CapturingAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    captured: dict[str, Any]

    def login(self, url: str, use_token: bool = True, **kwargs: Any) -> Any:
        self.captured = kwargs["json"]
        return {}


def hvac_payload(
    keys: Keys, *, role: str | None = None, server_id: str | None = None, region: str = "us-east-1"
) -> dict[str, Any]:
    """Exactly what ``hvac``'s ``iam_login`` posts (global host, Host and Content-Length in
    the map, one-element lists, base64 JSON headers, ``role`` possibly null)."""
    client = hvac.Client(url="http://127.0.0.1:1", adapter=_CapturingAdapter)
    client.auth.aws.iam_login(
        keys.access_key,
        keys.secret_key,
        session_token=keys.session_token,
        header_value=server_id,
        role=role,
        region=region,
    )
    return dict(client.adapter.captured)


def botocore_payload(
    keys: Keys,
    *,
    region: str = "eu-west-1",
    role: str | None = None,
    server_id: str | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """botocore ``SigV4Auth`` on the regional host; no Host in the map; headers as a JSON
    object of strings."""
    url = f"https://sts.{region}.amazonaws.com/"
    headers = {"Content-Type": FORM}
    if server_id is not None:
        headers["X-Vault-AWS-IAM-Server-ID"] = server_id
    request = AWSRequest(method="POST", url=url, data=BODY, headers=headers)
    with signing_time(when):
        SigV4Auth(_creds(keys), "sts", region).add_auth(request)
    payload: dict[str, Any] = {
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url),
        "iam_request_body": b64(BODY),
        "iam_request_headers": dict(request.headers.items()),
    }
    if role is not None:
        payload["role"] = role
    return payload


def go_style_payload(
    keys: Keys, *, region: str = "us-east-1", role: str | None = None, server_id: str | None = None
) -> dict[str, Any]:
    """Like Vault's CLI (Go SDK v1 ``GenerateLoginData``): global host, canonical Go header
    names, ``User-Agent``, ``content-length`` signed but neither Host nor Content-Length in
    the map, headers as base64 JSON of lists."""
    url = "https://sts.amazonaws.com/"
    headers = {
        "Content-Type": FORM,
        "Content-Length": str(len(BODY)),
        "User-Agent": "aws-sdk-go/1.55.5 (go1.22.5; linux; amd64)",
    }
    if server_id is not None:
        headers["X-Vault-Aws-Iam-Server-Id"] = server_id
    request = AWSRequest(method="POST", url=url, data=BODY, headers=headers)
    SigV4Auth(_creds(keys), "sts", region).add_auth(request)
    mapped = {k: [v] for k, v in request.headers.items() if k not in ("Content-Length", "Host")}
    payload: dict[str, Any] = {
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url),
        "iam_request_body": b64(BODY),
        "iam_request_headers": b64(json.dumps(mapped)),
    }
    if role is not None:
        payload["role"] = role
    return payload


def presigned_get_payload(
    keys: Keys, *, region: str = "us-west-2", role: str | None = None, expires: int = 900
) -> dict[str, Any]:
    """A presigned GET (SigV4 query auth), as SDK presigners make it."""
    host = f"sts.{region}.amazonaws.com"
    request = AWSRequest(method="GET", url=f"https://{host}/?{BODY}")
    SigV4QueryAuth(_creds(keys), "sts", region, expires=expires).add_auth(request)
    payload: dict[str, Any] = {
        "iam_http_request_method": "GET",
        "iam_request_url": b64(request.url),
        "iam_request_headers": {"Host": [host]},
    }
    if role is not None:
        payload["role"] = role
    return payload
