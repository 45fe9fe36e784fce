"""The EC2 instance identity document: a strict parser and the value it yields.

- :class:`IdentityDocument`: the fields Vault reads (``instanceId``, ``accountId``,
  ``region``, ``imageId``, ``pendingTime``) and a few informational ones, validated when
  built.
- :func:`parse_identity_document`: the signed JSON bytes to an :class:`IdentityDocument`.
- :func:`pending_time`: ``pendingTime`` as an aware datetime, for Vault's reauthentication
  comparisons.

Vault unmarshals the document with Go's lenient ``encoding/json`` into a struct; here the
document must be a bounded UTF-8 JSON object without duplicate keys whose required fields
have the shapes AWS gives them. The document is only parsed after its signature has been
verified, so these checks guard against malformed AWS output, not forgeries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import attrs

from aws_iam_backend.errors import InvalidRequestError

__all__ = [
    "INSTANCE_ID",
    "MAX_DOCUMENT_BYTES",
    "IdentityDocument",
    "parse_identity_document",
    "pending_time",
]

MAX_DOCUMENT_BYTES: Final = 16 * 1024
"""Largest document accepted (AWS's are under 1 KiB)."""

INSTANCE_ID: Final = re.compile(r"i-[0-9a-f]{8,17}", re.ASCII)
"""The shape of an instance ID (``fullmatch``), wherever one is taken from a client."""

_UNMARSHAL: Final = "failed to unmarshal instance identity document"
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+){1,3}-[0-9]{1,2}")
_IMAGE_ID = re.compile(r"ami-[0-9a-f]{8,17}")
_INFO = re.compile(r"[\x21-\x7e]{0,255}")
# Go's time.RFC3339 as time.Parse accepts it: optional fraction, "Z" or a numeric offset.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:Z|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))"
)


def _shaped(pattern: re.Pattern[str], field: str) -> Callable[[object, object, str], None]:
    def check(_instance: object, _attribute: object, value: str) -> None:
        if not pattern.fullmatch(value):
            raise InvalidRequestError(f"invalid {field} in the instance identity document")

    return check


def _rfc3339(_instance: object, _attribute: object, value: str) -> None:
    _parse_rfc3339(value)


@attrs.frozen
class IdentityDocument:
    """A verified instance identity document; ``raw`` is the signed JSON.

    ``pending_time`` is kept exactly as sent (RFC 3339): Vault stores and compares it.
    Optional fields absent or ``null`` in the document are ``""``.
    """

    instance_id: str = attrs.field(validator=_shaped(INSTANCE_ID, "instanceId"))
    account_id: str = attrs.field(validator=_shaped(_ACCOUNT_ID, "accountId"))
    region: str = attrs.field(validator=_shaped(_REGION, "region"))
    image_id: str = attrs.field(validator=_shaped(_IMAGE_ID, "imageId"))
    pending_time: str = attrs.field(validator=_rfc3339)
    availability_zone: str = attrs.field(default="", validator=_shaped(_INFO, "availabilityZone"))
    instance_type: str = attrs.field(default="", validator=_shaped(_INFO, "instanceType"))
    private_ip: str = attrs.field(default="", validator=_shaped(_INFO, "privateIp"))
    raw: bytes = attrs.field(default=b"", repr=False)


_REQUIRED: Final = (
    ("instanceId", "instance_id"),
    ("accountId", "account_id"),
    ("region", "region"),
    ("imageId", "image_id"),
    ("pendingTime", "pending_time"),
)
_OPTIONAL: Final = (
    ("availabilityZone", "availability_zone"),
    ("instanceType", "instance_type"),
    ("privateIp", "private_ip"),
)


def parse_identity_document(raw: bytes) -> IdentityDocument:
    """Parse the signed document; raises :class:`InvalidRequestError` naming the problem."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidRequestError(f"{_UNMARSHAL}: larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        parsed = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{_UNMARSHAL}: not UTF-8") from None
    except RecursionError:
        raise InvalidRequestError(f"{_UNMARSHAL}: nested too deeply") from None
    except _DuplicateKeyError:
        raise InvalidRequestError(f"{_UNMARSHAL}: duplicate key") from None
    except ValueError:
        raise InvalidRequestError(f"{_UNMARSHAL}: not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError(f"{_UNMARSHAL}: not a JSON object")
    values: dict[str, str] = {}
    for key, attribute in _REQUIRED:
        value = parsed.get(key)
        if value is None:
            raise InvalidRequestError(f"instance identity document is missing {key}")
        values[attribute] = _string(key, value)
    for key, attribute in _OPTIONAL:
        value = parsed.get(key)
        if value is not None:
            values[attribute] = _string(key, value)
    return IdentityDocument(**values, raw=raw)


def pending_time(document: IdentityDocument) -> datetime:
    """``pendingTime`` as an aware UTC datetime (fractions beyond microseconds dropped)."""
    return _parse_rfc3339(document.pending_time)


def _parse_rfc3339(value: str) -> datetime:
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise InvalidRequestError("invalid pendingTime in the instance identity document")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    offset = timedelta(0)
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        offset = -offset if sign == "-" else offset
    try:
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=timezone(offset),
        )
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRequestError("invalid pendingTime in the instance identity document") from None


def _string(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"invalid {key} in the instance identity document")
    return value


class _DuplicateKeyError(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateKeyError
    return out


def _reject_constant(_name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")
