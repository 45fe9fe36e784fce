"""Go-compatible helpers: the parts of Go's standard library whose exact behaviour
Vault's wire format and error texts depend on.

- :func:`canonical_header_key` is ``textproto.CanonicalMIMEHeaderKey``;
- :func:`parse_query` is ``url.ParseQuery`` (returns pairs in order and the first error);
- :func:`go_quote` is ``strconv.Quote`` (``%q``); :func:`go_list` is ``%v`` of ``[]string``;
- :func:`format_duration` / :func:`parse_duration_seconds` are ``time.Duration.String``
  and go-secure-stdlib's ``ParseDurationSecond``;
- :func:`b64decode_std` is ``base64.StdEncoding.DecodeString`` (CR/LF skipped).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def is_token(name: str) -> bool:
    """True if ``name`` is a non-empty RFC 7230 token (valid HTTP header name)."""
    return bool(name) and _TOKEN_CHARS.issuperset(name)


def canonical_header_key(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``x-amz-date`` -> ``X-Amz-Date``.

    Names containing characters outside the token set are returned unchanged.
    """
    known = _KNOWN_CANONICAL.get(name)
    if known is not None:
        return known
    if not is_token(name):
        return name
    # A token is ASCII, so str.upper/lower touch only a-z/A-Z: upper-case the first
    # character of each "-"-separated word, lower-case the rest.
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def _canonical_table(names: Iterable[str]) -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical in names:
        for spelling in (canonical, canonical.lower()):
            table[spelling] = "-".join(w[:1].upper() + w[1:].lower() for w in spelling.split("-"))
    return table


# Fixed (never grows): the header names real clients send, as they spell them.
_KNOWN_CANONICAL = _canonical_table(
    (
        "Accept",
        "Accept-Encoding",
        "Amz-Sdk-Invocation-Id",
        "Amz-Sdk-Request",
        "Authorization",
        "Content-Length",
        "Content-Type",
        "Host",
        "User-Agent",
        "X-Amz-Content-Sha256",
        "X-Amz-Date",
        "X-Amz-Security-Token",
        "X-Amz-User-Agent",
        "X-Vault-AWS-IAM-Server-ID",
        "X-Vault-Aws-Iam-Server-Id",
        "X-Aws-Iam-Backend-Nonce",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "Action",
        "Version",
    )
)


class QueryError(ValueError):
    """A query string Go's ``url.ParseQuery`` would reject (message is Go's)."""


_HEX = frozenset("0123456789abcdefABCDEF")


def _query_unescape(s: str) -> str:
    if "%" not in s and "+" not in s:
        return s
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%":
            if i + 2 >= len(s) or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                raise QueryError(f"invalid URL escape {go_quote(s[i : i + 3])}")
            out.append(int(s[i + 1 : i + 3], 16))
            i += 3
        elif c == "+":
            out.append(0x20)
            i += 1
        else:
            out.extend(c.encode("utf-8", "surrogateescape"))
            i += 1
    return out.decode("utf-8", "surrogateescape")


def parse_query(query: str) -> list[tuple[str, str]]:
    """Parse like Go's ``url.ParseQuery``; raise :class:`QueryError` on Go's first error.

    Go keeps parsing after an error and reports one of them; so do we, reporting the
    same one (a later semicolon error replaces an earlier escape error, as in Go).
    """
    pairs: list[tuple[str, str]] = []
    error: QueryError | None = None
    for segment in query.split("&"):
        if ";" in segment:
            error = QueryError("invalid semicolon separator in query")
            continue
        if segment == "":
            continue
        key, _, value = segment.partition("=")
        try:
            pairs.append((_query_unescape(key), _query_unescape(value)))
        except QueryError as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error
    return pairs


_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (the ``%q`` verb) for a string."""
    out = ['"']
    for c in s:
        if c in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[c])
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def go_list(items: Iterable[str]) -> str:
    """Go's ``%v`` of a ``[]string``: ``[a b c]``."""
    return "[" + " ".join(items) + "]"


def format_duration(seconds: int) -> str:
    """Go's ``time.Duration.String`` for a whole number of seconds (``768h0m0s``)."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    rest = abs(seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)


class DurationError(ValueError):
    """A value that is not a duration."""


def parse_duration_seconds(value: object) -> int:
    """Seconds from an int, a digit string, ``<n>d`` or a Go duration string (``1h30m``).

    Mirrors go-secure-stdlib ``parseutil.ParseDurationSecond``; fractions of a
    second are truncated.
    """
    if isinstance(value, bool):
        raise DurationError(f"could not parse duration from {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise DurationError("duration is not a finite number")
        return int(value)
    if not isinstance(value, str):
        raise DurationError(f"could not parse duration from {type(value).__name__}")
    text = value.strip()
    if text == "":
        return 0
    if re.fullmatch(r"-?[0-9]+", text, re.ASCII):
        return int(text)
    if re.fullmatch(r"[0-9]+d", text, re.ASCII):
        return int(text[:-1]) * 86400
    return _parse_go_duration(text) // 1_000_000_000


def _parse_go_duration(text: str) -> int:
    sign = 1
    body = text
    if body[:1] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if body == "":
        raise DurationError(f"time: invalid duration {go_quote(text)}")
    total = 0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise DurationError(f"time: invalid duration {go_quote(text)}")
        number, unit = match.groups()
        whole, _, frac = number.partition(".")
        scale = _UNIT_NS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
        pos = match.end()
    return sign * total


class Base64Error(ValueError):
    """Not standard, padded base64."""


def b64decode_std(value: str) -> bytes:
    """Decode like Go's ``base64.StdEncoding``: CR and LF skipped, padding required,
    standard alphabet only."""
    cleaned = value.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(cleaned.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise Base64Error(str(exc)) from None
