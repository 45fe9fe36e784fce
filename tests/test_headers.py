from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.errors import BackendError, InvalidRequestError
from aws_iam_backend.login.headers import (
    MAX_HEADER_NAMES,
    MAX_VALUES_PER_NAME,
    HeaderMap,
    decode_headers,
)

PREFIX = 'Field validation failed: error converting input for field "iam_request_headers": '


def _err(raw: object) -> str:
    with pytest.raises(InvalidRequestError) as info:
        decode_headers(raw)
    assert info.value.status == 400
    assert info.value.message.startswith(PREFIX)
    return info.value.message[len(PREFIX) :]


def test_object_with_string_and_list_values() -> None:
    h = decode_headers({"x-amz-date": "20240101T000000Z", "Content-Type": ["a", "b"]})
    assert h.entries == (("X-Amz-Date", ("20240101T000000Z",)), ("Content-Type", ("a", "b")))
    assert h.get("X-AMZ-DATE") == "20240101T000000Z"
    assert h.values("content-type") == ("a", "b")
    assert "x-amz-date" in h
    assert h.get("missing") is None


def test_number_values_become_decimal_text() -> None:
    h = decode_headers({"Content-Length": 43, "X": [1.5]})
    assert h.values("Content-Length") == ("43",)
    assert h.values("X") == ("1.5",)


def test_json_number_literal_kept_from_text() -> None:
    h = decode_headers('{"Content-Length": 43, "X": 1e3}')
    assert h.values("Content-Length") == ("43",)
    assert h.values("X") == ("1e3",)


def test_base64_json_string() -> None:
    raw = base64.b64encode(json.dumps({"Host": ["sts.amazonaws.com"]}).encode()).decode()
    assert decode_headers(raw).values("host") == ("sts.amazonaws.com",)


def test_raw_json_string() -> None:
    assert decode_headers('{"host": "sts.amazonaws.com"}').names() == ("Host",)


def test_list_of_name_value() -> None:
    h = decode_headers(["content-type:application/json", "X-A:b:c"])
    assert h.entries == (("Content-Type", ("application/json",)), ("X-A", ("b:c",)))


def test_list_bad_pair() -> None:
    assert _err(["novalue"]).startswith("invalid key pair")
    assert _err([":x"]).startswith("invalid key pair")
    assert _err([1]).startswith("invalid key pair")


def test_none_is_empty() -> None:
    assert decode_headers(None) == HeaderMap()


@pytest.mark.parametrize("value", [True, None, {"a": "b"}, ["a", ["b"]], [None], float("nan")])
def test_attack_49_bad_value_types(value: object) -> None:
    _err({"X-Amz-Date": value})


@pytest.mark.parametrize("raw", ["[1,2]", '"str"', "5", "not json", 5, 1.5, True])
def test_attack_49_bad_top_level(raw: object) -> None:
    _err(raw)


def test_attack_84_deep_nesting_is_400_not_recursion() -> None:
    deep = "[" * 30_000 + "]" * 30_000
    assert "nested" in _err(deep)
    deep_obj = '{"a":' * 10_000 + "1" + "}" * 10_000
    assert "nested" in _err(deep_obj)
    nested: object = "x"
    for _ in range(10_000):
        nested = [nested]
    _err({"A": nested})
    _err(nested)


def test_attack_83_too_many_names_and_values() -> None:
    _err({f"X-H{i}": "v" for i in range(MAX_HEADER_NAMES + 1)})
    _err({"X": ["v"] * (MAX_VALUES_PER_NAME + 1)})
    _err([f"X:{i}" for i in range(MAX_VALUES_PER_NAME + 1)])
    _err([f"X{i}:v" for i in range(MAX_HEADER_NAMES + 1)])


def test_duplicate_json_keys_rejected() -> None:
    assert "duplicate" in _err('{"A": "1", "A": "2"}')


def test_case_variants_merged_but_remembered() -> None:
    h = decode_headers({"Authorization": "a", "authorization": "b", "Host": "h"})
    assert h.values("Authorization") == ("a", "b")
    assert h.repeated_names() == ("Authorization",)
    assert h.spellings("AUTHORIZATION") == ("Authorization", "authorization")


def test_non_token_names_left_as_is() -> None:
    h = decode_headers({"X_Amz Date": "v"})
    assert h.names() == ("X_Amz Date",)


def test_long_names_not_reflected_in_full() -> None:
    msg = _err({"X" * 5000: [None]})
    assert len(msg) < 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_decode_headers_only_backend_errors(raw: object) -> None:
    with contextlib.suppress(BackendError):
        decode_headers(raw)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_decode_headers_text_only_backend_errors(raw: object) -> None:
    for text in (json.dumps(raw), base64.b64encode(json.dumps(raw).encode()).decode()):
        with contextlib.suppress(BackendError):
            decode_headers(text)
