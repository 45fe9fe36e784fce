"""atheris harness: login payload decoding and STS request rebuilding.

Input bytes become a JSON-ish login payload (see :func:`payload_from`); the payload goes
through ``payload.decode_login`` and then ``sts_request.build_outbound`` under a few client
configurations. A :class:`BackendError` is a normal refusal; anything else is a crash.

Run: ``python fuzz/fuzz_decoder.py -max_total_time=90`` (see fuzz/README.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

import atheris

with atheris.instrument_imports():
    from aws_iam_backend.errors import BackendError
    from aws_iam_backend.login.decode import KNOWN_LOGIN_FIELDS, decode_login
    from aws_iam_backend.login.rebuild import build_outbound
    from aws_iam_backend.vault.config import ClientConfig

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
FIELDS = sorted(KNOWN_LOGIN_FIELDS)
CONFIGS = [
    ClientConfig(),
    ClientConfig(iam_server_id_header_value="vault.example.com"),
    ClientConfig(use_sts_region_from_client=True),
    ClientConfig(sts_endpoint="https://sts.us-gov-west-1.amazonaws.com"),
    ClientConfig(sts_endpoint="http://127.0.0.1:5000", allowed_sts_header_values=("X-Custom",)),
]
URLS = [
    "https://sts.amazonaws.com/",
    "https://sts.us-east-1.amazonaws.com/",
    "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261129%2Fus-west-2%2Fsts"
    "%2Faws4_request&X-Amz-Date=20261129T120000Z&X-Amz-Expires=900"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "0" * 64,
]
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
AUTHZ = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/sts/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
)


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(4)
    if kind == 3:
        return fdp.ConsumeRegularFloat()
    if kind in (4, 5):
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    if kind == 6:
        return base64.b64encode(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 128))).decode()
    if kind == 7:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {
        fdp.ConsumeUnicodeNoSurrogates(12): _value(fdp, depth + 1)
        for _ in range(fdp.ConsumeIntInRange(0, 4))
    }


def _headers(fdp: atheris.FuzzedDataProvider) -> Any:
    headers: dict[str, Any] = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Amz-Date": "20261129T120000Z",
        "Authorization": AUTHZ,
    }
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        name = fdp.ConsumeUnicodeNoSurrogates(24)
        if fdp.ConsumeBool() and headers:
            name = fdp.PickValueInList(sorted(headers))
        headers[name] = _value(fdp, 2) if fdp.ConsumeBool() else fdp.ConsumeUnicode(80)
    shape = fdp.ConsumeIntInRange(0, 3)
    if shape == 1:
        return base64.b64encode(json.dumps(headers).encode()).decode()
    if shape == 2:
        return {k: [v] for k, v in headers.items()}
    if shape == 3:
        return _value(fdp)
    return headers


def payload_from(data: bytes) -> dict[str, Any]:
    """Mode 0: the bytes as JSON. Mode 1: arbitrary fields. Mode 2: a valid-shaped payload
    with fuzzed URL, body, headers, method and role."""
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        try:
            raw = fdp.ConsumeBytes(fdp.remaining_bytes())
            value = json.loads(raw.decode("utf-8", "surrogatepass"))
        except (ValueError, UnicodeDecodeError):
            return {}
        return value if isinstance(value, dict) else {"role": value}
    if mode == 1:
        return {
            (fdp.PickValueInList(FIELDS) if fdp.ConsumeBool() else fdp.ConsumeUnicode(10)): (
                _value(fdp)
            )
            for _ in range(fdp.ConsumeIntInRange(0, 9))
        }
    url = fdp.PickValueInList(URLS) if fdp.ConsumeBool() else fdp.ConsumeUnicode(120)
    body = BODY if fdp.ConsumeBool() else fdp.ConsumeUnicode(80)
    payload: dict[str, Any] = {
        "iam_http_request_method": fdp.PickValueInList(["POST", "GET", "post", ""]),
        "iam_request_url": base64.b64encode(url.encode("utf-8", "surrogatepass")).decode(),
        "iam_request_body": base64.b64encode(body.encode("utf-8", "surrogatepass")).decode(),
        "iam_request_headers": _headers(fdp),
    }
    if fdp.ConsumeBool():
        payload["role"] = _value(fdp)
    return payload


def TestOneInput(data: bytes) -> None:
    payload = payload_from(data)
    try:
        decoded = decode_login(payload)
    except BackendError:
        return
    for config in CONFIGS:
        with contextlib.suppress(BackendError):
            build_outbound(decoded, config, now=NOW)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
