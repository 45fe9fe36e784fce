"""Strict parsing of the client's SigV4 signature shape (never verification).

Only what real SigV4 signers emit is accepted: ``AWS4-HMAC-SHA256``, a credential
scope ``<key>/<yyyymmdd>/<region>/sts/aws4_request``, a sorted lower-case
``SignedHeaders`` list and a 64-hex signature; ``X-Amz-Date`` exactly
``yyyymmddThhmmssZ`` in ASCII digits. Freshness is checked against a ``now`` passed in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.login.messages import SigV4Info

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sts"
TERMINATOR = "aws4_request"
MAX_PRESIGN_EXPIRES = 900

_ACCESS_KEY = re.compile(r"[A-Za-z0-9]{8,128}", re.ASCII)  # AWS: 16..128; AKIDEXAMPLE is 11
_SCOPE_DATE = re.compile(r"[0-9]{8}", re.ASCII)
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
_SERVICE = re.compile(r"[a-z0-9-]{1,32}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+", re.ASCII)
_HEADER_NAMES = re.compile(rf"{_HEADER_NAME.pattern}(?:;{_HEADER_NAME.pattern})*", re.ASCII)
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z", re.ASCII)
_EXPIRES = re.compile(r"[0-9]{1,4}", re.ASCII)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^\s,=]+), ?SignedHeaders=([^\s,=]+), ?Signature=([^\s,=]+)",
    re.ASCII,
)
_MAX_REGION = 64
# The well-formed header in one match: _AUTHORIZATION with every component already in its
# own grammar (_ACCESS_KEY, _SCOPE_DATE, _REGION, "sts", "aws4_request", _HEADER_NAMES,
# _SIGNATURE). It admits a subset of what the step-by-step checks admit; anything it
# refuses goes through them for the precise error.
_WELL_FORMED_AUTHORIZATION = re.compile(
    rf"AWS4-HMAC-SHA256 Credential=({_ACCESS_KEY.pattern})/({_SCOPE_DATE.pattern})/"
    rf"({_REGION.pattern})/sts/aws4_request, ?SignedHeaders=({_HEADER_NAMES.pattern}), ?"
    rf"Signature=({_SIGNATURE.pattern})",
    re.ASCII,
)


class Credential(NamedTuple):
    """The parts of ``Credential=<key>/<date>/<region>/<service>/aws4_request``."""

    access_key: str
    scope_date: str
    region: str
    service: str


class AuthorizationParts(NamedTuple):
    """A parsed ``Authorization`` header."""

    access_key: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


class PresignedParts(NamedTuple):
    """The SigV4 parameters of a presigned (query-signed) URL."""

    access_key: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    request_time: datetime
    expires: int


def _bad(message: str) -> InvalidRequestError:
    return InvalidRequestError(message)


def parse_credential(value: str) -> Credential:
    """Parse a credential scope ``<key>/<yyyymmdd>/<region>/sts/aws4_request`` strictly."""
    parts = value.split("/")
    if len(parts) != 5:
        raise _bad(
            "invalid SigV4 credential scope: expected <key>/<date>/<region>/sts/aws4_request"
        )
    key, date, region, service, terminator = parts
    if not _ACCESS_KEY.fullmatch(key):
        raise _bad("invalid SigV4 credential: malformed access key id")
    if not _SCOPE_DATE.fullmatch(date):
        raise _bad("invalid SigV4 credential scope: malformed date")
    if len(region) > _MAX_REGION or not _REGION.fullmatch(region):
        raise _bad("invalid SigV4 credential scope: malformed region")
    if not _SERVICE.fullmatch(service) or service != SERVICE:
        raise _bad("invalid SigV4 credential scope: service must be sts")
    if terminator != TERMINATOR:
        raise _bad("invalid SigV4 credential scope: terminator must be aws4_request")
    return Credential(key, date, region, service)


def parse_signed_headers(value: str) -> tuple[str, ...]:
    """Parse a ``SignedHeaders`` list: lower-case tokens, sorted, unique, containing host."""
    if not _HEADER_NAMES.fullmatch(value):  # every ";"-separated name is _HEADER_NAME
        raise _bad("invalid SigV4 SignedHeaders: names must be lower-case header names")
    names = tuple(value.split(";"))
    if list(names) != sorted(set(names)):
        raise _bad("invalid SigV4 SignedHeaders: names must be sorted and unique")
    if "host" not in names:
        raise _bad("invalid SigV4 SignedHeaders: host must be signed")
    return names


def parse_signature(value: str) -> str:
    """Check a SigV4 signature: exactly 64 lower-case hex characters."""
    if not _SIGNATURE.fullmatch(value):
        raise _bad("invalid SigV4 signature: expected 64 lower-case hex characters")
    return value


def parse_authorization_header(value: str) -> AuthorizationParts:
    """Parse ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` strictly.

    Each component appears once, in that order, separated by ``", "`` or ``","``.
    """
    fast = _WELL_FORMED_AUTHORIZATION.fullmatch(value)
    if fast is not None:
        key, date, region, signed_text, signature = fast.groups()
        names = tuple(signed_text.split(";"))
        if len(region) <= _MAX_REGION and list(names) == sorted(set(names)) and "host" in names:
            return AuthorizationParts(key, date, region, SERVICE, names, signature)
    return _parse_authorization_stepwise(value)


def _parse_authorization_stepwise(value: str) -> AuthorizationParts:
    """:func:`parse_authorization_header` one component at a time, each with its error."""
    if not value.startswith(ALGORITHM + " "):
        raise _bad("invalid Authorization header: algorithm must be AWS4-HMAC-SHA256")
    match = _AUTHORIZATION.fullmatch(value)
    if match is None:
        raise _bad(
            "invalid Authorization header: expected AWS4-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=..."
        )
    credential = parse_credential(match.group(1))
    signed = parse_signed_headers(match.group(2))
    signature = parse_signature(match.group(3))
    return AuthorizationParts(*credential, signed, signature)


def parse_amz_date(value: str) -> datetime:
    """Parse ``X-Amz-Date`` (``yyyymmddThhmmssZ``, ASCII digits only) as UTC."""
    if not _AMZ_DATE.fullmatch(value):
        raise _bad("invalid X-Amz-Date: expected yyyymmddThhmmssZ")
    try:  # fixed-width ASCII digits and "Z": ISO 8601's basic format, strptime's reading
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    # Every field must be read as written (no hour 24 rolled over to the next day).
    if parsed is None or parsed.hour != int(value[9:11]):
        raise _bad("invalid X-Amz-Date: not a valid date and time")
    return parsed


def parse_expires(value: str) -> int:
    """Parse ``X-Amz-Expires``: a decimal integer between 1 and 900."""
    if not _EXPIRES.fullmatch(value) or not 1 <= int(value) <= MAX_PRESIGN_EXPIRES:
        raise _bad(f"invalid X-Amz-Expires: must be between 1 and {MAX_PRESIGN_EXPIRES}")
    return int(value)


PRESIGN_REQUIRED = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


def parse_presigned_query(pairs: Sequence[tuple[str, str]]) -> PresignedParts:
    """Parse the SigV4 parameters of a presigned URL's (already Go-parsed) query.

    Each required parameter must appear exactly once, spelled exactly; other keys are
    ignored here (the caller applies the query allowlist).
    """
    found: dict[str, str] = {}
    for key, value in pairs:
        if key in PRESIGN_REQUIRED:
            if key in found:
                raise _bad(f"duplicate query param: {key}")
            found[key] = value
    for key in PRESIGN_REQUIRED:
        if key not in found:
            raise _bad(f"missing query param: {key}")
    if found["X-Amz-Algorithm"] != ALGORITHM:
        raise _bad("invalid X-Amz-Algorithm: must be AWS4-HMAC-SHA256")
    credential = parse_credential(found["X-Amz-Credential"])
    request_time = parse_amz_date(found["X-Amz-Date"])
    expires = parse_expires(found["X-Amz-Expires"])
    signed = parse_signed_headers(found["X-Amz-SignedHeaders"])
    signature = parse_signature(found["X-Amz-Signature"])
    return PresignedParts(*credential, signed, signature, request_time, expires)


def check_scope_date(scope_date: str, request_time: datetime) -> None:
    """The credential scope date must be the day of ``X-Amz-Date``."""
    if request_time.year >= 1000:  # strftime("%Y%m%d") without its cost
        day = f"{request_time.year}{request_time.month:02d}{request_time.day:02d}"
    else:  # the platform's %Y for years below 1000
        day = request_time.strftime("%Y%m%d")
    if scope_date != day:
        raise _bad("credential scope date does not match X-Amz-Date")


def check_freshness(
    request_time: datetime,
    now: datetime,
    *,
    max_age: timedelta,
    max_future: timedelta,
    expires: int | None = None,
) -> None:
    """Require ``now - max_age <= request_time <= now + max_future``.

    For a presigned request also ``request_time + expires >= now``.
    """
    if request_time < now - max_age:
        raise _bad("signed request is too old (X-Amz-Date outside the allowed window)")
    if request_time > now + max_future:
        raise _bad("signed request is dated in the future (X-Amz-Date outside the allowed window)")
    if expires is not None and request_time + timedelta(seconds=expires) < now:
        raise _bad("presigned request has expired (X-Amz-Date + X-Amz-Expires is past)")


def header_sigv4_info(parts: AuthorizationParts, request_time: datetime) -> SigV4Info:
    """The :class:`SigV4Info` of a header-signed request."""
    return SigV4Info(
        access_key_id=parts.access_key,
        scope_date=parts.scope_date,
        region=parts.region,
        signed_headers=parts.signed_headers,
        signature=parts.signature,
        request_time=request_time,
        presigned=False,
    )


def presigned_sigv4_info(parts: PresignedParts) -> SigV4Info:
    """The :class:`SigV4Info` of a presigned request."""
    return SigV4Info(
        access_key_id=parts.access_key,
        scope_date=parts.scope_date,
        region=parts.region,
        signed_headers=parts.signed_headers,
        signature=parts.signature,
        request_time=parts.request_time,
        presigned=True,
        expires=parts.expires,
    )
