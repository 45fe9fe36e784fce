"""The identity access list (``identity-accesslist/<instance_id>``) and Vault's
reauthentication rules for ``ec2`` logins, as pure functions over values.

A successful ec2 login records the instance at ``whitelist/identity/<instance_id>``
(Vault's storage key). The next login from the same instance must present the nonce
remembered there and an identity document whose ``pendingTime`` is not older, unless
the role allows instance migration. A login runs, in Vault's order:

1. :func:`check_reauthentication` (the ``nonce`` field and the stored entry; 400s);
2. the role tag, if the role has one (:mod:`aws_iam_backend.ec2.roletag`);
3. :func:`max_ttl_bounds`, then :func:`next_entry` (what to store; the nonce length
   limit) and :meth:`Reauthentication.returned_nonce` (the ``nonce`` auth metadata).

Renewals store :func:`renew_entry`. Expired entries (and deny-listed role tags) are
removed by tidy: :func:`tidy_due`, with the ``config/tidy/identity-accesslist`` and
``config/tidy/roletag-denylist`` settings (:class:`TidyConfig`).

Times are Go ``time.Time`` values in Vault's JSON: RFC 3339 with any offset and up to
nine fractional digits on read (kept to the microsecond, in UTC); written in UTC.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import attrs

from aws_iam_backend.errors import InternalError, InvalidRequestError
from aws_iam_backend.vault.fields import FieldType, StoredDocument, parse_fields
from aws_iam_backend.vault.gocompat import go_quote
from aws_iam_backend.vault.tokens import rfc3339, same, utc

ACCESSLIST_STORAGE_PREFIX = "whitelist/identity/"
"""Vault's storage prefix of access list entries (the key ends with the instance ID)."""

REAUTHENTICATION_DISABLED_NONCE = "reauthentication-disabled-nonce"
"""The nonce Vault records for a login whose ``nonce`` field was given empty."""

MAX_CLIENT_NONCE_LENGTH = 128
"""Longest client nonce (bytes) a login may leave in the access list."""

TIDY_SAFETY_BUFFER_DEFAULT = 259200
"""72h: ``tidy/*`` and ``config/tidy/identity-accesslist`` ``safety_buffer`` default."""

ROLETAG_DENYLIST_TIDY_SAFETY_BUFFER_DEFAULT = 15552000
"""180 days: ``config/tidy/roletag-denylist`` default, and the periodic tidy's without it."""

IDENTITY_ACCESSLIST_TIDY_CONFIG_KEY = "config/tidy/identity-whitelist"
ROLETAG_DENYLIST_TIDY_CONFIG_KEY = "config/tidy/roletag-blacklist"

TIDY_FIELDS: Mapping[str, FieldType] = {"safety_buffer": FieldType.DURATION}
"""Field schema of ``tidy/identity-accesslist`` and ``tidy/roletag-denylist``."""

TIDY_CONFIG_FIELDS: Mapping[str, FieldType] = {
    "safety_buffer": FieldType.DURATION,
    "disable_periodic_tidy": FieldType.BOOL,
}
"""Field schema of ``config/tidy/identity-accesslist`` and ``config/tidy/roletag-denylist``."""

GO_RFC3339 = "2006-01-02T15:04:05Z07:00"
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero ``time.Time``: what a missing or ``null`` stored time decodes to."""

_DIGITS = frozenset("0123456789")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS_IN_400_YEARS = 146097
_NS = 1_000_000_000
# After the year: (separator, Go layout element, two digits required, (name, valid range)).
# Go checks the day against the month only once the whole value is read.
_CLOCK_FIELDS: tuple[tuple[str, str, bool, tuple[str, range] | None], ...] = (
    ("-", "01", True, ("month", range(1, 13))),
    ("-", "02", True, None),
    ("T", "15", False, ("hour", range(24))),
    (":", "04", True, ("minute", range(60))),
    (":", "05", True, ("second", range(60))),
)


# --- Go time -------------------------------------------------------------------------


def _time_quote(text: str) -> str:
    """The ``time`` package's ``quote``: control and non-ASCII characters as ``\\x`` bytes."""
    out = ['"']
    for char in text:
        if char < " " or char >= "\x80":
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + char if char in '"\\' else char)
    out.append('"')
    return "".join(out)


def _getnum(text: str, fixed: bool) -> tuple[int, str] | None:
    """Go's ``getnum``: one or two leading digits (exactly two when ``fixed``)."""
    if text[:1] not in _DIGITS:
        return None
    if text[1:2] not in _DIGITS:
        return None if fixed else (int(text[0]), text[1:])
    return int(text[:2]), text[2:]


def go_parse_time(value: str) -> int:
    """Go's ``time.Parse(time.RFC3339, value)`` as nanoseconds since the Unix epoch.

    Accepts what Go accepts (a one-digit hour, a ``,`` or ``.`` before up to nine
    fractional digits, offsets up to ``±24:60``); raises ``ValueError`` with Go's text:
    ``parsing time "<v>" as "2006-01-02T15:04:05Z07:00": cannot parse "<rest>" as
    "<element>"``, ``parsing time "<v>": <field> out of range`` or ``parsing time "<v>":
    extra text: "<rest>"``.
    """

    def bad(rest: str, element: str) -> ValueError:
        return ValueError(
            f"parsing time {_time_quote(value)} as {_time_quote(GO_RFC3339)}: cannot parse "
            f"{_time_quote(rest)} as {_time_quote(element)}"
        )

    def out_of_range(what: str) -> ValueError:
        return ValueError(f"parsing time {_time_quote(value)}: {what} out of range")

    rest = value
    if len(rest) < 4 or not _DIGITS.issuperset(rest[:4]):
        raise bad(rest, "2006")
    year, rest = int(rest[:4]), rest[4:]
    numbers = []
    for separator, element, fixed, valid in _CLOCK_FIELDS:
        if not rest.startswith(separator):
            raise bad(rest, separator)
        rest = rest[1:]
        parsed = _getnum(rest, fixed)
        if parsed is None:
            raise bad(rest, element)
        number, rest = parsed
        if valid is not None and number not in valid[1]:
            raise out_of_range(valid[0])
        numbers.append(number)
    month, day, hour, minute, second = numbers
    nanos = 0
    if len(rest) >= 2 and rest[0] in ".," and rest[1] in _DIGITS:
        end = 2
        while end < len(rest) and rest[end] in _DIGITS:
            end += 1
        digits = rest[1 : min(end, 10)]
        nanos, rest = int(digits) * 10 ** (9 - len(digits)), rest[end:]
    offset = 0
    if rest.startswith("Z"):
        rest = rest[1:]
    else:
        raw = rest.encode("utf-8", "surrogatepass")  # Go slices bytes here
        if len(raw) < 6 or raw[3:4] != b":":
            raise bad(rest, "Z07:00")
        hours = _getnum(raw[1:3].decode("latin-1"), True)
        minutes = None if hours is None else _getnum(raw[4:6].decode("latin-1"), True)
        if hours is not None and hours[0] > 24:
            raise out_of_range("time zone offset hour")
        if minutes is not None and minutes[0] > 60:
            raise out_of_range("time zone offset minute")
        if hours is None or minutes is None or raw[:1] not in (b"+", b"-"):
            raise bad(rest, "Z07:00")
        offset = (hours[0] * 60 + minutes[0]) * 60 * (-1 if raw[:1] == b"-" else 1)
        rest = raw[6:].decode("utf-8", "surrogatepass")
    if rest:
        raise ValueError(f"parsing time {_time_quote(value)}: extra text: {_time_quote(rest)}")
    same_calendar = year or 400  # Python has no year 0; 400 is a leap year too
    if not 1 <= day <= calendar.monthrange(same_calendar, month)[1]:
        raise out_of_range("day")
    days = date(same_calendar, month, day).toordinal() - _EPOCH_ORDINAL
    if year == 0:
        days -= _DAYS_IN_400_YEARS
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset
    return seconds * _NS + nanos


def time_from_storage(doc: StoredDocument, key: str) -> datetime:
    """A Go ``time.Time`` from stored JSON, in UTC to the microsecond (Go's zero time
    when missing or ``null``); unreadable values are :class:`InternalError`."""
    value = doc.doc.get(key)
    if value is None:
        return GO_ZERO_TIME
    if not isinstance(value, str):
        raise doc.error(key)
    try:
        return _EPOCH + timedelta(microseconds=go_parse_time(value) // 1000)
    except (ValueError, OverflowError):
        raise doc.error(key) from None


def tidy_due(expiration_time: datetime, *, now: datetime, safety_buffer: int) -> bool:
    """True when tidy deletes an entry: ``now`` is after expiration plus ``safety_buffer``."""
    return utc(now) - utc(expiration_time) > timedelta(seconds=safety_buffer)


# --- entries -------------------------------------------------------------------------


@attrs.frozen
class AccessListEntry:
    """An access list entry (Vault's ``accessListIdentity``).

    ``role``, ``client_nonce`` and ``creation_time`` are set by the first login and
    never change (``client_nonce`` is emptied when reauthentication is disabled);
    ``pending_time`` is the identity document's text, kept verbatim.
    """

    role: str
    client_nonce: str = attrs.field(repr=False)
    creation_time: datetime
    disallow_reauthentication: bool
    pending_time: str
    expiration_time: datetime
    last_updated_time: datetime


def entry_to_storage(entry: AccessListEntry) -> dict[str, object]:
    """The JSON document Vault stores at ``whitelist/identity/<instance_id>``."""
    return {
        "role": entry.role,
        "client_nonce": entry.client_nonce,
        "creation_time": rfc3339(entry.creation_time),
        "disallow_reauthentication": entry.disallow_reauthentication,
        "pending_time": entry.pending_time,
        "expiration_time": rfc3339(entry.expiration_time),
        "last_updated_time": rfc3339(entry.last_updated_time),
    }


def entry_from_storage(doc: Mapping[str, object]) -> AccessListEntry:
    """Decode a stored entry (Vault's or ours); raises :class:`InternalError`."""
    d = StoredDocument(doc, "access list entry")
    return AccessListEntry(
        role=d.string("role"),
        client_nonce=d.string("client_nonce"),
        creation_time=time_from_storage(d, "creation_time"),
        disallow_reauthentication=d.boolean("disallow_reauthentication"),
        pending_time=d.string("pending_time"),
        expiration_time=time_from_storage(d, "expiration_time"),
        last_updated_time=time_from_storage(d, "last_updated_time"),
    )


def entry_read_data(entry: AccessListEntry) -> dict[str, object]:
    """The ``data`` of ``identity-accesslist/<instance_id>`` reads (times RFC 3339)."""
    return entry_to_storage(entry)


# --- reauthentication ----------------------------------------------------------------


@attrs.frozen
class Reauthentication:
    """The nonce rules' outcome for one login, before any role tag is applied.

    ``client_nonce`` is the presented nonce, :data:`REAUTHENTICATION_DISABLED_NONCE`
    when it was given empty, or the generated one when the field was absent.
    """

    client_nonce: str = attrs.field(repr=False)
    nonce_supplied: bool
    disallow_reauthentication: bool

    def returned_nonce(self, entry: AccessListEntry) -> str | None:
        """The ``nonce`` auth metadata: the generated nonce, unless the login supplied one
        or ``entry`` (the stored result) disallows reauthentication."""
        if self.nonce_supplied or entry.disallow_reauthentication:
            return None
        return self.client_nonce


def _pending_time(value: str) -> int:
    try:
        return go_parse_time(value)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


def _validate_metadata(
    stored: AccessListEntry, client_nonce: str, pending_time: str, allow_migration: bool
) -> None:
    """Vault's ``validateMetadata``."""
    if not stored.disallow_reauthentication and stored.client_nonce == "":
        raise InvalidRequestError("client nonce missing in stored identity")
    if stored.disallow_reauthentication or same(REAUTHENTICATION_DISABLED_NONCE, client_nonce):
        raise InvalidRequestError("reauthentication is disabled")
    given = _pending_time(pending_time)
    previous = _pending_time(stored.pending_time)
    if not same(client_nonce, stored.client_nonce):
        if not allow_migration:
            raise InvalidRequestError("client nonce mismatch")
        if given <= previous:
            raise InvalidRequestError("client nonce mismatch and instance meta-data incorrect")
    if given < previous:
        raise InvalidRequestError(
            "instance meta-data is older than the one used for previous login"
        )


def check_reauthentication(
    stored: AccessListEntry | None,
    *,
    nonce: str | None,
    pending_time: str,
    role_disallow_reauthentication: bool,
    role_allow_instance_migration: bool,
    generated_nonce: str,
) -> Reauthentication:
    """Apply the ``nonce`` field (None: absent) to the stored entry, in Vault's order.

    An empty nonce disables reauthentication (recorded as
    :data:`REAUTHENTICATION_DISABLED_NONCE`). With a stored entry, Vault's checks, each
    :class:`InvalidRequestError`: ``client nonce missing in stored identity`` (entry
    allows reauthentication but has no nonce); ``reauthentication is disabled`` (entry
    disallows it, or the empty-nonce marker was presented); Go's ``parsing time ...``
    for an unreadable ``pending_time`` (given, then stored); a nonce differing from the
    stored one (constant-time compare): ``client nonce mismatch`` unless the role allows
    instance migration, then ``client nonce mismatch and instance meta-data incorrect``
    unless ``pending_time`` is later than the stored one; finally ``instance meta-data is
    older than the one used for previous login``. A stored disallow is kept. When the
    field was absent, ``generated_nonce`` (Vault: a UUID) becomes the client nonce.
    """
    disallow = role_disallow_reauthentication
    client_nonce = nonce or ""
    if nonce == "":
        client_nonce = REAUTHENTICATION_DISABLED_NONCE
        disallow = True
    if stored is not None:
        _validate_metadata(stored, client_nonce, pending_time, role_allow_instance_migration)
        disallow = disallow or stored.disallow_reauthentication
    if nonce is None:
        client_nonce = generated_nonce
    return Reauthentication(client_nonce, nonce is not None, disallow)


def max_ttl_bounds(system_max_ttl: int, *max_ttls: int) -> tuple[int, int]:
    """``(shortest, longest)`` of the mount's max TTL and the positive role / role tag
    max TTLs: the shortest caps the token, the longest sets the entry's expiration."""
    shortest = longest = system_max_ttl
    for max_ttl in max_ttls:
        if 0 < max_ttl < shortest:
            shortest = max_ttl
        longest = max(longest, max_ttl)
    return shortest, longest


def next_entry(
    stored: AccessListEntry | None,
    reauth: Reauthentication,
    *,
    role_name: str,
    pending_time: str,
    tag_disallow_reauthentication: bool,
    now: datetime,
    ttl: int,
) -> AccessListEntry:
    """The entry a successful login stores (``ttl``: the longest max TTL).

    A new entry takes ``role_name``, the client nonce and ``now`` as creation time; a
    stored one keeps them. Both get ``pending_time``, ``last_updated_time`` ``now``,
    expiration ``now + ttl``, and reauthentication disallowed if the login, the stored
    entry or the role tag disallow it, in which case no nonce is kept. Raises
    ``client nonce exceeding the limit of 128 characters`` (400, bytes) unless
    reauthentication is disallowed.
    """
    now = utc(now)
    disallow = reauth.disallow_reauthentication or tag_disallow_reauthentication
    nonce_bytes = len(reauth.client_nonce.encode("utf-8", "surrogatepass"))
    if nonce_bytes > MAX_CLIENT_NONCE_LENGTH and not disallow:
        raise InvalidRequestError(
            f"client nonce exceeding the limit of {MAX_CLIENT_NONCE_LENGTH} characters"
        )
    if stored is None:
        role, client_nonce, created = role_name, reauth.client_nonce, now
    else:
        role, client_nonce, created = stored.role, stored.client_nonce, stored.creation_time
    return AccessListEntry(
        role=role,
        client_nonce="" if disallow else client_nonce,
        creation_time=created,
        disallow_reauthentication=disallow,
        pending_time=pending_time,
        expiration_time=now + timedelta(seconds=ttl),
        last_updated_time=now,
    )


def renew_entry(
    stored: AccessListEntry | None, instance_id: str, *, now: datetime, ttl: int
) -> AccessListEntry:
    """The entry a renewal stores: only ``last_updated_time`` and the expiration
    (``now + ttl``, the longest max TTL) change. A missing entry is Vault's 500
    ``failed to verify the access list identity entry for instance ID: "<id>"``."""
    if stored is None:
        raise InternalError(
            "failed to verify the access list identity entry for instance ID: "
            f"{go_quote(instance_id)}"
        )
    now = utc(now)
    return attrs.evolve(stored, last_updated_time=now, expiration_time=now + timedelta(seconds=ttl))


# --- tidy ----------------------------------------------------------------------------


@attrs.frozen
class TidyConfig:
    """``config/tidy/identity-accesslist`` or ``config/tidy/roletag-denylist``."""

    safety_buffer: int
    disable_periodic_tidy: bool = False


def write_tidy_config(
    existing: TidyConfig | None, data: Mapping[str, object], *, default_safety_buffer: int
) -> TidyConfig:
    """Apply a write: given fields replace stored ones; a new config (Vault's create)
    takes the defaults (``default_safety_buffer``, periodic tidy enabled) for the rest."""
    fields = parse_fields(data, TIDY_CONFIG_FIELDS)
    base = existing if existing is not None else TidyConfig(default_safety_buffer)
    safety_buffer = fields.integer("safety_buffer")
    disable = fields.boolean("disable_periodic_tidy")
    return TidyConfig(
        safety_buffer=base.safety_buffer if safety_buffer is None else safety_buffer,
        disable_periodic_tidy=base.disable_periodic_tidy if disable is None else disable,
    )


def tidy_config_to_storage(config: TidyConfig) -> dict[str, object]:
    """Vault's stored JSON (``safety_buffer`` in seconds); also the read ``data``."""
    return {
        "safety_buffer": config.safety_buffer,
        "disable_periodic_tidy": config.disable_periodic_tidy,
    }


def tidy_config_from_storage(doc: Mapping[str, object]) -> TidyConfig:
    """Decode a stored tidy config; raises :class:`InternalError`."""
    d = StoredDocument(doc, "tidy config")
    return TidyConfig(d.integer("safety_buffer"), d.boolean("disable_periodic_tidy"))


def tidy_config_read_data(config: TidyConfig) -> dict[str, object]:
    """The ``data`` of a tidy config read."""
    return tidy_config_to_storage(config)


def periodic_safety_buffer(config: TidyConfig | None, *, default: int) -> int | None:
    """The periodic tidy's safety buffer: the configured one, ``default`` without a
    config, None when periodic tidy is disabled."""
    if config is None:
        return default
    return None if config.disable_periodic_tidy else config.safety_buffer


def tidy_safety_buffer(data: Mapping[str, object]) -> int:
    """``safety_buffer`` of a ``tidy/identity-accesslist`` or ``tidy/roletag-denylist``
    request (default 72h)."""
    value = parse_fields(data, TIDY_FIELDS).integer("safety_buffer")
    return TIDY_SAFETY_BUFFER_DEFAULT if value is None else value
