"""Property tests over WHOLE login payloads through :meth:`Backend.login` (issue item 6).

Payloads are either real botocore/Go-style/presigned payloads mutated (header names,
values, case, extra headers, URL and body variants, base64 mangling, value shapes, role
values) or arbitrary JSON. The STS stub vouches for the role's principal on every call,
so whatever the backend refuses it refuses on its own. Properties:

- ``login`` raises only :class:`BackendError` subclasses;
- a refused payload stores no token;
- an accepted payload stored exactly one token, and its one outbound request went to an
  allowed STS host with exactly the GetCallerIdentity form (POST body or GET query).

Deterministic, fixed budget (``derandomize=True``) so CI runs the same examples every time.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aws_iam_backend import Backend
from aws_iam_backend.errors import BackendError
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.login.decode import KNOWN_LOGIN_FIELDS
from aws_iam_backend.login.endpoints import lookup_sts_host
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.payloads import (
    BODY,
    botocore_payload,
    go_style_payload,
    presigned_get_payload,
    signing_time,
)
from tests.test_backend_attacks import KEYS, NOW, USER_ARN, USER_ID, FixedClock

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

with signing_time(NOW):
    BASES: list[dict[str, Any]] = [
        botocore_payload(KEYS, region="us-east-1", role="dev", when=NOW),
        botocore_payload(KEYS, region="eu-west-1", role="dev", when=NOW),
        go_style_payload(KEYS, role="dev"),
        presigned_get_payload(KEYS, region="us-west-2", role="dev"),
    ]

FIELDS = sorted(KNOWN_LOGIN_FIELDS)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=24),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)

URLS = [
    "https://sts.amazonaws.com/",
    "https://sts.us-east-1.amazonaws.com/",
    "https://sts.us-east-1.amazonaws.com",
    "https://STS.US-EAST-1.AMAZONAWS.COM/",
    "https://sts.eu-west-1.amazonaws.com/",
    "https://sts.us-gov-west-1.amazonaws.com/",
    "https://sts.cn-north-1.amazonaws.com.cn/",
    "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
    "https://sts.us-east-1.amazonaws.com/?Action=AssumeRole",
    "https://sts.us-east-1.amazonaws.com:443/",
    "https://sts.us-east-1.amazonaws.com./",
    "https://sts.us-east-1.amazonaws.com.evil.example/",
    "https://sts.amazonaws.com@evil.example/",
    "https://evil.example/",
    "https://169.254.169.254/",
    "https://[::1]/",
    "http://sts.us-east-1.amazonaws.com/",
    "https://sts.us-east-1.amazonaws.com/x",
    "https://sts.us-east-1.amazonaws.com/#frag",
    "https://sts.us-east-1.amazonaws.com/%zz",
    "https://sts.us-east-1.amazonaws.com\\@evil/",
    "//sts.amazonaws.com/",
    "",
]
BODIES = [
    BODY,
    "Action=GetCallerIdentity",
    "Version=2011-06-15&Action=GetCallerIdentity",
    "Action=GetCallerIdentity&Action=GetCallerIdentity",
    "Action=AssumeRole&RoleArn=x",
    "Action=GetCallerIdentity&Version=2011-06-15&Extra=1",
    "Action=GetCallerIdentity;Version=2011-06-15",
    "Action=GetCallerIdentity&Version=2011-06-15%",
    "",
    "\x00\xff",
]
HEADER_NAMES = [
    "Host",
    "Content-Type",
    "Content-Length",
    "Authorization",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
    "X-Vault-AWS-IAM-Server-ID",
    "User-Agent",
    "X-Forwarded-For",
    "Transfer-Encoding",
    "Connection",
    "Expect",
    "Accept-Encoding",
    "Cookie",
    "X-Custom",
    "bad header",
    "",
]
HEADER_VALUES = [
    "",
    "evil.example",
    "sts.us-east-1.amazonaws.com",
    "application/json",
    "chunked",
    "20261129T120000Z",
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/sts/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    "a\r\nInjected: yes",
    "x" * 300,
]
METHODS = ["POST", "GET", "post", "PUT", "HEAD", "", " POST"]
ROLES = ["dev", "DEV", "Dev", "", "nobody", "../dev", "dev/", "dév", "dev\x00", " dev"]


def b64(data: str | bytes) -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


@st.composite
def b64_mangled(draw: st.DrawFn, text: str) -> object:
    """``text`` base64-encoded, perhaps mangled, perhaps not a string at all."""
    encoded = b64(text)
    how = draw(st.sampled_from(["ok", "urlsafe", "nopad", "space", "cut", "junk", "raw", "shape"]))
    if how == "urlsafe":
        return encoded.replace("+", "-").replace("/", "_")
    if how == "nopad":
        return encoded.rstrip("=")
    if how == "space":
        return encoded[: len(encoded) // 2] + draw(st.sampled_from([" ", "\n", "\t"])) + encoded[
            len(encoded) // 2 :
        ]
    if how == "cut":
        return encoded[: draw(st.integers(0, max(0, len(encoded) - 1)))]
    if how == "junk":
        return encoded + draw(st.sampled_from(["=", "==", "!", "A", "===="]))
    if how == "raw":
        return text
    if how == "shape":
        return draw(st.sampled_from([[encoded], 1, None, {"v": encoded}, True, 1.5]))
    return encoded


def header_map(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The payload's headers as a dict of name -> value (str or list), or None."""
    raw = payload.get("iam_request_headers")
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, str):
        try:
            decoded = json.loads(base64.b64decode(raw))
        except ValueError:
            return None
        return dict(decoded) if isinstance(decoded, dict) else None
    return None


@st.composite
def mutated_payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                ["header_case", "header_drop", "header_add", "header_value", "header_shape",
                 "headers_container", "url", "body", "method", "role", "drop_field",
                 "extra_field", "field_shape"]
            )
        )  # fmt: skip
        headers = header_map(payload)
        if kind.startswith("header_") and headers is not None and headers:
            name = draw(st.sampled_from(sorted(headers)))
            if kind == "header_case":
                new = draw(st.sampled_from([name.lower(), name.upper(), name.swapcase()]))
                headers[new] = headers.pop(name)
            elif kind == "header_drop":
                del headers[name]
            elif kind == "header_add":
                extra = draw(st.sampled_from(HEADER_NAMES) | st.text(max_size=12))
                headers[extra] = draw(st.sampled_from(HEADER_VALUES) | st.text(max_size=20))
            elif kind == "header_value":
                headers[name] = draw(st.sampled_from(HEADER_VALUES) | st.text(max_size=40))
            else:
                value = headers[name]
                headers[name] = draw(
                    st.sampled_from([[value], [value, value], [], 7, None, {"x": value}])
                )
            payload["iam_request_headers"] = headers
        elif kind == "headers_container" and headers is not None:
            how = draw(st.sampled_from(["b64json", "json", "list", "number", "lists"]))
            if how == "b64json":
                payload["iam_request_headers"] = b64(json.dumps(headers))
            elif how == "json":
                payload["iam_request_headers"] = json.dumps(headers)
            elif how == "list":
                payload["iam_request_headers"] = list(headers.items())
            elif how == "lists":
                payload["iam_request_headers"] = {
                    k: v if isinstance(v, list) else [v] for k, v in headers.items()
                }
            else:
                payload["iam_request_headers"] = 42
        elif kind == "url":
            url = draw(st.sampled_from(URLS) | st.text(max_size=60))
            payload["iam_request_url"] = draw(b64_mangled(url))
        elif kind == "body":
            body = draw(st.sampled_from(BODIES) | st.text(max_size=60))
            payload["iam_request_body"] = draw(b64_mangled(body))
        elif kind == "method":
            payload["iam_http_request_method"] = draw(st.sampled_from(METHODS) | json_values)
        elif kind == "role":
            payload["role"] = draw(st.sampled_from(ROLES) | json_values)
        elif kind == "drop_field":
            if payload:
                del payload[draw(st.sampled_from(sorted(payload)))]
        elif kind == "extra_field":
            payload[draw(st.sampled_from(FIELDS) | st.text(max_size=10))] = draw(json_values)
        elif kind == "field_shape":
            field = draw(st.sampled_from(FIELDS))
            payload[field] = draw(json_values)
    return payload


hostile_payloads = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=9
)


def make_backend() -> tuple[Backend, MemoryStorage, RecordingTransport]:
    storage = MemoryStorage()
    transport = RecordingTransport(lambda _r: ok_response(USER_ARN, USER_ID))
    backend = Backend(
        storage=storage,
        transport=transport,
        iam=FakeIam(unique_ids={USER_ARN: USER_ID}),
        clock=FixedClock(),
    )
    backend.write_role("dev", {"bound_iam_principal_arn": USER_ARN})
    return backend, storage, transport


def check_login(payload: dict[str, Any]) -> bool:
    """Run one login and check the properties; True if it was accepted."""
    backend, storage, transport = make_backend()
    try:
        response = backend.login(payload)
    except BackendError:
        assert storage.list("token/") == []
        assert storage.list("accessor/") == []
        return False
    assert response.auth is not None
    assert backend.lookup_token(response.auth["client_token"])
    assert len(storage.list("token/")) == 1
    assert len(transport.requests) == 1
    request = transport.requests[0]
    url = urlsplit(request.url)
    assert url.scheme == "https"
    assert url.port is None
    assert url.path == "/"
    assert lookup_sts_host(url.hostname or "") is not None, request.url
    assert lookup_sts_host(request.host) is not None, request.host
    if request.method == "POST":
        assert url.query == ""
        assert_gci_form(request.body.decode("ascii"), presigned=False)
    else:
        assert request.method == "GET"
        assert request.body == b""
        assert_gci_form(url.query, presigned=True)
    return True


def assert_gci_form(query: str, *, presigned: bool) -> None:
    """``Action=GetCallerIdentity`` exactly once, ``Version=2011-06-15`` at most once, and
    (presigned GET only) the ``X-Amz-*`` signing parameters; nothing else."""
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    assert [v for k, v in pairs if k == "Action"] == ["GetCallerIdentity"]
    assert [v for k, v in pairs if k == "Version"] in ([], ["2011-06-15"])
    others = {k for k, _ in pairs if k not in ("Action", "Version")}
    if presigned:
        assert all(k.startswith("X-Amz-") for k in others), others
    else:
        assert others == set()


def test_every_base_payload_is_accepted() -> None:
    """The seeds are valid, so mutations start from payloads that get through."""
    for base in BASES:
        assert check_login(copy.deepcopy(base)), base


@FUZZ
@given(mutated_payloads())
def test_mutated_login_payloads(payload: dict[str, Any]) -> None:
    event("accepted" if check_login(payload) else "refused")


@FUZZ
@given(hostile_payloads)
def test_hostile_login_payloads(payload: dict[str, Any]) -> None:
    assert not check_login(payload)
