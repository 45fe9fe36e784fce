"""Vault framework field conversions (``sdk/framework/field_data.go``) and request-body helpers.

A request's ``data`` is validated against a schema (field name -> :class:`FieldType`)
before any handler logic runs, as Vault's framework does; a conversion failure is
``Field validation failed: error converting input for field "<name>": <detail>`` (400).
Conversions follow Vault's weak decoding, a little stricter where noted:

- ``STRING``: strings; ``null`` is ``""``; JSON integers and booleans become their text
  (booleans ``"1"``/``"0"``); floats, lists and objects are refused.
- ``BOOL``: booleans; strings and integers through Go's ``strconv.ParseBool``
  (``1 t T TRUE true True 0 f F FALSE false False``); ``""`` and ``null`` are false.
- ``INT``: integers; decimal strings; ``""``, ``null`` and ``false`` are 0, ``true`` is 1.
  (Go also takes ``0x``/``0o``/``0b`` prefixes; we take decimal only.)
- ``DURATION``: whole seconds from an integer, a digit string, ``<n>d`` or a Go duration
  (``1h30m``); negative values are refused; ``null`` counts as absent.
- ``COMMA_STRINGS``: a string split on ``,`` or a JSON list; each element trimmed, empty
  elements kept (callers decide); ``""`` and ``null`` are the empty list.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping

import attrs

from aws_iam_backend.errors import BackendError, InternalError, InvalidRequestError
from aws_iam_backend.vault.gocompat import DurationError, go_list, go_quote, parse_duration_seconds

MAX_DURATION_SECONDS = (2**63 - 1) // 1_000_000_000
"""Largest duration Go's ``time.Duration`` (int64 nanoseconds) can hold, in seconds."""

_GO_SPACE_EXCLUDED = frozenset("\x1c\x1d\x1e\x1f")


class FieldType(enum.Enum):
    """The framework field types the backend's endpoints use."""

    STRING = "string"
    BOOL = "bool"
    INT = "int"
    DURATION = "duration"
    COMMA_STRINGS = "comma_strings"


def go_trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace`` (Python's ``strip`` also removes U+001C..U+001F)."""
    start, end = 0, len(text)
    while start < end and _is_go_space(text[start]):
        start += 1
    while end > start and _is_go_space(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_go_space(char: str) -> bool:
    return char.isspace() and char not in _GO_SPACE_EXCLUDED


def field_error(name: str, detail: str) -> InvalidRequestError:
    """Vault's conversion error for field ``name``."""
    return InvalidRequestError(
        f"Field validation failed: error converting input for field {go_quote(name)}: {detail}"
    )


def _go_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "json.Number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def _unconvertible(expected: str, value: object) -> str:
    return f"'' expected type '{expected}', got unconvertible type '{_go_type(value)}'"


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def to_string(value: object) -> str:
    """Weakly decode to a string; raises ``ValueError`` with the detail text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    raise ValueError(_unconvertible("string", value))


def to_bool(value: object) -> bool:
    """Weakly decode to a bool; raises ``ValueError`` with the detail text."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | str):
        text = value if isinstance(value, str) else repr(value)
        if text == "":
            return False
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(
            f"cannot parse '' as bool: strconv.ParseBool: parsing {go_quote(text)}: invalid syntax"
        )
    raise ValueError(_unconvertible("bool", value))


def to_int(value: object) -> int:
    """Weakly decode to an int; raises ``ValueError`` with the detail text."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise ValueError(
            "error decoding json.Number into : strconv.ParseInt: parsing "
            f"{go_quote(repr(value))}: invalid syntax"
        )
    if isinstance(value, str):
        if value == "":
            return 0
        body = value[1:] if value[:1] in "+-" else value
        if body and body.isascii() and body.isdigit():
            return int(value)
        raise ValueError(
            f"cannot parse '' as int: strconv.ParseInt: parsing {go_quote(value)}: invalid syntax"
        )
    raise ValueError(_unconvertible("int", value))


def to_duration(value: object) -> int:
    """Seconds, like go-secure-stdlib ``ParseDurationSecond``; negative values refused."""
    if isinstance(value, float):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(repr(value))}: invalid syntax")
    if isinstance(value, list | dict):
        raise ValueError("could not parse duration from input")
    try:
        seconds = parse_duration_seconds(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if seconds < 0:
        raise ValueError(f"cannot provide negative value '{seconds}'")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError("duration out of range")
    return seconds


def _slice_element(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return to_string(value)


def to_comma_strings(value: object) -> tuple[str, ...]:
    """``parseutil.ParseCommaStringSlice``: split a string on commas or take a list; trim."""
    if value is None:
        return ()
    if isinstance(value, list):
        items = [_slice_element(item) for item in value]
    elif isinstance(value, str):
        if value == "":
            return ()
        items = value.split(",")
    elif isinstance(value, bool | int | float):
        items = [_slice_element(value)]
    else:
        raise ValueError(_unconvertible("[]string", value))
    return tuple(go_trim_space(item) for item in items)


_CONVERTERS = {
    FieldType.STRING: to_string,
    FieldType.BOOL: to_bool,
    FieldType.INT: to_int,
    FieldType.DURATION: to_duration,
    FieldType.COMMA_STRINGS: to_comma_strings,
}


@attrs.frozen
class Fields:
    """Converted request fields: what Vault's ``FieldData.GetOk`` would return.

    A name is absent when the request did not carry it (or, for durations, carried
    ``null``). The typed getters return None for absent fields.
    """

    values: Mapping[str, object]

    def has(self, name: str) -> bool:
        """True if the request set ``name``."""
        return name in self.values

    def string(self, name: str) -> str | None:
        """A ``STRING`` field."""
        value = self.values.get(name)
        assert value is None or isinstance(value, str)
        return value

    def boolean(self, name: str) -> bool | None:
        """A ``BOOL`` field."""
        value = self.values.get(name)
        assert value is None or isinstance(value, bool)
        return value

    def integer(self, name: str) -> int | None:
        """An ``INT`` or ``DURATION`` field."""
        value = self.values.get(name)
        assert value is None or (isinstance(value, int) and not isinstance(value, bool))
        return value

    def strings(self, name: str) -> tuple[str, ...] | None:
        """A ``COMMA_STRINGS`` field."""
        value = self.values.get(name)
        assert value is None or isinstance(value, tuple)
        return value


def parse_fields(data: Mapping[str, object], schema: Mapping[str, FieldType]) -> Fields:
    """Convert every schema field present in ``data`` (in name order), like Vault's
    ``FieldData.Validate``; keys outside the schema are ignored."""
    values: dict[str, object] = {}
    for name in sorted(schema):
        if name not in data:
            continue
        raw = data[name]
        kind = schema[name]
        if kind is FieldType.DURATION and raw is None:
            continue
        try:
            values[name] = _CONVERTERS[kind](raw)
        except ValueError as exc:
            raise field_error(name, str(exc)) from None
    return Fields(values)


def unrecognized_parameters(data: Mapping[str, object], known: Iterable[str]) -> tuple[str, ...]:
    """The keys of ``data`` that are not field names of the endpoint, sorted."""
    known_set = frozenset(known)
    return tuple(sorted(key for key in data if key not in known_set))


def unrecognized_warning(data: Mapping[str, object], known: Iterable[str]) -> list[str]:
    """Vault's warning ``Endpoint ignored these unrecognized parameters: [a b]`` as a
    one-element list, or ``[]`` when every key is a field of the endpoint."""
    ignored = unrecognized_parameters(data, known)
    if not ignored:
        return []
    return [f"Endpoint ignored these unrecognized parameters: {go_list(ignored)}"]


def object_without_duplicates(
    pairs: list[tuple[str, object]], error: Callable[[str], Exception]
) -> dict[str, object]:
    """The object of ``pairs``; raises ``error(key)`` for a repeated key (attack 100)."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise error(key)
        result[key] = value
    return result


def reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``json`` ``object_pairs_hook`` that refuses an object with a repeated key."""
    return object_without_duplicates(
        pairs, lambda key: InvalidRequestError(f"duplicate key in request: {key}")
    )


def _refuse_constant(name: str) -> object:
    raise InvalidRequestError(f"failed to parse JSON input: invalid number {name}")


def _parse_int(literal: str) -> int:
    """A JSON integer; one over Python's int-string limit (4,300 digits) is refused."""
    try:
        return int(literal)
    except ValueError:
        digits = len(literal.lstrip("-"))
        raise InvalidRequestError(
            f"failed to parse JSON input: integer of {digits} digits is too large"
        ) from None


def _parse_float(literal: str) -> float:
    """A JSON number with a fraction or exponent; one that overflows a float64 is refused,
    as Go's ``strconv.ParseFloat`` does (Python would make it ``inf``)."""
    value = float(literal)
    if not math.isfinite(value):
        shown = literal if len(literal) <= 32 else literal[:32] + "..."
        raise InvalidRequestError(f"failed to parse JSON input: number {shown} is out of range")
    return value


# A ``\uXXXX`` escape of a UTF-16 surrogate: only then can a decoded string hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(document: object) -> bool:
    """True if a key or string anywhere in ``document`` holds an unpaired surrogate (which
    no UTF-8 encoder, storage or log would take). Iterative: no depth limit of its own."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def loads_strict(text: str | bytes) -> dict[str, object]:
    """Decode a request body: a JSON object without duplicate keys (empty body: ``{}``).

    Whatever cannot become a value is :class:`InvalidRequestError` (400), never another
    exception: invalid UTF-8 or JSON, non-object documents, ``NaN``/``Infinity`` and
    numbers that overflow a float64 (refused as Go's decoder does), integers over Python's
    4,300-digit conversion limit, nesting deeper than the interpreter's recursion limit,
    and ``\\uXXXX`` escapes that leave an unpaired surrogate.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError("failed to parse JSON input: invalid UTF-8") from None
    if text.strip() == "":
        return {}
    try:
        document = json.loads(
            text,
            object_pairs_hook=reject_duplicate_keys,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except BackendError:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"failed to parse JSON input: {exc.msg}") from None
    except RecursionError:
        raise InvalidRequestError("failed to parse JSON input: nesting too deep") from None
    except ValueError as exc:  # any other refusal of the decoder
        raise InvalidRequestError(f"failed to parse JSON input: {type(exc).__name__}") from None
    if not isinstance(document, dict):
        kind = _go_json_kind(document)
        raise InvalidRequestError(
            f"failed to parse JSON input: json: cannot unmarshal {kind} into Go value of "
            "type map[string]interface {}"
        )
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(document):
        raise InvalidRequestError(
            "failed to parse JSON input: invalid Unicode escape (unpaired surrogate)"
        )
    return document


def _go_json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return "number"


_NS = 1_000_000_000


class StoredDocument:
    """Typed reads from a stored JSON document (Go's zero value for a missing or ``null``
    key); a value of the wrong type is storage corruption (:class:`InternalError`)."""

    def __init__(self, doc: Mapping[str, object], what: str) -> None:
        self.doc = doc
        self.what = what

    def error(self, key: str) -> InternalError:
        """The error for an unreadable ``key``."""
        return InternalError(f"error decoding {self.what}: bad value for {go_quote(key)}")

    def string(self, key: str) -> str:
        """A string (``""`` when missing)."""
        value = self.doc.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(key)
        return value

    def boolean(self, key: str) -> bool:
        """A bool (false when missing)."""
        value = self.doc.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(key)
        return value

    def integer(self, key: str) -> int:
        """An int (0 when missing)."""
        value = self.doc.get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key)
        return value

    def seconds(self, key: str) -> int:
        """A Go ``time.Duration`` (nanoseconds) as whole seconds, truncated toward zero."""
        nanoseconds = self.integer(key)
        sign = -1 if nanoseconds < 0 else 1
        return sign * (abs(nanoseconds) // _NS)

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of strings (empty when missing)."""
        value = self.doc.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key)
        return tuple(value)
