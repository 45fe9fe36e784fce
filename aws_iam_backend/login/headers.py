"""``iam_request_headers`` decoding: Vault's SDK ``TypeHeader`` conversion, bounded.

Accepted shapes (in Vault's order): a JSON object (already decoded by the caller); a
string holding base64 of a JSON object, or the raw JSON object text; a list of
``"name:value"`` strings. Values are a string, a list of strings, or a JSON number
(kept as its decimal text). Names are canonicalised like Go's
``textproto.CanonicalMIMEHeaderKey``; the raw spellings are kept so that "the same name
twice in any letter case" can be detected later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence

import attrs

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.vault.fields import object_without_duplicates
from aws_iam_backend.vault.gocompat import (
    Base64Error,
    b64decode_std,
    canonical_header_key,
    go_quote,
)

MAX_HEADER_NAMES = 64
MAX_VALUES_PER_NAME = 8
MAX_HEADERS_TEXT = 65536
_FIELD_ERROR = 'Field validation failed: error converting input for field "iam_request_headers": '
_MAX_ECHO = 64


def _error(detail: str) -> InvalidRequestError:
    return InvalidRequestError(_FIELD_ERROR + detail)


def short_quote(text: str, limit: int = _MAX_ECHO) -> str:
    """Go-quote ``text``, cut to ``limit`` characters (``...`` marks a cut)."""
    if len(text) > limit:
        return go_quote(text[:limit]) + "..."
    return go_quote(text)


@attrs.frozen
class HeaderMap:
    """Decoded request headers, in the client's order.

    ``entries`` holds (canonical name, values) with the values of every spelling of a
    name merged, as Go's ``http.Header.Add`` does. ``raw_names`` holds the names as the
    client spelled them, one per source entry (a list form ``name:value`` item counts
    as one entry).
    """

    entries: tuple[tuple[str, tuple[str, ...]], ...] = ()
    raw_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        return iter(self.entries)

    def names(self) -> tuple[str, ...]:
        """Canonical names, in order."""
        return tuple(name for name, _ in self.entries)

    def values(self, name: str) -> tuple[str, ...]:
        """All values of ``name`` (compared case-insensitively); empty if absent."""
        wanted = name.lower()
        found: list[str] = []
        for key, vals in self.entries:
            if key.lower() == wanted:
                found.extend(vals)
        return tuple(found)

    def get(self, name: str) -> str | None:
        """First value of ``name`` (case-insensitive), or None."""
        vals = self.values(name)
        return vals[0] if vals else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.values(name))

    def spellings(self, name: str) -> tuple[str, ...]:
        """The raw spellings the client used for ``name`` (case-insensitive)."""
        wanted = name.lower()
        return tuple(raw for raw in self.raw_names if raw.lower() == wanted)

    def repeated_names(self) -> tuple[str, ...]:
        """Canonical names given by more than one source entry (in any letter case)."""
        seen: dict[str, int] = {}
        for raw in self.raw_names:
            key = raw.lower()
            seen[key] = seen.get(key, 0) + 1
        return tuple(name for name, _ in self.entries if seen.get(name.lower(), 0) > 1)


class _Builder:
    def __init__(self) -> None:
        self.order: list[str] = []
        self.values: dict[str, list[str]] = {}
        self.raw: list[str] = []

    def add(self, raw_name: str, vals: Sequence[str]) -> None:
        raw = self.raw
        if len(raw) >= MAX_HEADER_NAMES:
            raise _error(f"more than {MAX_HEADER_NAMES} headers")
        raw.append(raw_name)
        name = canonical_header_key(raw_name)
        bucket = self.values.get(name)
        if bucket is None:
            self.order.append(name)
            bucket = self.values[name] = []
        if len(bucket) + len(vals) > MAX_VALUES_PER_NAME:
            raise _error(f"more than {MAX_VALUES_PER_NAME} values for header {short_quote(name)}")
        bucket.extend(vals)

    def build(self) -> HeaderMap:
        values = self.values
        return HeaderMap(
            entries=tuple([(name, tuple(values[name])) for name in self.order]),
            raw_names=tuple(self.raw),
        )


def _scalar(value: object) -> str | None:
    """A header value as text, or None if it is not a string or JSON number."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return repr(value)
    if isinstance(value, _JsonNumber):
        return value.text
    return None


class _JsonNumber:
    """A JSON number kept as its literal text (Go's ``json.Number``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _from_mapping(data: Mapping[object, object]) -> HeaderMap:
    if len(data) > MAX_HEADER_NAMES:
        raise _error(f"more than {MAX_HEADER_NAMES} headers")
    builder = _Builder()
    for key, value in data.items():
        if not isinstance(key, str):
            raise _error("header names must be strings")
        if type(value) is str:  # the common case, as _scalar would answer it
            builder.add(key, (value,))
            continue
        text = _scalar(value)
        if text is not None:
            builder.add(key, (text,))
            continue
        if isinstance(value, list | tuple):
            if len(value) > MAX_VALUES_PER_NAME:
                raise _error(
                    f"more than {MAX_VALUES_PER_NAME} values for header "
                    f"{short_quote(canonical_header_key(key))}"
                )
            vals: list[str] = []
            for item in value:
                item_text = _scalar(item)
                if item_text is None:
                    raise _error(f"received non-string value for header key:{short_quote(key)}")
                vals.append(item_text)
            builder.add(key, vals)
            continue
        raise _error(f"unrecognized type for header key:{short_quote(key)}")
    return builder.build()


def _check_nesting(text: str, limit: int = 2) -> None:
    """Reject JSON text nested deeper than ``limit`` without parsing it (no recursion)."""
    depth = 0
    in_string = False
    escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > limit:
                raise _error("headers JSON is nested too deeply")
        elif c in "]}":
            depth -= 1


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    return object_without_duplicates(
        pairs, lambda key: _error(f"duplicate header key {short_quote(key)} in JSON")
    )


def _reject_constant(name: str) -> object:
    raise _error(f"invalid JSON number {name}")


def _from_text(raw: str) -> HeaderMap:
    if len(raw) > MAX_HEADERS_TEXT:
        raise _error(f"headers text exceeds {MAX_HEADERS_TEXT} bytes")
    try:
        text = b64decode_std(raw).decode("utf-8")
    except (Base64Error, UnicodeDecodeError):
        text = raw
    _check_nesting(text)
    try:
        parsed = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_JsonNumber,
            parse_float=_JsonNumber,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise _error(f"invalid JSON: {exc.msg} at offset {exc.pos}") from None
    except RecursionError:  # pragma: no cover - prevented by _check_nesting
        raise _error("headers JSON is nested too deeply") from None
    if not isinstance(parsed, dict):
        raise _error("headers JSON is not an object")
    return _from_mapping(parsed)


def _from_list(items: Sequence[object]) -> HeaderMap:
    if len(items) > MAX_HEADER_NAMES:
        raise _error(f"more than {MAX_HEADER_NAMES} headers")
    builder = _Builder()
    for item in items:
        if not isinstance(item, str):
            raise _error("invalid key pair: list items must be strings")
        name, sep, value = item.partition(":")
        if not sep or name == "":
            raise _error(f"invalid key pair {short_quote(item)}")
        builder.add(name, (value,))
    return builder.build()


def decode_headers(raw: object) -> HeaderMap:
    """Decode ``iam_request_headers`` like Vault's ``TypeHeader``; None gives an empty map.

    Raises :class:`InvalidRequestError` with Vault's ``Field validation failed`` prefix.
    """
    if raw is None:
        return HeaderMap()
    if isinstance(raw, Mapping):
        return _from_mapping(raw)
    if isinstance(raw, str):
        return _from_text(raw)
    if isinstance(raw, list | tuple):
        return _from_list(raw)
    raise _error(f"{type(raw).__name__} not provided an expected format")
