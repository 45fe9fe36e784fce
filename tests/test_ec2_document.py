"""The instance identity document parser (aws_iam_backend.ec2.document)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.ec2.document import (
    MAX_DOCUMENT_BYTES,
    IdentityDocument,
    parse_identity_document,
    pending_time,
)
from aws_iam_backend.errors import InvalidRequestError

# A genuine document as AWS serves it (from the rsa2048 PKCS#7 vector in test_ec2_pkcs7.py).
AWS_DOCUMENT = b"""{
  "accountId" : "189292791360",
  "architecture" : "arm64",
  "availabilityZone" : "ap-southeast-2a",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0cbde744623b7506b",
  "instanceId" : "i-0c5541936caf78c12",
  "instanceType" : "t4g.small",
  "kernelId" : null,
  "pendingTime" : "2026-02-16T00:38:27Z",
  "privateIp" : "10.0.1.242",
  "ramdiskId" : null,
  "region" : "ap-southeast-2",
  "version" : "2017-09-30"
}"""

BASE: dict[str, Any] = {
    "instanceId": "i-f79fe56c",
    "accountId": "121659014334",
    "region": "us-east-1",
    "imageId": "ami-fce3c696",
    "pendingTime": "2016-04-08T03:01:38Z",
}


def document(**changes: Any) -> bytes:
    fields = {**BASE, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


def refused(raw: bytes) -> str:
    with pytest.raises(InvalidRequestError) as info:
        parse_identity_document(raw)
    assert info.value.status == 400
    return info.value.message


def test_aws_document() -> None:
    parsed = parse_identity_document(AWS_DOCUMENT)
    assert parsed == IdentityDocument(
        instance_id="i-0c5541936caf78c12",
        account_id="189292791360",
        region="ap-southeast-2",
        image_id="ami-0cbde744623b7506b",
        pending_time="2026-02-16T00:38:27Z",
        availability_zone="ap-southeast-2a",
        instance_type="t4g.small",
        private_ip="10.0.1.242",
        raw=AWS_DOCUMENT,
    )
    assert pending_time(parsed) == datetime(2026, 2, 16, 0, 38, 27, tzinfo=UTC)
    assert "raw" not in repr(parsed)


def test_optional_fields_absent_or_null_are_empty() -> None:
    parsed = parse_identity_document(document(privateIp=None, instanceType=...))
    assert (parsed.availability_zone, parsed.instance_type, parsed.private_ip) == ("", "", "")


@pytest.mark.parametrize("key", ["instanceId", "accountId", "region", "imageId", "pendingTime"])
@pytest.mark.parametrize("absent", [..., None])
def test_required_field_missing(key: str, absent: Any) -> None:
    message = refused(document(**{key: absent}))
    assert message == f"instance identity document is missing {key}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("instanceId", "i-1234567"),
        ("instanceId", "i-1234567890abcdef01"),
        ("instanceId", "i-ABCDEF12"),
        ("instanceId", "i-f79fe56c\n"),
        ("instanceId", 12345678),
        ("accountId", "12165901433"),
        ("accountId", "١٢١٦٥٩٠١٤٣٣٤"),  # Arabic-Indic digits are not [0-9]
        ("accountId", 121659014334),
        ("region", "US-EAST-1"),
        ("region", "us-east"),
        ("region", "us-east-1 "),
        ("region", ["us-east-1"]),
        ("imageId", "ami-xyz"),
        ("imageId", "ami-fce3c696 "),
        ("pendingTime", "2016-04-08 03:01:38Z"),
        ("pendingTime", "2016-04-08t03:01:38z"),
        ("pendingTime", "2016-04-08T03:01:38"),
        ("pendingTime", "2016-13-08T03:01:38Z"),
        ("pendingTime", "2016-02-30T03:01:38Z"),
        ("pendingTime", "2016-04-08T24:00:00Z"),
        ("pendingTime", "2016-04-08T03:01:60Z"),
        ("pendingTime", "2016-04-08T03:01:38+24:00"),
        ("pendingTime", "2016-04-08T03:01:38+05:60"),
        ("pendingTime", "2016-04-08T03:01:38.1234567890Z"),
        ("pendingTime", "0000-01-01T00:00:00Z"),
        ("pendingTime", 1460084498),
        ("availabilityZone", 1),
        ("privateIp", "10.0.0.1 spoof"),
        ("instanceType", "t2.micro\n"),
    ],
)
def test_field_malformed(key: str, value: Any) -> None:
    assert refused(document(**{key: value})) == f"invalid {key} in the instance identity document"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-04-08T03:01:38Z", datetime(2016, 4, 8, 3, 1, 38, tzinfo=UTC)),
        ("2016-04-08T05:31:38+02:30", datetime(2016, 4, 8, 3, 1, 38, tzinfo=UTC)),
        ("2016-04-07T23:01:38-04:00", datetime(2016, 4, 8, 3, 1, 38, tzinfo=UTC)),
        ("2016-04-08T03:01:38.5Z", datetime(2016, 4, 8, 3, 1, 38, 500000, tzinfo=UTC)),
        ("2016-04-08T03:01:38.123456789Z", datetime(2016, 4, 8, 3, 1, 38, 123456, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_pending_time(value: str, expected: datetime) -> None:
    parsed = parse_identity_document(document(pendingTime=value))
    assert parsed.pending_time == value  # kept exactly as sent
    assert pending_time(parsed) == expected
    assert pending_time(parsed).tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"\xef\xbb\xbf" + document(), "not valid JSON"),  # a UTF-8 byte order mark
        (b"[]", "not a JSON object"),
        (b'"i-f79fe56c"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (document()[:-1], "not valid JSON"),
        (document() + b"{}", "not valid JSON"),
        (document()[:-1] + b', "instanceId": "i-f79fe56d"}', "duplicate key"),
        (document()[:-1] + b', "x": {"a": 1, "a": 2}}', "duplicate key"),
        (document()[:-1] + b', "x": NaN}', "not valid JSON"),
        (document()[:-1] + b', "x": -Infinity}', "not valid JSON"),
        (document()[:-1] + b', "x": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (document()[:-1] + b', "pad": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}', "larger than"),
    ],
)
def test_document_malformed(raw: bytes, reason: str) -> None:
    message = refused(raw)
    assert message.startswith(f"failed to unmarshal instance identity document: {reason}")
    assert len(message) < 120  # one line, no echo of the input


def test_unknown_fields_and_nested_values_ignored() -> None:
    raw = document(marketplaceProductCodes=["1abc"], tags={"a": [1, 2.5, None, True]}, n=1e308)
    assert parse_identity_document(raw).instance_id == "i-f79fe56c"


def test_value_object_validates_when_built() -> None:
    with pytest.raises(InvalidRequestError, match="invalid accountId"):
        IdentityDocument("i-f79fe56c", "1", "us-east-1", "ami-fce3c696", "2016-04-08T03:01:38Z")


# --- properties ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
field_keys = st.sampled_from([*BASE, "availabilityZone", "instanceType", "privateIp"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_parse_or_refuse(raw: bytes) -> None:
    with contextlib.suppress(InvalidRequestError):
        parse_identity_document(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_keys | st.text(max_size=12), json_values, max_size=8))
def test_any_json_object_parses_or_refuses(fields: dict[str, Any]) -> None:
    raw = json.dumps({**BASE, **fields}).encode()
    try:
        parsed = parse_identity_document(raw)
    except InvalidRequestError as exc:
        message = exc.message
    else:
        assert parsed.raw == raw
        assert pending_time(parsed).tzinfo is UTC
        return
    assert "\n" not in message


@settings(max_examples=200, deadline=None)
@given(
    instance=st.from_regex(r"\Ai-[0-9a-f]{8,17}\Z"),
    account=st.from_regex(r"\A[0-9]{12}\Z"),
    region=st.from_regex(r"\A[a-z]{2}(-[a-z]{1,8}){1,3}-[0-9]{1,2}\Z"),
    moment=st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)),
)
def test_well_formed_documents_round_trip(
    instance: str, account: str, region: str, moment: datetime
) -> None:
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    raw = document(instanceId=instance, accountId=account, region=region, pendingTime=stamp)
    parsed = parse_identity_document(raw)
    assert (parsed.instance_id, parsed.account_id, parsed.region) == (instance, account, region)
    assert pending_time(parsed) == moment
