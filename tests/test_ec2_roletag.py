"""Role tags: creation (Vault's checks, texts and warnings), the tag format and its HMAC,
strict parsing, verification, the login checks, and the role tag deny list."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.ec2.roletag import (
    DENYLIST_STORAGE_PREFIX,
    ROLE_TAG_FIELDS,
    DenylistEntry,
    RoleTag,
    RoleTagGrant,
    check_role_tag,
    create_role_tag,
    denylist_entry,
    denylist_from_storage,
    denylist_read_data,
    denylist_role_tag,
    denylist_storage_key,
    denylist_tags,
    denylist_to_storage,
    new_hmac_key,
    new_role_tag_nonce,
    parse_role_tag,
    role_tag_hmac,
    role_tag_value,
    tag_role_not_found,
    verify_role_tag,
)
from aws_iam_backend.errors import BackendError, InternalError, InvalidRequestError
from aws_iam_backend.vault.roles import Role
from aws_iam_backend.vault.tokenutil import TokenSettings

KEY = "5e1b8a3c-0f7e-4a51-9a3e-2c1d0b9f8e7d"
NONCE = "AAECAwQFBgc="
INSTANCE = "i-0123456789abcdef0"
MAX = 768 * 3600
ROLE = Role(
    name="app",
    role_id="role-id",
    auth_type="ec2",
    bound_ami_id=("ami-12345678",),
    role_tag="VaultRole",
    token=TokenSettings(token_policies=("dev", "prod"), token_max_ttl=3600),
    hmac_key=KEY,
)
# Computed independently (stdlib hmac over the literal plaintext): the format must not drift.
KNOWN_PLAINTEXT = f"v1:{NONCE}:r=app:d=false:m=false:p=dev:i={INSTANCE}:t=300"
KNOWN_VALUE = KNOWN_PLAINTEXT + ":Iyyqz6F5vHKfluIqTj5QkIYhzkPuqLVuChgcvrFNbuk="


def create(data: Mapping[str, object], role: Role = ROLE) -> tuple[dict[str, str], list[str]]:
    return create_role_tag(role, data, nonce=NONCE, system_max_ttl=MAX)


def tag_value(data: Mapping[str, object], role: Role = ROLE) -> str:
    return create(data, role)[0]["tag_value"]


def internal(value: str) -> str:
    with pytest.raises(InternalError) as info:
        parse_role_tag(value)
    return info.value.message


# --- creation ------------------------------------------------------------------------


def test_known_answer() -> None:
    data = {"policies": "dev", "instance_id": INSTANCE, "max_ttl": "5m"}
    assert create(data) == ({"tag_key": "VaultRole", "tag_value": KNOWN_VALUE}, [])


def test_minimal_tag_and_hmac_is_standard_base64_of_hmac_sha256() -> None:
    value = tag_value({})
    plaintext, _, mac = value.rpartition(":")
    assert plaintext == f"v1:{NONCE}:r=app:d=false:m=false"
    digest = hmac.new(KEY.encode(), plaintext.encode(), hashlib.sha256).digest()
    assert mac == base64.b64encode(digest).decode() == role_tag_hmac(KEY, plaintext)


def test_field_order_and_flags() -> None:
    value = tag_value(
        {
            "policies": ["prod", "dev"],
            "instance_id": "I-0123456789ABCDEF0",
            "max_ttl": 60,
            "disallow_reauthentication": True,
        }
    )
    assert value.startswith(f"v1:{NONCE}:r=app:d=true:m=false:p=dev,prod:i={INSTANCE}:t=60:")


def test_allow_instance_migration_flag() -> None:
    role = attrs.evolve(ROLE, allow_instance_migration=True)
    assert ":m=true:" in tag_value({"allow_instance_migration": "true"}, role)


def test_policies_sanitised_and_empty_policies_inherit() -> None:
    assert ":p=dev:" in tag_value({"policies": " DEV ,dev,,"}) + ":"
    # Given but empty: no p= part, so the login applies the role's policies (Vault's code).
    assert ":p=" not in tag_value({"policies": ""})
    assert ":p=" not in tag_value({"policies": []})


def test_root_policy_refused() -> None:
    with pytest.raises(InvalidRequestError, match="cannot be assigned"):
        create({"policies": "root"})


def test_policy_with_colon_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        create({"policies": "a:b"})
    assert info.value.message == (
        "invalid policy name \"a:b\": ':' separates the parts of a role tag"
    )


@pytest.mark.parametrize("instance_id", ["i-123", "x-0123456789abcdef0", "i-0123456789abcdef0:t=1"])
def test_instance_id_must_be_an_instance_id(instance_id: str) -> None:
    with pytest.raises(InvalidRequestError, match="invalid instance_id"):
        create({"instance_id": instance_id})


def test_tag_creation_not_enabled() -> None:
    with pytest.raises(InvalidRequestError) as info:
        create({}, attrs.evolve(ROLE, role_tag=""))
    assert info.value.message == "tag creation is not enabled for this role"


def test_missing_hmac_key_is_internal() -> None:
    with pytest.raises(InternalError) as info:
        create({}, attrs.evolve(ROLE, hmac_key=""))
    assert info.value.message == "failed to find the HMAC key"


def test_field_validation_comes_first() -> None:
    with pytest.raises(InvalidRequestError) as info:
        create({"max_ttl": "soon"}, attrs.evolve(ROLE, role_tag=""))
    assert info.value.message.startswith(
        'Field validation failed: error converting input for field "max_ttl"'
    )


def test_both_flags_refused_before_our_checks() -> None:
    role = attrs.evolve(ROLE, allow_instance_migration=True)
    data = {
        "disallow_reauthentication": True,
        "allow_instance_migration": True,
        "instance_id": "web-1",
        "policies": "a:b",
    }
    with pytest.raises(InvalidRequestError) as info:
        create(data, role)
    assert info.value.message == (
        "cannot set both disallow_reauthentication and allow_instance_migration"
    )


def test_warnings_in_vault_order() -> None:
    role = attrs.evolve(ROLE, token=TokenSettings(token_policies=("dev",), token_max_ttl=60))
    data = {"policies": "ops", "allow_instance_migration": True, "max_ttl": MAX + 1}
    _, warnings = create(data, role)
    assert warnings == [
        "Policies on the tag are not a subset of the policies set on the role. Login will not "
        "be allowed with this tag unless the role policies are updated.",
        "Role does not allow instance migration. Login will not be allowed with this tag "
        "unless the role value is updated.",
        f"Given max TTL of {MAX + 1} is greater than the mount maximum of {MAX} seconds, and "
        "will be capped at login time.",
        f"Given max TTL of {MAX + 1} is greater than the role maximum of 60 seconds, and will "
        "be capped at login time.",
    ]


def test_no_role_max_warning_without_role_max() -> None:
    role = attrs.evolve(ROLE, token=TokenSettings(token_policies=("dev",)))
    assert create({"max_ttl": 7200}, role)[1] == []


def test_too_long_is_internal() -> None:
    many = [f"policy-with-a-long-name-{n:02d}" for n in range(8)]
    role = attrs.evolve(ROLE, token=TokenSettings(token_policies=tuple(many)))
    with pytest.raises(InternalError) as info:
        create({"policies": many}, role)
    assert info.value.message == "role tag 'value' exceeding the limit of 255 characters"


def test_empty_nonce_refused() -> None:
    with pytest.raises(InternalError, match=r"^missing nonce$"):
        create_role_tag(ROLE, {}, nonce="", system_max_ttl=MAX)


def test_field_schema() -> None:
    assert set(ROLE_TAG_FIELDS) == {
        "role",
        "instance_id",
        "policies",
        "max_ttl",
        "allow_instance_migration",
        "disallow_reauthentication",
    }


def test_generated_nonce_and_key() -> None:
    nonce = new_role_tag_nonce()
    assert len(base64.b64decode(nonce, validate=True)) == 8
    assert new_role_tag_nonce() != nonce
    key = new_hmac_key()
    assert len(key) == 36
    assert key != new_hmac_key()


def test_empty_hmac_key_refused() -> None:
    with pytest.raises(InternalError, match=r"^invalid HMAC key$"):
        role_tag_hmac("", "v1:n:r=app")


# --- parsing and verification ----------------------------------------------------------


def test_parse_known_value() -> None:
    tag = parse_role_tag(KNOWN_VALUE)
    assert tag == RoleTag(
        role="app",
        nonce=NONCE,
        policies=("dev",),
        max_ttl=300,
        instance_id=INSTANCE,
        hmac="Iyyqz6F5vHKfluIqTj5QkIYhzkPuqLVuChgcvrFNbuk=",
    )
    assert tag.plaintext() == KNOWN_PLAINTEXT
    verify_role_tag(tag, KEY)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid tag"),
        ("v1:n:r=app", "invalid tag"),
        ("v1:n:r=app:" + "x" * 250, "invalid tag"),
        ("v2:n:r=app:mac", "invalid role tag version"),
        ("V1:n:r=app:mac", "invalid role tag version"),
        ("v1:n:r=app:d=yes:mac", 'strconv.ParseBool: parsing "yes": invalid syntax'),
        ("v1:n:r=app:m=:mac", 'strconv.ParseBool: parsing "": invalid syntax'),
        ("v1:n:r=app:t=:mac", 'time: invalid duration "s"'),
        ("v1:n:r=app:t=1x:mac", 'time: invalid duration "1xs"'),
        ("v1:n:r=app:t=99999999999:mac", 'time: invalid duration "99999999999s"'),
        ("v1:n:r=app:x=1:mac", 'unrecognized item "x=1" in tag'),
        ("v1:n:r=app::mac", 'unrecognized item "" in tag'),
        ("v1:n:d=true:mac", "missing role name"),
        ("v1:n:r=:p=a:mac", "missing role name"),
        ("v1:n:r=app:mac", "invalid tag"),
    ],
)
def test_parse_errors(value: str, message: str) -> None:
    assert internal(value) == message


def test_parse_reads_go_bools_but_requires_the_canonical_form() -> None:
    assert internal("v1:n:r=a:d=T:m=0:mac") == "invalid tag"
    assert internal("v1:n:r=a:d=true:m=false:t=1m5:mac") == "invalid tag"
    tag = parse_role_tag("v1:n:r=a:d=true:m=false:t=65:mac")
    assert (tag.disallow_reauthentication, tag.allow_instance_migration, tag.max_ttl) == (
        True,
        False,
        65,
    )


def test_parse_keeps_policies_verbatim() -> None:
    assert parse_role_tag("v1:n:r=a:d=false:m=false:p=B, c,:mac").policies == ("B", " c", "")


def test_verify_refuses_wrong_key() -> None:
    with pytest.raises(InternalError) as info:
        verify_role_tag(parse_role_tag(KNOWN_VALUE), KEY + "x")
    assert info.value.message == "role tag signature verification failed"


@pytest.mark.parametrize(
    "value",
    [
        # Vault would verify these re-spellings of a signed tag (it checks the HMAC of the
        # rebuilt canonical text) although the deny list, keyed by text, misses them.
        KNOWN_VALUE.replace(":d=false:m=false", ":m=false:d=false"),
        KNOWN_VALUE.replace(":d=false", ":d=0"),
        KNOWN_VALUE.replace(":m=false", ":m=f"),
        KNOWN_VALUE.replace(":d=false:m=false", ""),
        KNOWN_VALUE.replace(":t=300", ":t=0300"),
        KNOWN_VALUE.replace(":t=300", ":t=300.0"),
        KNOWN_VALUE.replace(":t=300", ":t=5m"),
        KNOWN_VALUE.replace(":p=dev", ":p=dev:p=dev"),
        KNOWN_VALUE.replace(":r=app", ":r=app:r=app"),
    ],
)
def test_non_canonical_spellings_refused(value: str) -> None:
    assert internal(value) == "invalid tag"


def test_missing_nonce_at_verification() -> None:
    with pytest.raises(InternalError, match=r"^missing nonce$"):
        verify_role_tag(parse_role_tag("v1::r=app:d=false:m=false:mac"), KEY)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_change_of_a_character_is_refused(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(KNOWN_VALUE) - 1))
    char = data.draw(st.characters().filter(lambda c: c != KNOWN_VALUE[index]))
    tampered = KNOWN_VALUE[:index] + char + KNOWN_VALUE[index + 1 :]
    with pytest.raises(InternalError):
        verify_role_tag(parse_role_tag(tampered), KEY)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(KNOWN_VALUE)), st.text(min_size=1, max_size=4))
def test_any_insertion_is_refused(index: int, text: str) -> None:
    tampered = KNOWN_VALUE[:index] + text + KNOWN_VALUE[index:]
    with pytest.raises(InternalError):
        verify_role_tag(parse_role_tag(tampered), KEY)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(KNOWN_VALUE) - 1), st.integers(1, 4))
def test_any_deletion_is_refused(index: int, length: int) -> None:
    tampered = KNOWN_VALUE[:index] + KNOWN_VALUE[index + length :]
    with pytest.raises(InternalError):
        verify_role_tag(parse_role_tag(tampered), KEY)


_PART = st.sampled_from(["v1", "r=app", "p=a,b", "d=true", "m=0", "t=10", "i=i-1", "", "="])


@settings(max_examples=500, deadline=None)
@given(st.text() | st.lists(_PART | st.text(max_size=5), max_size=8).map(":".join))
def test_parse_only_raises_backend_errors(value: str) -> None:
    try:
        tag = parse_role_tag(value)
    except BackendError:
        return
    with contextlib.suppress(BackendError):
        verify_role_tag(tag, KEY)


@settings(max_examples=200, deadline=None)
@given(
    policies=st.lists(st.sampled_from(["dev", "prod", "ops", "a.b"]), unique=True),
    max_ttl=st.integers(0, 10**9),
    instance=st.none() | st.from_regex(r"i-[0-9a-f]{8,17}", fullmatch=True),
    flags=st.sampled_from([(False, False), (True, False), (False, True)]),
    nonce=st.binary(min_size=8, max_size=8).map(lambda b: base64.b64encode(b).decode()),
    key=st.text(min_size=1, max_size=40),
)
def test_create_parse_verify_round_trip(
    policies: list[str],
    max_ttl: int,
    instance: str | None,
    flags: tuple[bool, bool],
    nonce: str,
    key: str,
) -> None:
    role = attrs.evolve(ROLE, hmac_key=key, allow_instance_migration=True)
    data: dict[str, object] = {
        "policies": policies,
        "max_ttl": max_ttl,
        "disallow_reauthentication": flags[0],
        "allow_instance_migration": flags[1],
    }
    if instance is not None:
        data["instance_id"] = instance
    value = create_role_tag(role, data, nonce=nonce, system_max_ttl=MAX)[0]["tag_value"]
    tag = parse_role_tag(value)
    verify_role_tag(tag, key)
    assert tag == RoleTag(
        role="app",
        nonce=nonce,
        policies=tuple(sorted(policies)),
        max_ttl=max_ttl,
        instance_id=instance or "",
        disallow_reauthentication=flags[0],
        allow_instance_migration=flags[1],
        hmac=value.rpartition(":")[2],
    )


# --- login checks --------------------------------------------------------------------


def test_role_tag_value() -> None:
    assert role_tag_value("v1:x", "VaultRole") == "v1:x"
    for found in (None, ""):
        with pytest.raises(InternalError) as info:
            role_tag_value(found, "VaultRole")
        assert info.value.message == 'missing tag with key "VaultRole" on the instance'


def test_tag_role_not_found() -> None:
    assert tag_role_not_found("app").message == 'entry not found for "app"'


def check(
    tag: RoleTag,
    *,
    role_name: str = "app",
    role_policies: tuple[str, ...] = ("dev", "prod"),
    instance_id: str = INSTANCE,
    denylisted: bool = False,
) -> RoleTagGrant:
    return check_role_tag(
        tag,
        role_name=role_name,
        role_policies=role_policies,
        instance_id=instance_id,
        denylisted=denylisted,
    )


def test_check_grants() -> None:
    assert check(parse_role_tag(KNOWN_VALUE)) == RoleTagGrant(("dev",), 300, False)
    unbound = RoleTag(role="app", nonce="n", disallow_reauthentication=True)
    assert check(unbound, instance_id="i-ffffffffffffffff0") == RoleTagGrant((), 0, True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"role_name": "other", "denylisted": True},
            "role on the tag is not matching the role supplied",
        ),
        (
            {"instance_id": "i-ffffffffffffffff0", "denylisted": True},
            "role tag is being used by an unauthorized instance",
        ),
        ({"denylisted": True, "role_policies": ()}, "role tag is deny listed"),
        (
            {"role_policies": ("prod",)},
            "policies on the role tag must be subset of policies on the role",
        ),
    ],
)
def test_check_errors_in_vault_order(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InternalError) as info:
        check(parse_role_tag(KNOWN_VALUE), **overrides)
    assert info.value.message == message


# --- deny list -----------------------------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def test_denylist_input_raw_or_base64() -> None:
    assert denylist_role_tag(KNOWN_VALUE) == KNOWN_VALUE
    encoded = base64.b64encode(KNOWN_VALUE.encode()).decode()
    assert denylist_role_tag(encoded) == KNOWN_VALUE
    assert denylist_role_tag(encoded[:10] + "\n" + encoded[10:]) == KNOWN_VALUE
    not_utf8 = base64.b64encode(b"\xff\xfe").decode()
    assert denylist_role_tag(not_utf8) == not_utf8


def test_denylist_missing_role_tag() -> None:
    for call in (denylist_role_tag, denylist_storage_key):
        with pytest.raises(InvalidRequestError, match=r"^missing role_tag$"):
            call("")


def test_denylist_storage_key_and_list() -> None:
    key = denylist_storage_key(KNOWN_VALUE)
    assert key == "blacklist/roletag/" + base64.b64encode(KNOWN_VALUE.encode()).decode()
    assert denylist_tags([key.removeprefix(DENYLIST_STORAGE_PREFIX)]) == [KNOWN_VALUE]
    with pytest.raises(InternalError, match="illegal base64"):
        denylist_tags(["not base64!"])


def test_denylist_entry_new_and_renewed() -> None:
    entry = denylist_entry(None, now=NOW, tag_max_ttl=300, role_max_ttl=3600, system_max_ttl=MAX)
    assert entry == DenylistEntry(NOW, NOW + timedelta(seconds=MAX))
    later = NOW + timedelta(days=1)
    again = denylist_entry(
        entry, now=later, tag_max_ttl=MAX * 2, role_max_ttl=0, system_max_ttl=MAX
    )
    assert again == DenylistEntry(NOW, later + timedelta(seconds=MAX * 2))
    by_role = denylist_entry(
        None, now=NOW, tag_max_ttl=0, role_max_ttl=MAX + 5, system_max_ttl=MAX
    )
    assert by_role.expiration_time == NOW + timedelta(seconds=MAX + 5)


def test_denylist_entry_zero_creation_time_is_replaced() -> None:
    zero = denylist_from_storage({"expiration_time": "2024-01-01T00:00:00Z"})
    assert zero.creation_time == datetime(1, 1, 1, tzinfo=UTC)
    entry = denylist_entry(zero, now=NOW, tag_max_ttl=0, role_max_ttl=0, system_max_ttl=60)
    assert entry.creation_time == NOW


def test_denylist_storage_round_trip_and_read() -> None:
    entry = DenylistEntry(NOW, NOW + timedelta(hours=768))
    doc = denylist_to_storage(entry)
    assert doc == {
        "creation_time": "2024-05-01T12:00:00.25Z",
        "expiration_time": "2024-06-02T12:00:00.25Z",
    }
    assert denylist_from_storage(doc) == entry
    assert denylist_read_data(entry) == doc


def test_denylist_vault_document() -> None:
    # As Go's encoding/json writes time.Now(): local offset, nanoseconds.
    doc = {
        "creation_time": "2016-04-25T10:35:20.127235375-04:00",
        "expiration_time": "2016-05-27T10:35:20.127235375-04:00",
    }
    assert denylist_from_storage(doc) == DenylistEntry(
        datetime(2016, 4, 25, 14, 35, 20, 127235, tzinfo=UTC),
        datetime(2016, 5, 27, 14, 35, 20, 127235, tzinfo=UTC),
    )


@pytest.mark.parametrize("value", [17, "yesterday", "2016-04-25 10:35:20Z", ["2016"]])
def test_denylist_bad_times(value: object) -> None:
    with pytest.raises(InternalError) as info:
        denylist_from_storage({"creation_time": value})
    assert info.value.message == 'error decoding deny list entry: bad value for "creation_time"'
