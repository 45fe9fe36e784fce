from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.login import sigv4
from aws_iam_backend.login.sigv4 import (
    check_freshness,
    check_scope_date,
    parse_amz_date,
    parse_authorization_header,
    parse_expires,
    parse_presigned_query,
)

SIG = "0268ea4a725deae1116f5228d6b177fb047f9f3a9e1c5fd4baa0dc1fbb0d1a99"
CRED = "AKIDEXAMPLE12345/20150830/us-east-1/sts/aws4_request"
GOOD = (
    f"AWS4-HMAC-SHA256 Credential={CRED}, "
    f"SignedHeaders=content-type;host;x-amz-date, Signature={SIG}"
)
NOW = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def fresh(when: datetime, now: datetime, expires: int | None = None) -> None:
    check_freshness(
        when, now, max_age=timedelta(minutes=15), max_future=timedelta(minutes=5), expires=expires
    )


def _bad(fn: Callable[..., object], *args: object) -> str:
    with pytest.raises(InvalidRequestError) as info:
        fn(*args)
    return info.value.message


def test_parse_authorization_header() -> None:
    parts = parse_authorization_header(GOOD)
    assert parts == (
        "AKIDEXAMPLE12345",
        "20150830",
        "us-east-1",
        "sts",
        ("content-type", "host", "x-amz-date"),
        SIG,
    )
    assert parse_authorization_header(GOOD.replace(", ", ",")) == parts


@pytest.mark.parametrize(
    "value",
    [
        GOOD + ", SignedHeaders=host;x-amz-date;x-vault-aws-iam-server-id",
        GOOD.replace("Signature=", "SignedHeaders=host, Signature="),
        GOOD + " ",
        " " + GOOD,
        GOOD.replace(", ", ",  "),
        GOOD.replace("Credential", "credential"),
        f"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Credential={CRED}, Signature={SIG}",
        f"AWS4-HMAC-SHA256 Credential={CRED}, Signature={SIG}",
        GOOD + "\n",
    ],
)
def test_attack_40_duplicate_or_misordered_components(value: str) -> None:
    _bad(parse_authorization_header, value)


@pytest.mark.parametrize(
    "value",
    [
        GOOD.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
        GOOD.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
        GOOD.replace("AWS4-HMAC-SHA256", "aws4-hmac-sha256"),
    ],
)
def test_attack_42_wrong_algorithm(value: str) -> None:
    assert "algorithm" in _bad(parse_authorization_header, value)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/sts/", "/s3/"),
        ("aws4_request", "aws4_requests"),
        ("AKIDEXAMPLE12345", "AKIDEXA"),
        ("AKIDEXAMPLE12345", "AKID_EXAMPLE12345"),
        ("AKIDEXAMPLE12345", "A" * 129),
        ("20150830", "2015083"),
        ("us-east-1", "attacker.example?"),
        ("us-east-1", "us-east-1\n"),
        ("us-east-1", "US-EAST-1"),
        ("/us-east-1/", "/us-east-1/extra/"),
    ],
)
def test_attack_43_bad_credential_scope(old: str, new: str) -> None:
    _bad(parse_authorization_header, GOOD.replace(old, new))


@pytest.mark.parametrize(
    "signed",
    [
        "x-amz-date",
        "host;content-type",
        "Content-Type;host;x-amz-date",
        "host;host;x-amz-date",
        "content-type;;host",
        "host;x amz",
    ],
)
def test_attack_44_signed_headers_shape(signed: str) -> None:
    _bad(parse_authorization_header, GOOD.replace("content-type;host;x-amz-date", signed))


@pytest.mark.parametrize(
    "sig",
    [SIG.upper(), SIG[:-1], SIG + "0", "g" * 64, "٠" * 64],  # noqa: RUF001
)
def test_signature_must_be_64_lower_hex(sig: str) -> None:
    _bad(parse_authorization_header, GOOD.replace(SIG, sig))


def test_parse_amz_date() -> None:
    assert parse_amz_date("20150830T123600Z") == NOW


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-01T00:00:00Z",
        "20250101T000000",
        "20250101T000000z",
        "\u0662\u0660\u0662\u0665\u0660\u0661\u0660\u0661T000000Z",
        "20251301T000000Z",
        "20250101T250000Z",
        "20250101T000000Z\n",
        " 20250101T000000Z",
    ],
)
def test_attack_65_bad_amz_date(value: str) -> None:
    _bad(parse_amz_date, value)


def test_attack_65_date_far_future_is_stale() -> None:
    when = parse_amz_date("99991231T235959Z")
    with pytest.raises(InvalidRequestError):
        fresh(when, NOW)


def test_attack_67_scope_date_mismatch() -> None:
    check_scope_date("20150830", NOW)
    assert "scope date" in _bad(check_scope_date, "20150829", NOW)


def test_attack_63_too_old() -> None:
    fresh(NOW - timedelta(minutes=15), NOW)
    with pytest.raises(InvalidRequestError, match="too old"):
        fresh(NOW - timedelta(minutes=15, seconds=1), NOW)
    with pytest.raises(InvalidRequestError, match="too old"):
        check_freshness(
            NOW - timedelta(minutes=6),
            NOW,
            max_age=timedelta(minutes=5),
            max_future=timedelta(minutes=5),
        )


def test_attack_64_future() -> None:
    fresh(NOW + timedelta(minutes=5), NOW)
    with pytest.raises(InvalidRequestError, match="future"):
        fresh(NOW + timedelta(minutes=10), NOW)


@pytest.mark.parametrize("value", ["0", "901", "604800", "-1", "abc", "", "+5", "\u0665", "1.0"])
def test_attack_68_bad_expires(value: str) -> None:
    _bad(parse_expires, value)


def test_attack_68_presign_expired() -> None:
    fresh(NOW - timedelta(minutes=10), NOW, expires=900)
    with pytest.raises(InvalidRequestError, match="expired"):
        fresh(NOW - timedelta(minutes=10), NOW, expires=60)
    with pytest.raises(InvalidRequestError, match="too old"):
        fresh(NOW - timedelta(hours=2), NOW, expires=900)


PRESIGNED = [
    ("Action", "GetCallerIdentity"),
    ("Version", "2011-06-15"),
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ("X-Amz-Credential", CRED),
    ("X-Amz-Date", "20150830T123600Z"),
    ("X-Amz-Expires", "900"),
    ("X-Amz-SignedHeaders", "host"),
    ("X-Amz-Signature", SIG),
]


def test_parse_presigned_query() -> None:
    parts = parse_presigned_query(PRESIGNED)
    assert parts.region == "us-east-1"
    assert parts.expires == 900
    assert parts.signed_headers == ("host",)
    assert parts.request_time == NOW


@pytest.mark.parametrize("drop", [k for k, _ in PRESIGNED if k.startswith("X-Amz")])
def test_presigned_missing_param(drop: str) -> None:
    assert drop in _bad(parse_presigned_query, [p for p in PRESIGNED if p[0] != drop])


def test_presigned_duplicate_and_algorithm() -> None:
    _bad(parse_presigned_query, [*PRESIGNED, ("X-Amz-Date", "20150830T123600Z")])
    bad = [(k, "AWS4-ECDSA-P256-SHA256" if k == "X-Amz-Algorithm" else v) for k, v in PRESIGNED]
    _bad(parse_presigned_query, bad)


def _outcome(fn: Callable[[str], object], value: str) -> object:
    try:
        return fn(value)
    except InvalidRequestError as exc:
        return ("error", exc.message)


_PIECES = st.sampled_from(
    [
        "AWS4-HMAC-SHA256 ",
        "Credential=",
        "AKIDEXAMPLE12345",
        "AKID",
        "/",
        "20150830",
        "2015083",
        "us-east-1",
        "US-EAST-1",
        "a" * 70,
        "sts",
        "s3",
        "aws4_request",
        ", ",
        ",",
        " ",
        "SignedHeaders=",
        "host",
        "content-type",
        "x-amz-date",
        ";",
        "Host",
        "Signature=",
        SIG,
        SIG.upper(),
        "=",
        "-",
        "\u0661",
        "\n",
        "x",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=24).map("".join))
def test_authorization_fast_path_agrees_with_stepwise(value: str) -> None:
    """The one-regex fast path answers exactly as the component-by-component checks."""
    assert _outcome(parse_authorization_header, value) == _outcome(
        sigv4._parse_authorization_stepwise, value
    )


@pytest.mark.parametrize(
    "value",
    [
        GOOD,
        GOOD.replace(", ", ","),
        GOOD.replace("us-east-1", "a" * 65),
        GOOD.replace("us-east-1", "a" * 64),
        GOOD.replace("content-type;host;x-amz-date", "host;content-type"),
        GOOD.replace("content-type;host;x-amz-date", "host;host"),
        GOOD.replace("content-type;host;x-amz-date", "content-type;x-amz-date"),
        GOOD.replace("content-type;host;x-amz-date", "host"),
    ],
)
def test_authorization_fast_path_edges(value: str) -> None:
    assert _outcome(parse_authorization_header, value) == _outcome(
        sigv4._parse_authorization_stepwise, value
    )


def _amz_date_by_fields(value: str) -> object:
    """strptime's reading of yyyymmddThhmmssZ, field by field (the reference)."""
    if len(value) != 16 or not value.isascii() or value[8] != "T" or value[15] != "Z":
        return "error"
    digits = value[:8] + value[9:15]
    if not digits.isdigit():
        return "error"
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        return "error"


@settings(max_examples=1000, deadline=None)
@given(
    st.tuples(
        st.text("0123456789", min_size=8, max_size=8),
        st.sampled_from(["T", "t", " "]),
        st.text("0123456789", min_size=6, max_size=6) | st.sampled_from(["240000", "235960"]),
        st.sampled_from(["Z", "z", "+00:00", ""]),
    ).map("".join)
)
def test_parse_amz_date_reads_every_field(value: str) -> None:
    try:
        ours: object = parse_amz_date(value)
    except InvalidRequestError:
        ours = "error"
    assert ours == _amz_date_by_fields(value)
    if isinstance(ours, datetime):
        assert ours.utcoffset() == timedelta(0)
