"""Client side: build a Vault-compatible IAM login payload with botocore, and post it.

``build_login_payload`` signs ``sts:GetCallerIdentity`` for the regional STS host of
``region`` (partition-aware), optionally with the server-ID header and a server challenge
nonce signed, as a POST or a presigned GET. The result works against this server and
against Vault (which ignores the extra signed headers).
"""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from aws_iam_backend.login.endpoints import regional_sts_host

SERVER_ID_HEADER = "X-Vault-AWS-IAM-Server-ID"
CHALLENGE_HEADER = "X-Aws-Iam-Backend-Nonce"
INVOCATION_ID_HEADER = "Amz-Sdk-Invocation-Id"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def _credentials(source: object) -> tuple[ReadOnlyCredentials, str | None]:
    if isinstance(source, botocore.session.Session):
        creds = source.get_credentials()
        if creds is None:
            raise ValueError("no AWS credentials found in the botocore session")
        region = source.get_config_variable("region")
        return creds.get_frozen_credentials(), region if isinstance(region, str) else None
    if isinstance(source, Credentials):
        return source.get_frozen_credentials(), None
    if isinstance(source, ReadOnlyCredentials):
        return source, None
    get_credentials = getattr(source, "get_credentials", None)  # a boto3.Session
    if callable(get_credentials):
        creds = get_credentials()
        region = getattr(source, "region_name", None)
        if creds is None:
            raise ValueError("no AWS credentials found in the session")
        return creds.get_frozen_credentials(), region if isinstance(region, str) else None
    raise TypeError("expected a botocore/boto3 session or botocore credentials")


def build_login_payload(
    session_or_credentials: object,
    role: str | None = None,
    server_id: str | None = None,
    region: str | None = None,
    *,
    method: str = "POST",
    nonce: str | None = None,
) -> dict[str, Any]:
    """The JSON body for ``POST /v1/auth/<mount>/login``.

    ``region`` defaults to the session's region, then ``us-east-1``. ``method="GET"``
    makes a presigned URL (valid 15 minutes) instead of a signed POST. ``nonce`` (from
    the server's ``challenge`` endpoint) is signed in ``X-Aws-Iam-Backend-Nonce``.
    A POST also signs a random ``Amz-Sdk-Invocation-Id``, so two payloads signed within
    the same second never share a signature (which replay protection would refuse).
    """
    frozen, session_region = _credentials(session_or_credentials)
    region = region or session_region or "us-east-1"
    host = regional_sts_host(region)
    if host is None:
        raise ValueError(f"unknown AWS region: {region!r}")
    creds = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
    headers: dict[str, str] = {}
    if server_id:
        headers[SERVER_ID_HEADER] = server_id
    if nonce:
        headers[CHALLENGE_HEADER] = nonce
    payload: dict[str, Any] = {"iam_http_request_method": method}
    if method == "GET":
        request = AWSRequest(method="GET", url=f"https://{host}/?{BODY}", headers=headers)
        SigV4QueryAuth(creds, "sts", region, expires=900).add_auth(request)
        headers_out = {"Host": [host], **{k: [v] for k, v in request.headers.items()}}
        payload["iam_request_url"] = _b64(request.url or "")
    elif method == "POST":
        headers["Content-Type"] = FORM
        headers[INVOCATION_ID_HEADER] = str(uuid.uuid4())
        request = AWSRequest(method="POST", url=f"https://{host}/", data=BODY, headers=headers)
        SigV4Auth(creds, "sts", region).add_auth(request)
        headers_out = {k: [v] for k, v in request.headers.items()}
        payload["iam_request_url"] = _b64(f"https://{host}/")
        payload["iam_request_body"] = _b64(BODY)
    else:
        raise ValueError("method must be 'POST' or 'GET'")
    payload["iam_request_headers"] = _b64(json.dumps(headers_out))
    if role:
        payload["role"] = role
    return payload


def login(
    address: str,
    session_or_credentials: object,
    *,
    mount: str = "aws",
    role: str | None = None,
    server_id: str | None = None,
    region: str | None = None,
    timeout: float = 30.0,
    challenge: bool = False,
) -> dict[str, Any]:
    """Log in to a server speaking Vault's API; returns the response's ``auth`` object.

    With ``challenge``, first fetches a nonce (``PUT /v1/auth/<mount>/challenge``, this
    server's extension) and signs it into the login request.
    Raises ``urllib.error.HTTPError`` on an error status (its body holds ``errors``).
    """
    base = f"{address.rstrip('/')}/v1/auth/{mount.strip('/')}"
    if not base.startswith(("http://", "https://")):
        raise ValueError("address must be an http(s) URL")
    nonce = None
    if challenge:
        data = _put_json(f"{base}/challenge", {}, timeout)["data"]
        nonce = str(data["nonce"])
    payload = build_login_payload(session_or_credentials, role, server_id, region, nonce=nonce)
    auth: dict[str, Any] = _put_json(f"{base}/login", payload, timeout)["auth"]
    return auth


def _put_json(url: str, document: dict[str, Any], timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the caller checked the scheme
        url,
        data=json.dumps(document).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        result: dict[str, Any] = json.load(response)
    return result
