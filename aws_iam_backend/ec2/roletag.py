"""Role tags (``role/<role>/tag``) and their deny list (``roletag-denylist/<tag>``).

A role tag narrows what an instance logging in to an ec2 role gets. Its value, set
on the instance under the role's ``role_tag`` key, is Vault's

    ``v1:<nonce>:r=<role>:d=<bool>:m=<bool>[:p=<policy,...>][:i=<instance_id>][:t=<s>]:<hmac>``

where ``<hmac>`` is base64 (standard, padded) of HMAC-SHA256 under the role's
``hmac_key`` over everything before the last ``:`` (``d``: disallow_reauthentication,
``m``: allow_instance_migration, ``t``: max_ttl in seconds; optional parts only when
set). A login (``handleRoleTagLogin``) runs :func:`role_tag_value`,
:func:`parse_role_tag`, loads the role the tag names (:func:`tag_role_not_found` when
missing), :func:`verify_role_tag` with that role's key, then :func:`check_role_tag`.

Deny-listed tags are stored at ``blacklist/roletag/<base64(tag)>`` (Vault's key) as
:class:`DenylistEntry`; tidy removes them (:func:`aws_iam_backend.ec2.accesslist.tidy_due`).

Only canonical values are accepted (stricter than Vault, which would verify re-spelled
tags that then escape the deny list): see :func:`parse_role_tag`.

Vault answers the tag checks made at login and deny-listing with a plain Go error, so
they are :class:`InternalError` (500) here too; request-field mistakes are 400s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from aws_iam_backend.ec2.accesslist import GO_ZERO_TIME, time_from_storage
from aws_iam_backend.ec2.document import INSTANCE_ID
from aws_iam_backend.errors import InternalError, InvalidRequestError
from aws_iam_backend.vault.fields import (
    MAX_DURATION_SECONDS,
    FieldType,
    StoredDocument,
    parse_fields,
    to_bool,
)
from aws_iam_backend.vault.gocompat import (
    Base64Error,
    DurationError,
    b64decode_std,
    go_quote,
    parse_duration_seconds,
)
from aws_iam_backend.vault.policies import sanitize_policies
from aws_iam_backend.vault.roles import Role
from aws_iam_backend.vault.tokens import rfc3339, same, utc

ROLE_TAG_VERSION = "v1"
MAX_ROLE_TAG_LENGTH = 255
"""EC2's limit on a tag value (bytes), which Vault enforces when creating a tag."""

DENYLIST_STORAGE_PREFIX = "blacklist/roletag/"
"""Vault's storage prefix of deny list entries (the key ends with the tag in base64)."""

ROLE_TAG_FIELDS: Mapping[str, FieldType] = {
    "role": FieldType.STRING,
    "instance_id": FieldType.STRING,
    "policies": FieldType.COMMA_STRINGS,
    "max_ttl": FieldType.DURATION,
    "allow_instance_migration": FieldType.BOOL,
    "disallow_reauthentication": FieldType.BOOL,
}
"""Field schema of ``role/<role>/tag`` (``role`` is the path parameter)."""

_MISSING_ROLE_TAG = "missing role_tag"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def new_hmac_key() -> str:
    """A role's ``hmac_key``: a random UUID, as Vault generates."""
    return str(uuid.uuid4())


def new_role_tag_nonce() -> str:
    """A tag's nonce: 8 random bytes in standard base64, as Vault makes."""
    return base64.b64encode(secrets.token_bytes(8)).decode("ascii")


def role_tag_hmac(hmac_key: str, plaintext: str) -> str:
    """Base64 HMAC-SHA256 of ``plaintext`` under ``hmac_key`` (``invalid HMAC key`` if empty)."""
    if hmac_key == "":
        raise InternalError("invalid HMAC key")
    digest = hmac.new(_utf8(hmac_key), _utf8(plaintext), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


@attrs.frozen
class RoleTag:
    """A role tag, as parsed (``policies`` as given; ``max_ttl`` in seconds, 0 unset)."""

    role: str
    nonce: str
    policies: tuple[str, ...] = ()
    max_ttl: int = 0
    instance_id: str = ""
    disallow_reauthentication: bool = False
    allow_instance_migration: bool = False
    hmac: str = ""

    def plaintext(self) -> str:
        """The signed part in its canonical form (``prepareRoleTagPlaintextValue``)."""
        parts = [
            ROLE_TAG_VERSION,
            self.nonce,
            f"r={self.role}",
            f"d={str(self.disallow_reauthentication).lower()}",
            f"m={str(self.allow_instance_migration).lower()}",
        ]
        if self.policies:
            parts.append("p=" + ",".join(self.policies))
        if self.instance_id:
            parts.append(f"i={self.instance_id}")
        if self.max_ttl > 0:
            parts.append(f"t={self.max_ttl}")
        return ":".join(parts)


def _signed_text(tag: RoleTag) -> str:
    """The plaintext to sign or verify; ``missing nonce`` when the nonce is empty."""
    if tag.nonce == "":
        raise InternalError("missing nonce")
    return tag.plaintext()


def create_role_tag(
    role: Role, data: Mapping[str, object], *, nonce: str, system_max_ttl: int
) -> tuple[dict[str, str], list[str]]:
    """``role/<role>/tag`` (``pathRoleTagUpdate``): ``{"tag_key", "tag_value"}`` and warnings.

    In Vault's order: fields converted (``Field validation failed: ...``); ``tag creation
    is not enabled for this role`` (no ``role_tag``); 500 ``failed to find the HMAC key``;
    ``instance_id`` lower-cased; given ``policies`` sanitised (absent: the tag inherits
    the role's; given empty: also inherits, as Vault's code does), warning ``Policies on
    the tag are not a subset of the policies set on the role. ...``; warning ``Role does
    not allow instance migration. ...``; ``cannot set both disallow_reauthentication and
    allow_instance_migration``; warnings when ``max_ttl`` exceeds the mount's or the
    role's max TTL; 500 ``role tag 'value' exceeding the limit of 255 characters``.

    Stricter than Vault: policy sanitising (``root`` refused); after Vault's checks,
    ``instance_id`` must be an EC2 instance ID and no policy may contain ``:`` (either
    would make a tag that can never be used). ``nonce`` is :func:`new_role_tag_nonce`'s.
    """
    fields = parse_fields(data, ROLE_TAG_FIELDS)
    if role.role_tag == "":
        raise InvalidRequestError("tag creation is not enabled for this role")
    if role.hmac_key == "":
        raise InternalError("failed to find the HMAC key")
    warnings: list[str] = []
    instance_id = (fields.string("instance_id") or "").lower()
    given = fields.strings("policies")
    policies = () if given is None else sanitize_policies(given)
    if not set(policies) <= set(role.token.token_policies):
        warnings.append(
            "Policies on the tag are not a subset of the policies set on the role. Login will "
            "not be allowed with this tag unless the role policies are updated."
        )
    disallow = bool(fields.boolean("disallow_reauthentication"))
    migration = bool(fields.boolean("allow_instance_migration"))
    if migration and not role.allow_instance_migration:
        warnings.append(
            "Role does not allow instance migration. Login will not be allowed with this tag "
            "unless the role value is updated."
        )
    if disallow and migration:
        raise InvalidRequestError(
            "cannot set both disallow_reauthentication and allow_instance_migration"
        )
    if instance_id and not INSTANCE_ID.fullmatch(instance_id):
        raise InvalidRequestError(f"invalid instance_id {go_quote(instance_id)}")
    for policy in policies:
        if ":" in policy:
            raise InvalidRequestError(
                f"invalid policy name {go_quote(policy)}: ':' separates the parts of a role tag"
            )
    max_ttl = fields.integer("max_ttl") or 0
    if max_ttl > system_max_ttl:
        warnings.append(
            f"Given max TTL of {max_ttl} is greater than the mount maximum of {system_max_ttl} "
            "seconds, and will be capped at login time."
        )
    role_max_ttl = role.token.token_max_ttl
    if role_max_ttl != 0 and max_ttl > role_max_ttl:
        warnings.append(
            f"Given max TTL of {max_ttl} is greater than the role maximum of {role_max_ttl} "
            "seconds, and will be capped at login time."
        )
    tag = RoleTag(
        role=role.name,
        nonce=nonce,
        policies=policies,
        max_ttl=max_ttl,
        instance_id=instance_id,
        disallow_reauthentication=disallow,
        allow_instance_migration=migration,
    )
    plaintext = _signed_text(tag)
    value = f"{plaintext}:{role_tag_hmac(role.hmac_key, plaintext)}"
    if len(_utf8(value)) > MAX_ROLE_TAG_LENGTH:
        raise InternalError(
            f"role tag 'value' exceeding the limit of {MAX_ROLE_TAG_LENGTH} characters"
        )
    return {"tag_key": role.role_tag, "tag_value": value}, warnings


def _parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if text:
        try:
            return to_bool(text)
        except ValueError:
            pass
    raise InternalError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


def _parse_seconds(text: str) -> int:
    """``parseutil.ParseDurationSecond(text + "s")`` in whole seconds."""
    duration = text + "s"
    try:
        seconds = parse_duration_seconds(duration)
    except DurationError as exc:
        raise InternalError(str(exc)) from None
    if abs(seconds) > MAX_DURATION_SECONDS:
        raise InternalError(f"time: invalid duration {go_quote(duration)}")
    return seconds


def parse_role_tag(value: str) -> RoleTag:
    """Parse a tag value (``parseAndVerifyRoleTagValue`` up to the role lookup).

    Raises :class:`InternalError` with Vault's texts: ``invalid tag`` (fewer than four
    ``:``-separated parts), ``invalid role tag version``, Go's ``strconv.ParseBool`` /
    duration errors for ``d=``, ``m=``, ``t=``, ``unrecognized item "<item>" in tag``,
    ``missing role name``.

    Stricter than Vault: ``invalid tag`` also for a value over 255 bytes, and for one
    that is not in the canonical form :meth:`RoleTag.plaintext` writes (parts reordered
    or repeated, ``d=0`` for ``d=false``, ``t=05``, ...). Vault verifies the HMAC over
    the rebuilt canonical text, so such re-spellings of a signed tag would verify while
    escaping the deny list, which is keyed by the tag's text.
    """
    items = value.split(":")
    if len(items) < 4 or len(_utf8(value)) > MAX_ROLE_TAG_LENGTH:
        raise InternalError("invalid tag")
    if items[0] != ROLE_TAG_VERSION:
        raise InternalError("invalid role tag version")
    tag = RoleTag(role="", nonce=items[1], hmac=items[-1])
    for item in items[2:-1]:
        key, text = item[:2], item[2:]
        if key == "i=":
            tag = attrs.evolve(tag, instance_id=text)
        elif key == "r=":
            tag = attrs.evolve(tag, role=text)
        elif key == "p=":
            tag = attrs.evolve(tag, policies=tuple(text.split(",")))
        elif key == "d=":
            tag = attrs.evolve(tag, disallow_reauthentication=_parse_bool(text))
        elif key == "m=":
            tag = attrs.evolve(tag, allow_instance_migration=_parse_bool(text))
        elif key == "t=":
            tag = attrs.evolve(tag, max_ttl=_parse_seconds(text))
        else:
            raise InternalError(f"unrecognized item {go_quote(item)} in tag")
    if tag.role == "":
        raise InternalError("missing role name")
    if tag.plaintext() != value[: -len(tag.hmac) - 1]:
        raise InternalError("invalid tag")
    return tag


def tag_role_not_found(role_name: str) -> InternalError:
    """Vault's error when the role a tag names does not exist."""
    return InternalError(f"entry not found for {go_quote(role_name)}")


def verify_role_tag(tag: RoleTag, hmac_key: str) -> None:
    """Recompute the HMAC of the tag's plaintext under the key of the role the tag names
    and compare in constant time: ``missing nonce``, ``role tag signature verification
    failed``."""
    if not same(tag.hmac, role_tag_hmac(hmac_key, _signed_text(tag))):
        raise InternalError("role tag signature verification failed")


def role_tag_value(found: str | None, tag_key: str) -> str:
    """The instance's role tag: ``found`` is the value of its first tag named ``tag_key``
    (the role's ``role_tag``; :meth:`aws_iam_backend.ec2.instance.Ec2Instance.tag`). None or
    empty is ``missing tag with key "<key>" on the instance``."""
    if not found:
        raise InternalError(f"missing tag with key {go_quote(tag_key)} on the instance")
    return found


@attrs.frozen
class RoleTagGrant:
    """What a verified tag changes at login. Empty ``policies``: the role's apply."""

    policies: tuple[str, ...]
    max_ttl: int
    disallow_reauthentication: bool


def check_role_tag(
    tag: RoleTag,
    *,
    role_name: str,
    role_policies: Sequence[str],
    instance_id: str,
    denylisted: bool,
) -> RoleTagGrant:
    """Vault's checks of a verified tag against the login, in order: ``role on the tag is
    not matching the role supplied``, ``role tag is being used by an unauthorized
    instance`` (tag bound to another instance), ``role tag is deny listed``, ``policies
    on the role tag must be subset of policies on the role``."""
    if tag.role != role_name:
        raise InternalError("role on the tag is not matching the role supplied")
    if tag.instance_id and tag.instance_id != instance_id:
        raise InternalError("role tag is being used by an unauthorized instance")
    if denylisted:
        raise InternalError("role tag is deny listed")
    if not set(tag.policies) <= set(role_policies):
        raise InternalError("policies on the role tag must be subset of policies on the role")
    return RoleTagGrant(tag.policies, tag.max_ttl, tag.disallow_reauthentication)


# --- deny list -----------------------------------------------------------------------


@attrs.frozen
class DenylistEntry:
    """A deny-listed tag (Vault's ``roleTagBlacklistEntry``)."""

    creation_time: datetime
    expiration_time: datetime


def denylist_role_tag(role_tag: str) -> str:
    """The tag a deny-list write names: its ``role_tag`` base64-decoded when it decodes (to
    UTF-8), else as given; empty is ``missing role_tag`` (400)."""
    if role_tag == "":
        raise InvalidRequestError(_MISSING_ROLE_TAG)
    try:
        return b64decode_std(role_tag).decode("utf-8")
    except (Base64Error, UnicodeDecodeError):
        return role_tag


def denylist_storage_key(tag: str) -> str:
    """``blacklist/roletag/<base64(tag)>``; reads and deletes take the tag as it is, and
    an empty one is ``missing role_tag`` (400)."""
    if tag == "":
        raise InvalidRequestError(_MISSING_ROLE_TAG)
    return DENYLIST_STORAGE_PREFIX + base64.b64encode(_utf8(tag)).decode("ascii")


def denylist_tags(names: Iterable[str]) -> list[str]:
    """The ``roletag-denylist/`` list: stored names (below the prefix) decoded back to
    tags; an undecodable name is a 500 as in Vault."""
    tags = []
    for name in names:
        try:
            tags.append(b64decode_std(name).decode("utf-8", "replace"))
        except Base64Error:
            raise InternalError(f"illegal base64 data in deny list key {go_quote(name)}") from None
    return tags


def denylist_entry(
    existing: DenylistEntry | None,
    *,
    now: datetime,
    tag_max_ttl: int,
    role_max_ttl: int,
    system_max_ttl: int,
) -> DenylistEntry:
    """The entry a deny-list write stores: creation time kept once set, expiration ``now``
    plus the longest of the tag's, the role's and the mount's max TTL."""
    now = utc(now)
    created = now
    if existing is not None and existing.creation_time != GO_ZERO_TIME:
        created = existing.creation_time
    longest = max(tag_max_ttl, role_max_ttl, system_max_ttl)
    return DenylistEntry(created, now + timedelta(seconds=longest))


def denylist_to_storage(entry: DenylistEntry) -> dict[str, object]:
    """Vault's stored JSON (RFC 3339 times); also the read ``data``."""
    return {
        "creation_time": rfc3339(entry.creation_time),
        "expiration_time": rfc3339(entry.expiration_time),
    }


def denylist_from_storage(doc: Mapping[str, object]) -> DenylistEntry:
    """Decode a stored deny list entry; raises :class:`InternalError`."""
    d = StoredDocument(doc, "deny list entry")
    return DenylistEntry(
        time_from_storage(d, "creation_time"), time_from_storage(d, "expiration_time")
    )


def denylist_read_data(entry: DenylistEntry) -> dict[str, object]:
    """The ``data`` of ``roletag-denylist/<tag>`` reads."""
    return denylist_to_storage(entry)
