from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.errors import BackendError
from aws_iam_backend.login.decode import KNOWN_LOGIN_FIELDS, decode_login
from aws_iam_backend.login.rebuild import build_outbound
from aws_iam_backend.vault.config import ClientConfig
from tests.test_sts_request import NOW, SERVER_ID, botocore_post, hvac_post, presigned_get

FIELDS = sorted(KNOWN_LOGIN_FIELDS)
CONFIGS = [
    ClientConfig(),
    ClientConfig(iam_server_id_header_value=SERVER_ID),
    ClientConfig(use_sts_region_from_client=True),
    ClientConfig(sts_endpoint="https://sts.us-gov-west-1.amazonaws.com"),
    ClientConfig(sts_endpoint="http://127.0.0.1:5000", allowed_sts_header_values=("X-Custom",)),
]
VALID = [hvac_post(), botocore_post(), presigned_get(), hvac_post(region="eu-west-1")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _run(data: dict[str, Any], config: ClientConfig) -> None:
    with contextlib.suppress(BackendError):
        build_outbound(decode_login(data), config, now=NOW)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=9), st.sampled_from(CONFIGS))
def test_fuzz_arbitrary_payload(data: dict[str, Any], config: ClientConfig) -> None:
    _run(data, config)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


@st.composite
def mutated(draw: Callable[[st.SearchStrategy[Any]], Any]) -> dict[str, Any]:
    data = dict(draw(st.sampled_from(VALID)))
    field = draw(
        st.sampled_from(["iam_request_url", "iam_request_body", "headers", "method", "role"])
    )
    if field in ("iam_request_url", "iam_request_body"):
        original = base64.b64decode(data.get(field) or "").decode()
        pos = draw(st.integers(0, len(original)))
        insert = draw(st.text(max_size=8))
        cut = draw(st.integers(0, 4))
        data[field] = _b64(original[:pos] + insert + original[pos + cut :])
    elif field == "headers":
        raw = data["iam_request_headers"]
        if isinstance(raw, str):
            raw = json.loads(base64.b64decode(raw))
        headers = dict(raw)
        if headers and draw(st.booleans()):
            victim = draw(st.sampled_from(sorted(headers)))
            value = headers[victim]
            text = value[0] if isinstance(value, list) else str(value)
            pos = draw(st.integers(0, len(text)))
            headers[victim] = text[:pos] + draw(st.text(max_size=6)) + text[pos + 1 :]
        else:
            headers[draw(st.text(max_size=12))] = draw(json_values)
        data["iam_request_headers"] = headers
    elif field == "method":
        data["iam_http_request_method"] = draw(st.sampled_from(["GET", "POST", "get", "", "PUT"]))
    else:
        data["role"] = draw(json_values)
    return data


@settings(max_examples=300, deadline=None)
@given(mutated(), st.sampled_from(CONFIGS))
def test_fuzz_mutated_valid_payload(data: dict[str, Any], config: ClientConfig) -> None:
    _run(data, config)


def test_valid_payloads_accepted() -> None:
    for data in VALID:
        build_outbound(decode_login(data), ClientConfig(), now=NOW)
