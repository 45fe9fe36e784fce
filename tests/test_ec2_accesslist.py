"""The identity access list: Go's RFC 3339 parsing, Vault's storage JSON, the
reauthentication rules (full matrix against a transcription of Vault's code), the entry a
login or renewal stores, and the tidy settings."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.ec2.accesslist import (
    IDENTITY_ACCESSLIST_TIDY_CONFIG_KEY,
    REAUTHENTICATION_DISABLED_NONCE,
    ROLETAG_DENYLIST_TIDY_CONFIG_KEY,
    ROLETAG_DENYLIST_TIDY_SAFETY_BUFFER_DEFAULT,
    TIDY_CONFIG_FIELDS,
    TIDY_FIELDS,
    TIDY_SAFETY_BUFFER_DEFAULT,
    AccessListEntry,
    Reauthentication,
    TidyConfig,
    check_reauthentication,
    entry_from_storage,
    entry_read_data,
    entry_to_storage,
    go_parse_time,
    max_ttl_bounds,
    next_entry,
    periodic_safety_buffer,
    renew_entry,
    tidy_config_from_storage,
    tidy_config_read_data,
    tidy_config_to_storage,
    tidy_due,
    tidy_safety_buffer,
    write_tidy_config,
)
from aws_iam_backend.errors import InternalError, InvalidRequestError

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CREATED = datetime(2024, 4, 1, 8, 30, 0, 123456, tzinfo=UTC)
TTL = 768 * 3600
GENERATED = "0b1c7f3e-4c55-4b8e-9a51-0e6f3b2a9d10"
OLDER, EQUAL, NEWER = "2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", "2024-04-01T00:00:01Z"
STORED = AccessListEntry(
    role="app",
    client_nonce="n1",
    creation_time=CREATED,
    disallow_reauthentication=False,
    pending_time=EQUAL,
    expiration_time=CREATED + timedelta(seconds=TTL),
    last_updated_time=CREATED,
)
STORED_DISALLOWED = attrs.evolve(STORED, client_nonce="", disallow_reauthentication=True)


def login(
    stored: AccessListEntry | None,
    nonce: str | None,
    pending: str = EQUAL,
    *,
    role_disallow: bool = False,
    role_migration: bool = False,
    tag_disallow: bool = False,
) -> tuple[AccessListEntry, str | None]:
    """A login's access-list steps, in Vault's order."""
    reauth = check_reauthentication(
        stored,
        nonce=nonce,
        pending_time=pending,
        role_disallow_reauthentication=role_disallow,
        role_allow_instance_migration=role_migration,
        generated_nonce=GENERATED,
    )
    entry = next_entry(
        stored,
        reauth,
        role_name="web",
        pending_time=pending,
        tag_disallow_reauthentication=tag_disallow,
        now=NOW,
        ttl=TTL,
    )
    return entry, reauth.returned_nonce(entry)


def refused(
    stored: AccessListEntry | None, nonce: str | None, pending: str = EQUAL, **kw: bool
) -> str:
    with pytest.raises(InvalidRequestError) as info:
        login(stored, nonce, pending, **kw)
    return info.value.message


# --- Go time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-04-05T16:26:55Z", datetime(2016, 4, 5, 16, 26, 55, tzinfo=UTC)),
        ("2016-04-05T16:26:55+02:00", datetime(2016, 4, 5, 14, 26, 55, tzinfo=UTC)),
        ("2016-04-05T16:26:55-07:30", datetime(2016, 4, 5, 23, 56, 55, tzinfo=UTC)),
        ("2016-04-05T6:26:55Z", datetime(2016, 4, 5, 6, 26, 55, tzinfo=UTC)),
        ("2016-02-29T23:59:59Z", datetime(2016, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_go_parse_time(value: str, expected: datetime) -> None:
    delta = expected - datetime(1970, 1, 1, tzinfo=UTC)
    assert go_parse_time(value) == (delta.days * 86400 + delta.seconds) * 10**9


def test_go_parse_time_fractions_and_year_zero() -> None:
    base = go_parse_time("2016-04-05T16:26:55Z")
    assert go_parse_time("2016-04-05T16:26:55.5Z") == base + 500_000_000
    assert go_parse_time("2016-04-05T16:26:55,000000001Z") == base + 1
    assert go_parse_time("2016-04-05T16:26:55.1234567899999Z") == base + 123_456_789
    assert go_parse_time("0000-03-01T00:00:00Z") - go_parse_time("0000-02-28T00:00:00Z") == (
        2 * 86400 * 10**9
    )
    assert go_parse_time("2016-04-05T16:26:55+24:00") == base - 24 * 3600 * 10**9


LAYOUT = '"2006-01-02T15:04:05Z07:00"'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", f'parsing time "" as {LAYOUT}: cannot parse "" as "2006"'),
        ("16-04-05", f'parsing time "16-04-05" as {LAYOUT}: cannot parse "16-04-05" as "2006"'),
        ("2016/04/05", f'parsing time "2016/04/05" as {LAYOUT}: cannot parse "/04/05" as "-"'),
        ("2016-4-05T1:00:00Z", f'parsing time "2016-4-05T1:00:00Z" as {LAYOUT}: '
         'cannot parse "4-05T1:00:00Z" as "01"'),
        ("2016-04-05 16:26:55Z", f'parsing time "2016-04-05 16:26:55Z" as {LAYOUT}: '
         'cannot parse " 16:26:55Z" as "T"'),
        ("2016-04-05T16:26:55", f'parsing time "2016-04-05T16:26:55" as {LAYOUT}: '
         'cannot parse "" as "Z07:00"'),
        ("2016-04-05T16:26:55+0200", f'parsing time "2016-04-05T16:26:55+0200" as {LAYOUT}: '
         'cannot parse "+0200" as "Z07:00"'),
        ("2016-04-05T16:26:55*02:00", f'parsing time "2016-04-05T16:26:55*02:00" as {LAYOUT}: '
         'cannot parse "*02:00" as "Z07:00"'),
        ("2016-00-05T16:26:55Z", 'parsing time "2016-00-05T16:26:55Z": month out of range'),
        ("2016-13-05T16:26:55Z", 'parsing time "2016-13-05T16:26:55Z": month out of range'),
        ("2016-04-05T24:26:55Z", 'parsing time "2016-04-05T24:26:55Z": hour out of range'),
        ("2016-04-05T16:60:55Z", 'parsing time "2016-04-05T16:60:55Z": minute out of range'),
        ("2016-04-05T16:26:60Z", 'parsing time "2016-04-05T16:26:60Z": second out of range'),
        ("2015-02-29T16:26:55Z", 'parsing time "2015-02-29T16:26:55Z": day out of range'),
        ("2016-04-00T16:26:55Z", 'parsing time "2016-04-00T16:26:55Z": day out of range'),
        ("2016-04-05T16:26:55+25:00",
         'parsing time "2016-04-05T16:26:55+25:00": time zone offset hour out of range'),
        ("2016-04-05T16:26:55+01:61",
         'parsing time "2016-04-05T16:26:55+01:61": time zone offset minute out of range'),
        ("2016-04-05T16:26:55Z ", 'parsing time "2016-04-05T16:26:55Z ": extra text: " "'),
        ("2016-04-31T16:26:55Zx", 'parsing time "2016-04-31T16:26:55Zx": extra text: "x"'),
        ("2016é", f'parsing time "2016\\xc3\\xa9" as {LAYOUT}: cannot parse "\\xc3\\xa9" as "-"'),
        ('"\n', f'parsing time "\\"\\x0a" as {LAYOUT}: cannot parse "\\"\\x0a" as "2006"'),
    ],
)
def test_go_parse_time_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError, match="parsing time") as info:
        go_parse_time(value)
    assert str(info.value) == message


@settings(max_examples=500, deadline=None)
@given(st.text() | st.from_regex(r"[0-9]{4}-[0-9]{1,2}-[0-9]{2}T.{0,20}", fullmatch=True))
def test_go_parse_time_only_raises_value_error(value: str) -> None:
    with contextlib.suppress(ValueError):
        go_parse_time(value)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.builds(timezone, st.integers(-1439, 1439).map(lambda m: timedelta(minutes=m))),
    )
)
def test_go_parse_time_matches_python(moment: datetime) -> None:
    text = moment.isoformat()
    if moment.utcoffset() == timedelta(0):
        text = text.replace("+00:00", "Z")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    expected = ((delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds) * 1000
    assert go_parse_time(text) == expected


# --- storage -------------------------------------------------------------------------


def test_storage_round_trip_and_read() -> None:
    doc = entry_to_storage(STORED)
    assert doc == {
        "role": "app",
        "client_nonce": "n1",
        "creation_time": "2024-04-01T08:30:00.123456Z",
        "disallow_reauthentication": False,
        "pending_time": EQUAL,
        "expiration_time": "2024-05-03T08:30:00.123456Z",
        "last_updated_time": "2024-04-01T08:30:00.123456Z",
    }
    assert list(doc) == list(entry_read_data(STORED))
    assert entry_read_data(STORED) == doc
    assert entry_from_storage(doc) == STORED


def test_vault_document() -> None:
    # What Go's encoding/json writes for Vault's accessListIdentity (local time, nanoseconds).
    doc = {
        "role": "ami-5c7ab42a",
        "client_nonce": "5defbf9e-a8f9-3063-bdfc-54b7a42a1f95",
        "creation_time": "2016-04-20T17:40:36.862164813-04:00",
        "disallow_reauthentication": False,
        "pending_time": "2016-04-14T01:01:41Z",
        "expiration_time": "2016-05-20T17:40:36.862164813-04:00",
        "last_updated_time": "2016-04-20T17:40:36.862164813-04:00",
    }
    entry = entry_from_storage(doc)
    assert entry == AccessListEntry(
        role="ami-5c7ab42a",
        client_nonce="5defbf9e-a8f9-3063-bdfc-54b7a42a1f95",
        creation_time=datetime(2016, 4, 20, 21, 40, 36, 862164, tzinfo=UTC),
        disallow_reauthentication=False,
        pending_time="2016-04-14T01:01:41Z",
        expiration_time=datetime(2016, 5, 20, 21, 40, 36, 862164, tzinfo=UTC),
        last_updated_time=datetime(2016, 4, 20, 21, 40, 36, 862164, tzinfo=UTC),
    )
    assert entry_read_data(entry)["creation_time"] == "2016-04-20T21:40:36.862164Z"


def test_missing_and_null_fields_take_go_zero_values() -> None:
    entry = entry_from_storage({"creation_time": None})
    zero = datetime(1, 1, 1, tzinfo=UTC)
    assert entry == AccessListEntry("", "", zero, False, "", zero, zero)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("role", 5),
        ("disallow_reauthentication", "true"),
        ("creation_time", 1459873615),
        ("expiration_time", "2016-04-05"),
        ("last_updated_time", "0000-01-01T00:00:00Z"),
        ("last_updated_time", "0001-01-01T00:00:00+01:00"),
    ],
)
def test_unreadable_storage(key: str, value: object) -> None:
    with pytest.raises(InternalError) as info:
        entry_from_storage({**entry_to_storage(STORED), key: value})
    assert info.value.message == f'error decoding access list entry: bad value for "{key}"'


def test_client_nonce_not_in_repr() -> None:
    assert "n1" not in repr(STORED)
    assert GENERATED not in repr(Reauthentication(GENERATED, False, False))


# --- reauthentication: named rules ---------------------------------------------------


def test_first_login_without_nonce_generates_one() -> None:
    entry, returned = login(None, None)
    assert returned == GENERATED
    assert entry == AccessListEntry(
        role="web",
        client_nonce=GENERATED,
        creation_time=NOW,
        disallow_reauthentication=False,
        pending_time=EQUAL,
        expiration_time=NOW + timedelta(seconds=TTL),
        last_updated_time=NOW,
    )


def test_first_login_with_nonce_keeps_it_and_returns_none() -> None:
    entry, returned = login(None, "my-nonce")
    assert (entry.client_nonce, returned) == ("my-nonce", None)


def test_empty_nonce_disables_reauthentication() -> None:
    entry, returned = login(None, "")
    assert (entry.client_nonce, entry.disallow_reauthentication, returned) == ("", True, None)
    assert refused(entry, "") == "reauthentication is disabled"
    assert refused(entry, "n1") == "reauthentication is disabled"


@pytest.mark.parametrize("flag", ["role_disallow", "tag_disallow"])
def test_role_or_tag_disallow(flag: str) -> None:
    entry, returned = login(None, None, EQUAL, **{flag: True})
    assert (entry.client_nonce, entry.disallow_reauthentication, returned) == ("", True, None)
    assert refused(entry, None) == "reauthentication is disabled"


def test_stored_disallow_survives_role_change() -> None:
    assert refused(STORED_DISALLOWED, "n1", role_migration=True) == "reauthentication is disabled"


def test_marker_nonce_is_refused_against_an_entry() -> None:
    assert refused(STORED, REAUTHENTICATION_DISABLED_NONCE) == "reauthentication is disabled"


def test_stored_entry_without_nonce() -> None:
    broken = attrs.evolve(STORED, client_nonce="")
    assert refused(broken, "n1") == "client nonce missing in stored identity"


def test_reauthentication_with_same_nonce() -> None:
    entry, returned = login(STORED, "n1", NEWER)
    assert returned is None
    assert entry == attrs.evolve(
        STORED,
        pending_time=NEWER,
        last_updated_time=NOW,
        expiration_time=NOW + timedelta(seconds=TTL),
    )


def test_nonce_mismatch() -> None:
    assert refused(STORED, "n2", NEWER) == "client nonce mismatch"
    assert refused(STORED, None, NEWER) == "client nonce mismatch"


def test_migration_needs_a_newer_pending_time() -> None:
    message = "client nonce mismatch and instance meta-data incorrect"
    assert refused(STORED, "n2", EQUAL, role_migration=True) == message
    assert refused(STORED, "n2", OLDER, role_migration=True) == message
    entry, _ = login(STORED, "n2", NEWER, role_migration=True)
    # As in Vault, the stored nonce, role and creation time never change.
    assert (entry.client_nonce, entry.role, entry.pending_time) == ("n1", "app", NEWER)


def test_migration_without_nonce_returns_an_unstored_nonce() -> None:
    # Vault's behaviour: the generated nonce is returned but the entry keeps its own.
    entry, returned = login(STORED, None, NEWER, role_migration=True)
    assert (entry.client_nonce, returned) == ("n1", GENERATED)


def test_older_pending_time() -> None:
    assert refused(STORED, "n1", OLDER) == (
        "instance meta-data is older than the one used for previous login"
    )


def test_unreadable_pending_times() -> None:
    assert refused(STORED, "n1", "yesterday") == (
        f'parsing time "yesterday" as {LAYOUT}: cannot parse "yesterday" as "2006"'
    )
    stale = attrs.evolve(STORED, pending_time="")
    assert refused(stale, "n1") == f'parsing time "" as {LAYOUT}: cannot parse "" as "2006"'


def test_pending_times_compare_as_instants() -> None:
    same_instant = "2024-04-01T02:00:00+02:00"
    assert login(STORED, "n1", same_instant)[0].pending_time == same_instant
    assert refused(STORED, "n2", same_instant, role_migration=True) == (
        "client nonce mismatch and instance meta-data incorrect"
    )
    one_ns_later = "2024-04-01T00:00:00.000000001Z"
    assert login(STORED, "n1", one_ns_later)[0].pending_time == one_ns_later
    assert refused(STORED, "n1", "2024-03-31T23:59:59.999999999Z").startswith("instance meta-data")


def test_nonce_length_limit_in_bytes() -> None:
    assert login(None, "x" * 128)[0].client_nonce == "x" * 128
    assert login(None, "é" * 64)[0].client_nonce == "é" * 64
    for nonce in ("x" * 129, "é" * 65):
        assert refused(None, nonce) == "client nonce exceeding the limit of 128 characters"
    assert login(None, "x" * 129, role_disallow=True)[0].client_nonce == ""
    assert login(None, "x" * 129, tag_disallow=True)[0].client_nonce == ""
    # Checked against the presented nonce, also when an entry exists.
    long_nonce = "y" * 200
    assert refused(STORED, long_nonce, NEWER, role_migration=True) == (
        "client nonce exceeding the limit of 128 characters"
    )


# --- reauthentication: the full matrix against Vault's code --------------------------

_ORDER = {OLDER: 0, EQUAL: 1, NEWER: 2}


def vault_login(
    stored: AccessListEntry | None,
    nonce: str | None,
    pending: str,
    role_disallow: bool,
    role_migration: bool,
    tag_disallow: bool,
) -> tuple[AccessListEntry, str | None] | str:
    """A line-by-line transcription of Vault's pathLoginUpdateEc2 / validateMetadata."""
    disallow = role_disallow
    client_nonce = ""
    supplied = nonce is not None
    if nonce is not None:
        client_nonce = nonce
        if client_nonce == "":
            client_nonce = REAUTHENTICATION_DISABLED_NONCE
            disallow = True
    if stored is not None:
        if not stored.disallow_reauthentication and stored.client_nonce == "":
            return "client nonce missing in stored identity"
        if stored.disallow_reauthentication or client_nonce == REAUTHENTICATION_DISABLED_NONCE:
            return "reauthentication is disabled"
        given, previous = _ORDER[pending], _ORDER[stored.pending_time]
        if client_nonce != stored.client_nonce:
            if not role_migration:
                return "client nonce mismatch"
            if role_migration and not given > previous:
                return "client nonce mismatch and instance meta-data incorrect"
        if given < previous:
            return "instance meta-data is older than the one used for previous login"
        disallow = disallow or stored.disallow_reauthentication
    if not supplied:
        client_nonce = GENERATED
    if not disallow:
        disallow = tag_disallow
    if stored is None:
        stored = AccessListEntry("web", client_nonce, NOW, False, "", NOW, NOW)
    entry = attrs.evolve(
        stored,
        last_updated_time=NOW,
        expiration_time=NOW + timedelta(seconds=TTL),
        pending_time=pending,
        disallow_reauthentication=disallow,
    )
    if entry.disallow_reauthentication:
        entry = attrs.evolve(entry, client_nonce="")
    if len(client_nonce) > 128 and not entry.disallow_reauthentication:
        return "client nonce exceeding the limit of 128 characters"
    return entry, client_nonce if not disallow and not supplied else None


_STORED_CASES = [
    None,
    STORED,
    STORED_DISALLOWED,
    attrs.evolve(STORED, client_nonce=""),
    attrs.evolve(STORED, pending_time=OLDER),
    attrs.evolve(STORED, pending_time=NEWER),
]
_MATRIX = list(
    itertools.product(
        _STORED_CASES,
        [None, "", "n1", "n2", REAUTHENTICATION_DISABLED_NONCE, "z" * 129],
        [OLDER, EQUAL, NEWER],
        [False, True],
        [False, True],
        [False, True],
    )
)


def test_matrix_against_vault() -> None:
    outcomes = set()
    for stored, nonce, pending, role_disallow, role_migration, tag_disallow in _MATRIX:
        expected = vault_login(stored, nonce, pending, role_disallow, role_migration, tag_disallow)
        kw = {
            "role_disallow": role_disallow,
            "role_migration": role_migration,
            "tag_disallow": tag_disallow,
        }
        if isinstance(expected, str):
            assert refused(stored, nonce, pending, **kw) == expected
            outcomes.add(expected)
        else:
            assert login(stored, nonce, pending, **kw) == expected
            outcomes.add("ok")
    assert outcomes == {  # every rule was reached
        "ok",
        "client nonce missing in stored identity",
        "reauthentication is disabled",
        "client nonce mismatch",
        "client nonce mismatch and instance meta-data incorrect",
        "instance meta-data is older than the one used for previous login",
        "client nonce exceeding the limit of 128 characters",
    }


# --- TTLs, renewal -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttls", "expected"),
    [
        ((), (TTL, TTL)),
        ((0, 0), (TTL, TTL)),
        ((3600,), (3600, TTL)),
        ((3600, 60), (60, TTL)),
        ((TTL * 2, 60), (60, TTL * 2)),
        ((60, TTL * 3), (60, TTL * 3)),
        ((-5,), (TTL, TTL)),
    ],
)
def test_max_ttl_bounds(ttls: tuple[int, ...], expected: tuple[int, int]) -> None:
    assert max_ttl_bounds(TTL, *ttls) == expected


def test_renew_entry() -> None:
    renewed = renew_entry(STORED_DISALLOWED, "i-0123456789abcdef0", now=NOW, ttl=60)
    assert renewed == attrs.evolve(
        STORED_DISALLOWED, last_updated_time=NOW, expiration_time=NOW + timedelta(seconds=60)
    )
    with pytest.raises(InternalError) as info:
        renew_entry(None, "i-0123456789abcdef0", now=NOW, ttl=60)
    assert info.value.message == (
        'failed to verify the access list identity entry for instance ID: "i-0123456789abcdef0"'
    )


def test_times_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_entry(
            None,
            Reauthentication("n", True, False),
            role_name="web",
            pending_time=EQUAL,
            tag_disallow_reauthentication=False,
            now=datetime(2024, 1, 1),
            ttl=1,
        )


# --- tidy ----------------------------------------------------------------------------


def test_tidy_constants() -> None:
    assert TIDY_SAFETY_BUFFER_DEFAULT == 72 * 3600
    assert ROLETAG_DENYLIST_TIDY_SAFETY_BUFFER_DEFAULT == 180 * 86400
    assert IDENTITY_ACCESSLIST_TIDY_CONFIG_KEY == "config/tidy/identity-whitelist"
    assert ROLETAG_DENYLIST_TIDY_CONFIG_KEY == "config/tidy/roletag-blacklist"
    assert set(TIDY_CONFIG_FIELDS) == {"safety_buffer", "disable_periodic_tidy"}
    assert set(TIDY_FIELDS) == {"safety_buffer"}


def test_write_tidy_config_create_and_update() -> None:
    default = TIDY_SAFETY_BUFFER_DEFAULT
    assert write_tidy_config(None, {}, default_safety_buffer=default) == TidyConfig(default)
    created = write_tidy_config(
        None, {"disable_periodic_tidy": "true"}, default_safety_buffer=15552000
    )
    assert created == TidyConfig(15552000, True)
    updated = write_tidy_config(created, {"safety_buffer": "1h"}, default_safety_buffer=default)
    assert updated == TidyConfig(3600, True)
    assert write_tidy_config(updated, {}, default_safety_buffer=default) == updated


def test_write_tidy_config_field_errors() -> None:
    with pytest.raises(InvalidRequestError) as info:
        write_tidy_config(None, {"safety_buffer": -1}, default_safety_buffer=1)
    assert info.value.message.startswith(
        'Field validation failed: error converting input for field "safety_buffer"'
    )


def test_tidy_config_storage() -> None:
    config = TidyConfig(259200, True)
    doc = tidy_config_to_storage(config)
    assert doc == {"safety_buffer": 259200, "disable_periodic_tidy": True}
    assert tidy_config_read_data(config) == doc
    assert tidy_config_from_storage(doc) == config
    assert tidy_config_from_storage({}) == TidyConfig(0, False)
    with pytest.raises(InternalError) as info:
        tidy_config_from_storage({"safety_buffer": "72h"})
    assert info.value.message == 'error decoding tidy config: bad value for "safety_buffer"'


def test_periodic_safety_buffer() -> None:
    assert periodic_safety_buffer(None, default=15552000) == 15552000
    assert periodic_safety_buffer(TidyConfig(60), default=15552000) == 60
    assert periodic_safety_buffer(TidyConfig(60, True), default=15552000) is None


def test_tidy_safety_buffer() -> None:
    assert tidy_safety_buffer({}) == 259200
    assert tidy_safety_buffer({"safety_buffer": "10m", "other": 1}) == 600
    assert tidy_safety_buffer({"safety_buffer": 0}) == 0
    with pytest.raises(InvalidRequestError):
        tidy_safety_buffer({"safety_buffer": "soon"})


def test_tidy_due_is_strictly_after() -> None:
    expiry = NOW
    buffer = timedelta(seconds=60)
    assert not tidy_due(expiry, now=NOW + buffer, safety_buffer=60)
    assert tidy_due(expiry, now=NOW + buffer + timedelta(microseconds=1), safety_buffer=60)
    assert tidy_due(expiry, now=NOW + timedelta(microseconds=1), safety_buffer=0)
    assert not tidy_due(datetime(9999, 12, 31, tzinfo=UTC), now=NOW, safety_buffer=10**10)
