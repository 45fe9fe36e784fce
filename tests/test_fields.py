"""Vault framework field conversions, strict JSON decoding, unrecognized-parameter warnings."""

from __future__ import annotations

import pytest

from aws_iam_backend.errors import InternalError, InvalidRequestError
from aws_iam_backend.vault.fields import (
    FieldType,
    StoredDocument,
    go_trim_space,
    loads_strict,
    parse_fields,
    unrecognized_parameters,
    unrecognized_warning,
)

PREFIX = 'Field validation failed: error converting input for field "f": '


def convert(kind: FieldType, value: object) -> object:
    return parse_fields({"f": value}, {"f": kind}).values.get("f")


def convert_error(kind: FieldType, value: object) -> str:
    with pytest.raises(InvalidRequestError) as info:
        parse_fields({"f": value}, {"f": kind})
    assert info.value.status == 400
    assert info.value.message.startswith(PREFIX)
    return info.value.message[len(PREFIX) :]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), (None, ""), (5, "5"), (True, "1"), (False, "0"), ("", "")],
)
def test_string(value: object, expected: str) -> None:
    assert convert(FieldType.STRING, value) == expected


@pytest.mark.parametrize("value", [[1], {"a": 1}, 1.5])
def test_string_refuses(value: object) -> None:
    assert "expected type 'string'" in convert_error(FieldType.STRING, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("t", True),
        ("1", True),
        ("false", False),
        ("F", False),
        ("0", False),
        ("", False),
        (None, False),
        (1, True),
        (0, False),
    ],
)
def test_bool(value: object, expected: bool) -> None:
    assert convert(FieldType.BOOL, value) is expected


def test_bool_error_text() -> None:
    assert convert_error(FieldType.BOOL, "yes") == (
        "cannot parse '' as bool: strconv.ParseBool: parsing \"yes\": invalid syntax"
    )
    assert "parsing \"2\"" in convert_error(FieldType.BOOL, 2)
    assert "expected type 'bool'" in convert_error(FieldType.BOOL, [True])


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (-1, -1), ("42", 42), ("-3", -3), ("+7", 7), ("", 0), (None, 0), (True, 1)],
)
def test_int(value: object, expected: int) -> None:
    assert convert(FieldType.INT, value) == expected


def test_int_errors() -> None:
    assert convert_error(FieldType.INT, "abc") == (
        "cannot parse '' as int: strconv.ParseInt: parsing \"abc\": invalid syntax"
    )
    assert "strconv.ParseInt: parsing \"1.5\"" in convert_error(FieldType.INT, 1.5)
    assert "expected type 'int'" in convert_error(FieldType.INT, {})
    assert "invalid syntax" in convert_error(FieldType.INT, "\u0661\u0662")  # non-ASCII digits


@pytest.mark.parametrize(
    ("value", "expected"),
    [(60, 60), ("60", 60), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("", 0), ("90s", 90)],
)
def test_duration(value: object, expected: int) -> None:
    assert convert(FieldType.DURATION, value) == expected


def test_duration_null_is_absent() -> None:
    assert not parse_fields({"f": None}, {"f": FieldType.DURATION}).has("f")


def test_duration_errors() -> None:
    assert convert_error(FieldType.DURATION, -5) == "cannot provide negative value '-5'"
    assert convert_error(FieldType.DURATION, "-1h") == "cannot provide negative value '-3600'"
    assert convert_error(FieldType.DURATION, "abc") == 'time: invalid duration "abc"'
    assert "invalid syntax" in convert_error(FieldType.DURATION, 1.5)
    assert convert_error(FieldType.DURATION, 10**30) == "duration out of range"
    assert convert_error(FieldType.DURATION, [1]) == "could not parse duration from input"
    assert convert_error(FieldType.DURATION, True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b", ("a", "b")),
        (" a , b ", ("a", "b")),
        ("a,,b", ("a", "", "b")),
        ("", ()),
        (None, ()),
        (["x, y", " z "], ("x, y", "z")),
        (123456789012, ("123456789012",)),
        ([1, "a"], ("1", "a")),
    ],
)
def test_comma_strings(value: object, expected: tuple[str, ...]) -> None:
    assert convert(FieldType.COMMA_STRINGS, value) == expected


def test_comma_strings_refuses_objects() -> None:
    assert "unconvertible" in convert_error(FieldType.COMMA_STRINGS, {"a": "b"})
    assert "unconvertible" in convert_error(FieldType.COMMA_STRINGS, [["nested"]])


def test_go_trim_space_keeps_information_separators() -> None:
    assert go_trim_space("\t a \n") == "a"
    assert go_trim_space("\x1fa\x1f") == "\x1fa\x1f"
    assert go_trim_space("\u00a0a\u3000") == "a"


def test_fields_validated_in_name_order_and_unknown_ignored() -> None:
    schema = {"a": FieldType.INT, "b": FieldType.INT}
    with pytest.raises(InvalidRequestError, match='field "a"'):
        parse_fields({"b": "x", "a": "y", "zzz": object()}, schema)


def test_typed_getters() -> None:
    got = parse_fields(
        {"s": "x", "b": "true", "i": "3", "l": "a,b"},
        {
            "s": FieldType.STRING,
            "b": FieldType.BOOL,
            "i": FieldType.INT,
            "l": FieldType.COMMA_STRINGS,
        },
    )
    assert (got.string("s"), got.boolean("b"), got.integer("i"), got.strings("l")) == (
        "x",
        True,
        3,
        ("a", "b"),
    )
    assert got.string("missing") is None


def test_attack_100_duplicate_keys_rejected() -> None:
    body = (
        '{"bound_iam_principal_arn":"arn:aws:iam::123456789012:role/app",'
        '"bound_iam_principal_arn":"*"}'
    )
    with pytest.raises(InvalidRequestError) as info:
        loads_strict(body)
    assert info.value.message == "duplicate key in request: bound_iam_principal_arn"
    assert info.value.status == 400


def test_attack_100_nested_duplicate_keys_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="duplicate key in request: a"):
        loads_strict(b'{"h": {"a": 1, "a": 2}}')


def test_loads_strict_accepts_objects_and_empty_body() -> None:
    assert loads_strict('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert loads_strict(b"") == {}
    assert loads_strict("  ") == {}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("[1]", "cannot unmarshal array"),
        ('"x"', "cannot unmarshal string"),
        ("{", "failed to parse JSON input"),
        ('{"a": NaN}', "invalid number NaN"),
        (b"\xff", "invalid UTF-8"),
        ("[" * 100_000 + "]" * 100_000, "failed to parse JSON input"),
    ],
)
def test_loads_strict_refuses(body: str | bytes, detail: str) -> None:
    with pytest.raises(InvalidRequestError, match=detail):
        loads_strict(body)


def test_unrecognized_parameters_sorted_go_list() -> None:
    data = {"zeta": 1, "role": "x", "alpha": 2}
    assert unrecognized_parameters(data, ["role"]) == ("alpha", "zeta")
    assert unrecognized_warning(data, ["role"]) == [
        "Endpoint ignored these unrecognized parameters: [alpha zeta]"
    ]
    assert unrecognized_warning({"role": 1}, ["role"]) == []


def test_stored_document_types() -> None:
    doc = StoredDocument({"s": "x", "n": 1_500_000_000, "neg": -1_500_000_000, "l": ["a"]}, "t")
    assert (doc.string("s"), doc.seconds("n"), doc.seconds("neg"), doc.strings("l")) == (
        "x",
        1,
        -1,
        ("a",),
    )
    assert (doc.string("none"), doc.boolean("none"), doc.integer("none")) == ("", False, 0)
    for method, key in ((doc.string, "n"), (doc.boolean, "s"), (doc.integer, "s")):
        with pytest.raises(InternalError, match="error decoding t"):
            method(key)
    with pytest.raises(InternalError):
        StoredDocument({"l": [1]}, "t").strings("l")
