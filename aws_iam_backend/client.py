"""Client side: build a Vault-compatible IAM login payload with botocore, and post it.

``build_login_payload`` signs ``sts:GetCallerIdentity`` for the regional STS host of
``region`` (partition-aware), optionally with the server-ID header and a server challenge
nonce signed, as a POST or a presigned GET. The result works against this server and
against Vault (which ignores the extra signed headers).

``login`` posts it; ``login_response`` runs the same flow over any ``put``, such as
:meth:`VaultClient.write`. :class:`VaultClient` is the small client of Vault's HTTP API the
CLI uses: a CA bundle or no verification, a connect timeout, one-line errors.
"""

from __future__ import annotations

import base64
import copy
import http.client
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
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


PutJSON = Callable[[str, dict[str, Any]], dict[str, Any]]
"""``put(path, document)``: PUT ``document`` to ``/v1/<path>``, return the JSON answer."""


def login_response(
    put: PutJSON,
    session_or_credentials: object,
    *,
    mount: str = "aws",
    role: str | None = None,
    server_id: str | None = None,
    region: str | None = None,
    challenge: bool = False,
) -> dict[str, Any]:
    """The IAM login flow over ``put``; returns the whole response (``auth`` holds the token).

    With ``challenge``, first fetches a nonce (``auth/<mount>/challenge``, this server's
    extension) and signs it into the login request.
    """
    base = f"auth/{mount.strip('/')}"
    nonce = None
    if challenge:
        data = put(f"{base}/challenge", {}).get("data")
        if not isinstance(data, dict) or not data.get("nonce"):
            raise ValueError("the challenge response has no nonce")
        nonce = str(data["nonce"])
    payload = build_login_payload(session_or_credentials, role, server_id, region, nonce=nonce)
    return put(f"{base}/login", payload)


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
    if not address.startswith(("http://", "https://")):
        raise ValueError("address must be an http(s) URL")
    base = f"{address.rstrip('/')}/v1/"
    response = login_response(
        lambda path, document: _put_json(base + path, document, timeout),
        session_or_credentials,
        mount=mount,
        role=role,
        server_id=server_id,
        region=region,
        challenge=challenge,
    )
    auth: dict[str, Any] = response["auth"]
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


# ------------------------------------------------------------------ Vault API client

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for an answer (Vault's client default)."""
CONNECT_TIMEOUT = 10.0
"""Seconds to connect (TCP and TLS handshake), when ``timeout`` is longer."""
MAX_RESPONSE = 4 << 20


class VaultError(Exception):
    """A request without a usable answer; ``str()`` is one line for a person."""


class VaultAPIError(VaultError):
    """The server answered with an error status; ``errors`` are its messages."""

    def __init__(self, status: int, errors: list[str]) -> None:
        self.status = status
        self.errors = errors
        super().__init__(f"Code: {status}. Errors: {'; '.join(errors)}")


class VaultClient:
    """A minimal client of Vault's HTTP API: ``request(method, path, body)``.

    ``ca_cert`` is a PEM bundle to verify the server with (default: the system's trust
    store); ``skip_verify`` turns verification off. Proxies come from the environment
    (``HTTPS_PROXY``, ``NO_PROXY``...), but never for a loopback address. Redirects are
    not followed: the token stays with the address. Connecting (TCP and TLS) may take
    ``min(timeout, CONNECT_TIMEOUT)``, waiting for the answer the rest of ``timeout``.
    """

    def __init__(
        self,
        address: str,
        token: str | None = None,
        *,
        ca_cert: str | None = None,
        skip_verify: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not address.startswith(("http://", "https://")):
            raise VaultError(f"address must be an http(s) URL, got {address!r}")
        self.address = address.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({} if _loopback(self.address) else None),
            _HTTPHandler(),
            _HTTPSHandler(_ssl_context(ca_cert, skip_verify)),
            _NoRedirects(),
        )

    def with_token(self, token: str | None) -> VaultClient:
        """The same client sending ``token`` instead."""
        other = copy.copy(self)
        other.token = token
        return other

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """``method /v1/<path>`` with the token and a JSON ``body``; the JSON answer, or None
        when there is none (204). Raises :class:`VaultAPIError` or :class:`VaultError`."""
        headers = {"X-Vault-Request": "true"}
        if self.token:
            headers["X-Vault-Token"] = self.token
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - __init__ checked the scheme
            f"{self.address}/v1/{path}", data=data, method=method, headers=headers
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw: bytes = response.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as exc:
            raise VaultAPIError(exc.code, _errors(exc)) from None
        except urllib.error.URLError as exc:
            raise VaultError(self._unreachable(exc.reason)) from None
        except TimeoutError:
            raise VaultError(f"no response from {self.address} within {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise VaultError(f"{self.address}: {_reason(exc)}") from None
        if len(raw) > MAX_RESPONSE:
            raise VaultError(f"{self.address}: response larger than {MAX_RESPONSE} bytes")
        if not raw.strip():
            return None
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise VaultError(f"{self.address}: the response is not a JSON object")
        return document

    def write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT ``body``; the JSON answer (an empty one is an error): a :data:`PutJSON`."""
        document = self.request("PUT", path, body)
        if document is None:
            raise VaultError(f"{self.address}: empty response to PUT /v1/{path}")
        return document

    def _unreachable(self, reason: object) -> str:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return (
                f"TLS certificate of {self.address} not trusted: {reason.verify_message}"
                " (give its CA with --ca-cert or VAULT_CACERT)"
            )
        if isinstance(reason, ssl.SSLError):
            hint = " (a plain HTTP server? use http://)" if "WRONG_VERSION" in str(reason) else ""
            return f"TLS handshake with {self.address} failed: {_reason(reason)}{hint}"
        if isinstance(reason, TimeoutError):
            limit = min(self.timeout, CONNECT_TIMEOUT)
            return f"cannot reach {self.address}: not connected within {limit:g}s"
        if isinstance(reason, BaseException):
            return f"cannot reach {self.address}: {_reason(reason)}"
        return f"cannot reach {self.address}: {reason}"


def _loopback(address: str) -> bool:
    """Whether ``address`` is this host: never proxied (as in Go's HTTP client)."""
    host = urllib.parse.urlsplit(address).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ssl_context(ca_cert: str | None, skip_verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_cert:
        try:
            context = ssl.create_default_context(cafile=ca_cert)
        except (OSError, ssl.SSLError) as exc:
            raise VaultError(f"cannot load CA certificate {ca_cert}: {_reason(exc)}") from None
    return context


def _reason(exc: BaseException) -> str:
    """An exception as a short phrase: ``Connection refused``, not ``[Errno 111] ...``."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _errors(exc: urllib.error.HTTPError) -> list[str]:
    """Vault's ``errors`` from an error response; else the status's reason phrase."""
    try:
        errors = json.loads(exc.read(65536)).get("errors")
    except (ValueError, AttributeError, OSError, http.client.HTTPException):
        errors = None
    finally:
        exc.close()
    if isinstance(errors, list) and errors:
        return [str(error) for error in errors]
    return [str(exc.reason)]


def _timed_connect(connection: http.client.HTTPConnection, connect: Callable[[], None]) -> None:
    """``connect`` within ``CONNECT_TIMEOUT``, then leave the rest of the timeout to reads."""
    total = connection.timeout
    if not isinstance(total, int | float):  # no timeout
        connect()
        return
    started = time.monotonic()
    connection.timeout = min(total, CONNECT_TIMEOUT)
    try:
        connect()
    finally:
        connection.timeout = total
    if connection.sock is not None:
        connection.sock.settimeout(max(total - (time.monotonic() - started), 0.001))


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        _timed_connect(self, super().connect)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        _timed_connect(self, super().connect)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._tls = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._tls)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the token is never sent to another address."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None
