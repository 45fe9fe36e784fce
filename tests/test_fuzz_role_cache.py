"""role_from_storage's cache of decoded roles: it must answer exactly as a fresh decode."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.errors import InternalError
from aws_iam_backend.vault import roles
from aws_iam_backend.vault.roles import ROLE_VERSION, role_from_storage

ARN = "arn:aws:iam::123456789012:role/app"


def v3_doc(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "role_id": "0f1e",
        "auth_type": "iam",
        "bound_ami_id_list": None,
        "bound_iam_principal_arn_list": [ARN],
        "bound_iam_principal_id_list": ["AROAX"],
        "resolve_aws_unique_ids": True,
        "hmac_key": "k",
        "version": ROLE_VERSION,
        "ttl": 0,
        "policies": None,
        "token_bound_cidrs": ["10.0.0.0/8"],
        "token_no_default_policy": False,
        "token_num_uses": 0,
        "token_policies": ["dev"],
        "token_type": 0,
        "token_ttl": 1_500_000_000,
    }
    doc.update(overrides)
    return doc


def fresh(name: str, doc: dict[str, object]) -> object:
    """A decode that never looks at the cache (the reference), or its error."""
    try:
        return roles._decode_role(name, doc, new_role_id=lambda: "new", resolve_unique_id=None)
    except InternalError as exc:
        return ("error", exc.message)


def cached(name: str, doc: dict[str, object]) -> object:
    try:
        return role_from_storage(name, doc, new_role_id=lambda: "new")
    except InternalError as exc:
        return ("error", exc.message)


def test_repeated_reads_share_one_decoded_role() -> None:
    name = f"r-{uuid.uuid4()}"
    first = role_from_storage(name, v3_doc())
    assert role_from_storage(name, v3_doc()) is first
    assert first == fresh(name, v3_doc())


def test_a_changed_document_is_decoded_again() -> None:
    name = f"r-{uuid.uuid4()}"
    role_from_storage(name, v3_doc())
    changed = role_from_storage(name, v3_doc(token_policies=["ops"]))
    assert changed.token.token_policies == ("ops",)
    assert role_from_storage(name, v3_doc(token_policies=["ops"], hmac_key="z")).hmac_key == "z"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("resolve_aws_unique_ids", 1),  # == True, but not a bool
        ("token_no_default_policy", 0),  # == False
        ("token_num_uses", False),  # == 0, but a bool
        ("token_num_uses", 0.0),  # == 0, but a float
        ("token_ttl", 1_500_000_000.0),
        ("version", 3.0),
    ],
)
def test_equal_values_of_another_type_are_not_served_from_the_cache(
    key: str, value: object
) -> None:
    name = f"r-{uuid.uuid4()}"
    role_from_storage(name, v3_doc())
    doc = v3_doc(**{key: value})
    assert doc == v3_doc()  # equal by value...
    assert cached(name, doc) == fresh(name, doc)  # ...yet decoded (and refused) afresh
    if key != "version":
        with pytest.raises(InternalError):
            role_from_storage(name, doc)


def test_the_callers_document_is_not_kept() -> None:
    name = f"r-{uuid.uuid4()}"
    doc = v3_doc()
    role = role_from_storage(name, doc)
    principal_ids = doc["bound_iam_principal_id_list"]
    assert isinstance(principal_ids, list)
    principal_ids.append("AROAY")  # mutating the caller's copy after the call
    again = role_from_storage(name, doc)
    assert again.bound_iam_principal_id == ("AROAX", "AROAY")
    assert role_from_storage(name, v3_doc()) == role


def test_same_name_other_role_ids_do_not_mix() -> None:
    name = f"r-{uuid.uuid4()}"
    one = role_from_storage(name, v3_doc(role_id="a"))
    two = role_from_storage(name, v3_doc(role_id="b", token_policies=["b"]))
    assert role_from_storage(name, v3_doc(role_id="a")) is one
    assert role_from_storage(name, v3_doc(role_id="b", token_policies=["b"])) is two
    assert one.token.token_policies == ("dev",)


def test_older_versions_are_upgraded_on_every_read() -> None:
    name = f"r-{uuid.uuid4()}"
    ids = iter(["id-1", "id-2"])
    doc = v3_doc(version=2)
    assert role_from_storage(name, doc, new_role_id=lambda: next(ids)).role_id == "id-1"
    assert role_from_storage(name, doc, new_role_id=lambda: next(ids)).role_id == "id-2"


def test_the_cache_is_bounded() -> None:
    for i in range(roles.ROLE_CACHE_SIZE + 10):
        role_from_storage(f"bounded-{i}", v3_doc())
    assert len(roles._ROLE_CACHE) <= roles.ROLE_CACHE_SIZE


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 1_500_000_000, 2, 3, ROLE_VERSION]),
    st.sampled_from(["", "iam", "ec2", "x", "0f1e", "10.0.0.0/8", "bad cidr"]),
    st.lists(st.sampled_from(["dev", ARN, "10.0.0.0/8", "AROAX"]), max_size=3),
    st.lists(st.one_of(st.integers(0, 1), st.booleans()), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["a"]), st.integers(0, 1), max_size=1),
)
_KEYS = st.sampled_from([*sorted(v3_doc()), "token_period", "bound_region_list", "extra"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_KEYS, _VALUES), max_size=4), st.booleans())
def test_cached_decode_equals_fresh_decode(changes: list[tuple[str, object]], warm: bool) -> None:
    name = "fuzzed"
    if warm:
        role_from_storage(name, v3_doc())
    doc = v3_doc()
    for key, value in changes:
        doc[key] = value
    first = cached(name, doc)
    second = cached(name, doc)  # a hit when the first decode was remembered
    reference = fresh(name, doc)  # upgrades draw the same "new" role_id in all three
    assert first == reference
    assert second == reference
