"""Roles: the ``role/<name>`` entries that decide who may log in and what token they get.

- :func:`normalize_role_name`: Vault's name grammar, ASCII only, lower-cased.
- :func:`write_role`: Vault's create/update algorithm (``pathRoleCreateUpdate``) as a
  pure function, with our stricter checks on ``bound_iam_principal_arn``.
- :func:`role_read_data`: the read response (``ToResponseData``).
- :func:`role_to_storage` / :func:`role_from_storage`: Vault's storage JSON (durations in
  nanoseconds), with the v0..v2 upgrades applied on read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from aws_iam_backend.errors import BackendError, InternalError, InvalidRequestError
from aws_iam_backend.login.arn import ArnError, parse_iam_arn
from aws_iam_backend.login.partitions import partition_by_id
from aws_iam_backend.vault.fields import FieldType, StoredDocument, parse_fields
from aws_iam_backend.vault.gocompat import go_quote
from aws_iam_backend.vault.tokenutil import (
    DEFAULT_SYSTEM_TTL,
    LEGACY_TOKEN_FIELDS,
    TOKEN_FIELDS,
    TOKEN_TYPES,
    TokenSettings,
    format_cidr,
    parse_cidrs,
    parse_token_fields,
    token_response_fields,
)

ROLE_VERSION = 3
MAX_ROLE_NAME_LENGTH = 128
MAX_BOUND_VALUES = 256
EC2_ENTITY_TYPE = "ec2_instance"

_NAME = re.compile(r"\w(([\w\-.]+)?\w)?", re.ASCII)
_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_NS = 1_000_000_000

_LIST_FIELDS = (
    "bound_ami_id",
    "bound_account_id",
    "bound_ec2_instance_id",
    "bound_iam_principal_arn",
    "bound_iam_principal_id",
    "bound_iam_role_arn",
    "bound_iam_instance_profile_arn",
    "bound_region",
    "bound_subnet_id",
    "bound_vpc_id",
)

ROLE_FIELDS: Mapping[str, FieldType] = {
    "role": FieldType.STRING,
    "auth_type": FieldType.STRING,
    "bound_ami_id": FieldType.COMMA_STRINGS,
    "bound_account_id": FieldType.COMMA_STRINGS,
    "bound_iam_principal_arn": FieldType.COMMA_STRINGS,
    "bound_region": FieldType.COMMA_STRINGS,
    "bound_iam_role_arn": FieldType.COMMA_STRINGS,
    "bound_iam_instance_profile_arn": FieldType.COMMA_STRINGS,
    "bound_ec2_instance_id": FieldType.COMMA_STRINGS,
    "resolve_aws_unique_ids": FieldType.BOOL,
    "inferred_entity_type": FieldType.STRING,
    "inferred_aws_region": FieldType.STRING,
    "bound_vpc_id": FieldType.COMMA_STRINGS,
    "bound_subnet_id": FieldType.COMMA_STRINGS,
    "role_tag": FieldType.STRING,
    "allow_instance_migration": FieldType.BOOL,
    "disallow_reauthentication": FieldType.BOOL,
    "require_challenge": FieldType.BOOL,
    **LEGACY_TOKEN_FIELDS,
    **TOKEN_FIELDS,
}
"""Field schema of ``role/<role>`` (``role`` is the path parameter)."""


@attrs.frozen
class Role:
    """A role entry. List fields are tuples; durations are seconds.

    ``hmac_key`` signs the role's role tags (never shown in a read).
    """

    name: str
    role_id: str
    auth_type: str = "iam"
    bound_iam_principal_arn: tuple[str, ...] = ()
    bound_iam_principal_id: tuple[str, ...] = ()
    resolve_aws_unique_ids: bool = True
    inferred_entity_type: str = ""
    inferred_aws_region: str = ""
    bound_account_id: tuple[str, ...] = ()
    bound_ami_id: tuple[str, ...] = ()
    bound_ec2_instance_id: tuple[str, ...] = ()
    bound_iam_role_arn: tuple[str, ...] = ()
    bound_iam_instance_profile_arn: tuple[str, ...] = ()
    bound_region: tuple[str, ...] = ()
    bound_subnet_id: tuple[str, ...] = ()
    bound_vpc_id: tuple[str, ...] = ()
    role_tag: str = ""
    allow_instance_migration: bool = False
    disallow_reauthentication: bool = False
    require_challenge: bool = False  # ours: logins must sign a server-issued nonce
    token: TokenSettings = attrs.field(factory=TokenSettings)
    version: int = ROLE_VERSION
    hmac_key: str = attrs.field(default="", repr=False)


def normalize_role_name(name: str) -> str:
    """The storage name of a role: Vault's ``\\w(([\\w-.]+)?\\w)?`` (ASCII), at most 128
    characters, lower-cased. Raises :class:`InvalidRequestError` (``missing role`` if empty)."""
    if name == "":
        raise InvalidRequestError("missing role")
    if len(name) > MAX_ROLE_NAME_LENGTH or _NAME.fullmatch(name) is None:
        raise InvalidRequestError(
            "invalid role name: use at most 128 ASCII letters, digits, '_', '-' and '.', "
            "starting and ending with a letter, digit or '_'"
        )
    return name.lower()


def validate_bound_principal_arn(arn: str) -> None:
    """Our grammar for one ``bound_iam_principal_arn`` entry (attacks 73, 74, 96).

    Exact: ``arn:<known partition>:iam::<12 digits>:<type>/[<path>/]<name>`` with type
    ``user``, ``role`` or ``instance-profile``. Wildcard: a single trailing ``*`` after
    the account, whose prefix can still grow into a ``user/`` or ``role/`` ARN
    (``arn:aws:iam::123456789012:*``, ``...:role/*``, ``...:role/app-*``): wildcards are
    matched against IAM's full ARN of the caller, which is never an instance profile.
    Printable ASCII only. Service ``sts`` and ``assumed-role`` are refused (Vault cannot
    resolve them). Instance-profile ARNs are accepted as Vault accepts them, and never
    match an IAM login (:func:`write_role` warns).
    """
    _check_iam_arn(
        "bound_iam_principal_arn", arn, ("user", "role", "instance-profile"), ("user", "role")
    )


_EC2_ARN_BINDS = {
    "bound_iam_role_arn": "role",
    "bound_iam_instance_profile_arn": "instance-profile",
}


def _check_iam_arn(
    field: str, arn: str, exact_types: tuple[str, ...], wildcard_types: tuple[str, ...]
) -> None:
    """``arn`` is an IAM ARN of one of ``exact_types``, or a trailing-``*`` wildcard whose
    prefix can still grow into one of ``wildcard_types``."""

    def error(reason: str) -> InvalidRequestError:
        return InvalidRequestError(f"invalid {field} {go_quote(arn)}: {reason}")

    if arn == "":
        raise error("empty value")
    if not all("\x21" <= char <= "\x7e" for char in arn):
        raise error("only printable ASCII without spaces is allowed")
    star = arn.find("*")
    if star != -1:
        if len(arn[:star].split(":")) < 6:
            raise error("a wildcard may not cover the partition or account")
        if star != len(arn) - 1:
            raise error("a wildcard is only allowed as the last character")
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise error("not an ARN")
    _, partition, service, region, account, resource = parts
    if partition_by_id(partition) is None:
        raise error(f"unknown partition {go_quote(partition)}")
    if service != "iam":
        raise error('the service must be "iam"')
    if region != "":
        raise error("the region must be empty")
    if _ACCOUNT.fullmatch(account) is None:
        raise error("the account ID must be 12 digits")
    if star != -1:
        prefix = resource[:-1]
        if not any(
            f"{kind}/".startswith(prefix) or prefix.startswith(f"{kind}/")
            for kind in wildcard_types
        ):
            raise error(f"the resource type must be {' or '.join(wildcard_types)}")
        return
    if resource.split("/", 1)[0] not in exact_types:
        raise error(f"the resource type must be {' or '.join(exact_types)}")
    try:
        entity = parse_iam_arn(arn)
    except ArnError as exc:
        raise error(str(exc)) from None
    if entity.friendly_name == "" or "//" in resource:
        raise error("empty path segment or name")


_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){2,3}", re.ASCII)
_MAX_BIND_LENGTH = 256


def _validate_ec2_binds(field: str, values: tuple[str, ...]) -> None:
    """Our grammar for the EC2 bind lists.

    Role and instance-profile ARNs (matched by prefix when ending in ``*``) follow
    :func:`_check_iam_arn`, so no wildcard reaches across accounts. Other values (IDs,
    accounts, regions, compared exactly) are printable ASCII without spaces, at most
    256 characters: what Vault's own tests write is kept.
    """
    for value in values:
        if field in _EC2_ARN_BINDS:
            kind = _EC2_ARN_BINDS[field]
            _check_iam_arn(field, value, (kind,), (kind,))
        elif not (
            0 < len(value) <= _MAX_BIND_LENGTH and all("\x21" <= c <= "\x7e" for c in value)
        ):
            raise InvalidRequestError(
                f"invalid {field} {go_quote(value)}: use 1 to {_MAX_BIND_LENGTH} printable "
                "ASCII characters without spaces"
            )


def _dedupe(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _capped(field: str, values: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) > MAX_BOUND_VALUES:
        raise InvalidRequestError(
            f"too many {field} values: {len(values)} given, at most {MAX_BOUND_VALUES} allowed"
        )
    return values


def resolution_error(arn: str, exc: BackendError) -> BackendError:
    """The error of a failed unique-ID lookup of ``arn``, in Vault's words (same class)."""
    return type(exc)(f"unable to resolve ARN {go_quote(arn)} to internal ID: {exc.message}")


def _resolve(arn: str, resolve_unique_id: Callable[[str], str]) -> str:
    try:
        return resolve_unique_id(arn)
    except BackendError as exc:
        raise resolution_error(arn, exc) from exc


def write_role(
    existing: Role | None,
    data: Mapping[str, object],
    *,
    name: str,
    new_role_id: str,
    resolve_unique_id: Callable[[str], str],
    system_max_ttl: int,
    new_hmac_key: str = "",
    system_default_ttl: int = DEFAULT_SYSTEM_TTL,
) -> tuple[Role, list[str]]:
    """Create (``existing`` None) or update a role from request ``data``, in Vault's order.

    Every field is converted first (``Field validation failed: ...``). Then: the bound
    lists; ``resolve_aws_unique_ids`` (never true -> false); new ``bound_iam_principal_arn``
    values replace the list and clear the resolved IDs; with resolution on and no IDs,
    ``resolve_unique_id`` is called for each bound ARN not ending in ``*`` (before any
    auth-type check, as Vault does; its :class:`BackendError` is re-raised as the same
    class with ``unable to resolve ARN "<arn>" to internal ID: <err>``); ``auth_type``;
    inference consistency; bind/auth-type compatibility (``at least one bound parameter
    should be specified on the role``); ec2-only booleans; token fields; ``role_tag``.

    A role without an ``hmac_key`` (for role tags) takes ``new_hmac_key``, as Vault
    generates one for every role.

    Stricter than Vault: the role name grammar, the bound ARN grammar
    (:func:`validate_bound_principal_arn`), the EC2 bind grammar
    (:func:`_validate_ec2_binds`, checked after Vault's own checks), duplicates removed,
    at most 256 values per bound list, policy sanitising, and ``inferred_aws_region``
    must look like a region.
    Returns the role and the warnings.
    """
    role_name = normalize_role_name(name)
    fields = parse_fields(data, ROLE_FIELDS)
    is_create = existing is None
    role = existing if existing is not None else Role(name=role_name, role_id=new_role_id)
    role = attrs.evolve(role, name=role_name)
    auth_type = "" if is_create else role.auth_type
    changes: dict[str, Any] = {}

    for field in (
        "bound_ami_id",
        "bound_account_id",
        "bound_region",
        "bound_vpc_id",
        "bound_subnet_id",
    ):
        values = fields.strings(field)
        if values is not None:
            changes[field] = _capped(field, _dedupe(values))

    resolve = role.resolve_aws_unique_ids
    given_resolve = fields.boolean("resolve_aws_unique_ids")
    if given_resolve is not None:
        if not is_create and resolve and not given_resolve:
            raise InvalidRequestError(
                "changing resolve_aws_unique_ids from true to false is not allowed"
            )
        resolve = given_resolve
    elif is_create:
        resolve = True

    for field in ("bound_iam_role_arn", "bound_iam_instance_profile_arn", "bound_ec2_instance_id"):
        values = fields.strings(field)
        if values is not None:
            changes[field] = _capped(field, _dedupe(values))

    principal_arns = role.bound_iam_principal_arn
    principal_ids = role.bound_iam_principal_id
    given_arns = fields.strings("bound_iam_principal_arn")
    if given_arns is not None:
        for arn in given_arns:
            validate_bound_principal_arn(arn)
        principal_arns = _capped("bound_iam_principal_arn", _dedupe(given_arns))
        principal_ids = ()
    if resolve and not principal_ids:
        principal_ids = tuple(
            _resolve(arn, resolve_unique_id) for arn in principal_arns if not arn.endswith("*")
        )

    inferred_type = fields.string("inferred_entity_type")
    if inferred_type is None:
        inferred_type = role.inferred_entity_type
    inferred_region = fields.string("inferred_aws_region")
    if inferred_region is None:
        inferred_region = role.inferred_aws_region

    given_auth_type = fields.string("auth_type")
    if given_auth_type is not None:
        if auth_type == "":
            if given_auth_type not in ("ec2", "iam"):
                raise InvalidRequestError(f"unrecognized auth_type: {given_auth_type}")
            auth_type = given_auth_type
        elif given_auth_type != auth_type:
            raise InvalidRequestError("changing auth_type on a role is not allowed")
    elif is_create:
        auth_type = "iam"

    allow_ec2_binds = auth_type == "ec2"
    if inferred_type != "":
        if auth_type != "iam":
            raise InvalidRequestError(
                "specified inferred_entity_type but didn't allow iam auth_type"
            )
        if inferred_type != EC2_ENTITY_TYPE:
            raise InvalidRequestError(f"specified invalid inferred_entity_type: {inferred_type}")
        if inferred_region == "":
            raise InvalidRequestError("specified inferred_entity_type but not inferred_aws_region")
        if _REGION.fullmatch(inferred_region) is None:
            raise InvalidRequestError(f"invalid inferred_aws_region {go_quote(inferred_region)}")
        allow_ec2_binds = True
    elif inferred_region != "":
        raise InvalidRequestError("specified inferred_aws_region but not inferred_entity_type")

    role = attrs.evolve(
        role,
        auth_type=auth_type,
        resolve_aws_unique_ids=resolve,
        bound_iam_principal_arn=principal_arns,
        bound_iam_principal_id=principal_ids,
        inferred_entity_type=inferred_type,
        inferred_aws_region=inferred_region,
        **changes,
    )
    _check_binds(role, allow_ec2_binds)
    for field, values in changes.items():
        _validate_ec2_binds(field, values)
    role = _apply_ec2_flags(role, fields.boolean, is_create=is_create)
    token, warnings = parse_token_fields(
        data, role.token, default_ttl=system_default_ttl, max_ttl=system_max_ttl
    )
    role = attrs.evolve(role, token=token, hmac_key=role.hmac_key or new_hmac_key)
    if role.auth_type == "iam" and any(
        ":instance-profile/" in arn for arn in role.bound_iam_principal_arn
    ):
        warnings.append(
            "an instance-profile ARN in bound_iam_principal_arn never matches an iam login "
            "(STS reports the instance's role): bind the role's ARN, or use "
            "inferred_entity_type=ec2_instance with bound_iam_instance_profile_arn"
        )
    require_challenge = fields.boolean("require_challenge")
    if require_challenge is not None:
        role = attrs.evolve(role, require_challenge=require_challenge)

    role_tag = fields.string("role_tag")
    if role_tag is not None:
        if role.auth_type != "ec2":
            raise InvalidRequestError("tried to enable role_tag when not using ec2 auth method")
        if len(role_tag) > 127:
            raise InvalidRequestError(
                "length of role tag exceeds the EC2 key limit of 127 characters"
            )
        role = attrs.evolve(role, role_tag=role_tag)
    return role, warnings


def _check_binds(role: Role, allow_ec2_binds: bool) -> None:
    suffix = f"but not specifying ec2 auth_type or inferring {EC2_ENTITY_TYPE}"
    checks = (
        ("bound_account_id", allow_ec2_binds, suffix),
        ("bound_region", role.auth_type == "ec2", "but not specifying ec2 auth_type"),
        ("bound_ami_id", allow_ec2_binds, suffix),
        ("bound_iam_instance_profile_arn", allow_ec2_binds, suffix),
        ("bound_ec2_instance_id", allow_ec2_binds, suffix),
        ("bound_iam_role_arn", allow_ec2_binds, suffix),
        ("bound_iam_principal_arn", role.auth_type == "iam", "but not specifying iam auth_type"),
        ("bound_vpc_id", allow_ec2_binds, suffix),
        ("bound_subnet_id", allow_ec2_binds, suffix),
    )
    binds = 0
    for field, allowed, message in checks:
        if getattr(role, field):
            if not allowed:
                raise InvalidRequestError(f"specified {field} {message}")
            binds += 1
    if binds == 0:
        raise InvalidRequestError("at least one bound parameter should be specified on the role")


def _apply_ec2_flags(role: Role, get: Callable[[str], bool | None], *, is_create: bool) -> Role:
    flags: dict[str, Any] = {}
    for field in ("disallow_reauthentication", "allow_instance_migration"):
        value = get(field)
        if value is not None:
            if role.auth_type != "ec2":
                raise InvalidRequestError(f"specified {field} when not using ec2 auth type")
            flags[field] = value
        elif is_create and role.auth_type == "ec2":
            flags[field] = False
    role = attrs.evolve(role, **flags)
    if role.allow_instance_migration and role.disallow_reauthentication:
        raise InvalidRequestError(
            "cannot specify both disallow_reauthentication=true and allow_instance_migration=true"
        )
    return role


def role_read_data(role: Role) -> dict[str, object]:
    """The ``data`` of a role read (``ToResponseData``): every list is a list (``[]`` when
    empty); the deprecated ``ttl``, ``max_ttl``, ``period``, ``policies`` keys appear only
    when their legacy values are set, ``policies`` mirroring ``token_policies``."""
    token = role.token
    data: dict[str, object] = {field: list(getattr(role, field)) for field in _LIST_FIELDS}
    data.update(
        auth_type=role.auth_type,
        inferred_entity_type=role.inferred_entity_type,
        inferred_aws_region=role.inferred_aws_region,
        resolve_aws_unique_ids=role.resolve_aws_unique_ids,
        role_id=role.role_id,
        role_tag=role.role_tag,
        allow_instance_migration=role.allow_instance_migration,
        disallow_reauthentication=role.disallow_reauthentication,
        require_challenge=role.require_challenge,
        **token_response_fields(token),
    )
    if token.legacy_ttl > 0:
        data["ttl"] = token.legacy_ttl
    if token.legacy_max_ttl > 0:
        data["max_ttl"] = token.legacy_max_ttl
    if token.legacy_period > 0:
        data["period"] = token.legacy_period
    if token.legacy_policies:
        data["policies"] = list(token.token_policies)
    return data


def role_to_storage(role: Role) -> dict[str, object]:
    """The JSON document Vault stores at ``role/<name>`` (durations in nanoseconds)."""
    token = role.token
    doc: dict[str, object] = {
        "role_id": role.role_id,
        "auth_type": role.auth_type,
    }
    for field in _LIST_FIELDS:
        doc[f"{field}_list"] = list(getattr(role, field))
    doc.update(
        inferred_entity_type=role.inferred_entity_type,
        inferred_aws_region=role.inferred_aws_region,
        resolve_aws_unique_ids=role.resolve_aws_unique_ids,
        role_tag=role.role_tag,
        allow_instance_migration=role.allow_instance_migration,
        disallow_reauthentication=role.disallow_reauthentication,
        require_challenge=role.require_challenge,
        hmac_key=role.hmac_key,
        version=role.version,
        ttl=token.legacy_ttl * _NS,
        max_ttl=token.legacy_max_ttl * _NS,
        period=token.legacy_period * _NS,
        policies=list(token.legacy_policies) or None,
        token_bound_cidrs=[format_cidr(cidr) for cidr in token.token_bound_cidrs],
        token_explicit_max_ttl=token.token_explicit_max_ttl * _NS,
        token_max_ttl=token.token_max_ttl * _NS,
        token_no_default_policy=token.token_no_default_policy,
        token_num_uses=token.token_num_uses,
        token_period=token.token_period * _NS,
        token_policies=list(token.token_policies),
        token_type=TOKEN_TYPES.index(token.token_type),
        token_ttl=token.token_ttl * _NS,
    )
    return doc


def _token_type(doc: StoredDocument) -> str:
    """``logical.TokenType`` from storage: its number, or a pre-1.2 name."""
    value = doc.doc.get("token_type")
    if value is None or value == "":
        return "default"
    if isinstance(value, str) and value in TOKEN_TYPES:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(TOKEN_TYPES):
        return TOKEN_TYPES[value]
    raise doc.error("token_type")


_STORED_LIST_KEYS = tuple((field, f"{field}_list") for field in _LIST_FIELDS)


def _strings(d: StoredDocument, key: str) -> tuple[str, ...]:
    """``d.strings(key)``, answering the common missing or empty list without its scan."""
    value = d.doc.get(key)
    if value is None or (isinstance(value, list) and not value):
        return ()
    return d.strings(key)


ROLE_CACHE_SIZE = 256
"""How many roles :func:`role_from_storage` remembers a decoded document for."""

#: (name, role_id) -> (keys in order, the document, its values' exact types, the role).
#: Keyed by role_id too, so that mounts (or backends) with a role of the same name do
#: not evict each other's entry.
_ROLE_CACHE: dict[tuple[str, object], tuple[list[str], dict[str, object], list[type], Role]] = {}
_CACHEABLE_TYPES = frozenset({str, int, bool, type(None), list})


def _cached_role(name: str, doc: Mapping[str, object]) -> Role | None:
    """The role decoded earlier from a document identical to ``doc``, or None.

    Identical means: the same keys in the same order, equal values, and values of the
    same exact types (``True``, ``1`` and ``1.0`` are equal but decode differently).
    """
    role_id = doc.get("role_id")
    entry = _ROLE_CACHE.get((name, role_id)) if type(role_id) is str else None
    if entry is None:
        return None
    keys, snapshot, types, role = entry
    if list(doc) == keys and doc == snapshot and list(map(type, doc.values())) == types:
        return role
    return None


def _remember_role(name: str, doc: Mapping[str, object], role: Role) -> None:
    """Remember ``role`` as the decoding of ``doc`` (a private copy of it: lists copied)."""
    snapshot: dict[str, object] = {}
    for key, value in doc.items():
        kind = type(value)
        if kind not in _CACHEABLE_TYPES:
            return
        if kind is list:
            if not all(type(item) is str for item in value):  # type: ignore[attr-defined]
                return
            value = list(value)  # type: ignore[call-overload]
        snapshot[key] = value
    role_id = snapshot.get("role_id")
    if type(role_id) is not str:
        return
    if len(_ROLE_CACHE) >= ROLE_CACHE_SIZE:
        _ROLE_CACHE.clear()
    _ROLE_CACHE[(name, role_id)] = (
        list(snapshot),
        snapshot,
        list(map(type, snapshot.values())),
        role,
    )


def role_from_storage(
    name: str,
    doc: Mapping[str, object],
    *,
    new_role_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    resolve_unique_id: Callable[[str], str] | None = None,
) -> Role:
    """Decode a stored role and apply Vault's upgrades (``upgradeRole``).

    A login reads its role on every call: a current-version document (whose decoding
    depends on nothing but ``name`` and its content) is decoded once, then answered
    from a bounded cache of the last document seen per name and ``role_id`` while the
    document is identical (same keys in order, equal values of the same exact types);
    any change is decoded afresh. Documents that fail to decode are never cached;
    older versions (whose upgrade draws a new ``role_id``) are decoded on every call.

    v0: an instance-profile ARN stored as ``bound_iam_role_arn`` moves to
    ``bound_iam_instance_profile_arn``; a missing ``auth_type`` becomes ``ec2``; an iam
    role's single exact principal ARN is resolved with ``resolve_unique_id`` when given;
    single-string binds become lists. v1: ``*`` is appended to every
    ``bound_iam_role_arn`` and ``bound_iam_instance_profile_arn`` entry. v2: a new
    ``role_id``. Every version: empty ``token_*`` values are back-filled from the legacy
    ``ttl``/``max_ttl``/``period``/``policies``. When the stored ``version`` is below
    :data:`ROLE_VERSION` the caller should store the result. Raises
    :class:`InternalError` for unreadable documents and unknown versions.
    """
    cached = _cached_role(name, doc)
    if cached is not None:
        return cached
    role = _decode_role(name, doc, new_role_id=new_role_id, resolve_unique_id=resolve_unique_id)
    version = doc.get("version")
    if version == ROLE_VERSION and type(version) is int:
        _remember_role(name, doc, role)
    return role


def _decode_role(
    name: str,
    doc: Mapping[str, object],
    *,
    new_role_id: Callable[[], str],
    resolve_unique_id: Callable[[str], str] | None,
) -> Role:
    d = StoredDocument(doc, "role entry")
    version = d.integer("version")
    if not 0 <= version <= ROLE_VERSION:
        raise InternalError(f"error upgrading roleEntry: unrecognized role version: {version}")
    auth_type = d.string("auth_type")
    lists = {field: _strings(d, key) for field, key in _STORED_LIST_KEYS}
    role_id = d.string("role_id")
    if version == 0:
        single = {field: d.string(field) for field in _LIST_FIELDS}
        if ":instance-profile/" in single["bound_iam_role_arn"]:
            single["bound_iam_instance_profile_arn"] = single["bound_iam_role_arn"]
            single["bound_iam_role_arn"] = ""
        if auth_type == "":
            auth_type = "ec2"
        arn = single["bound_iam_principal_arn"]
        if (
            resolve_unique_id is not None
            and auth_type == "iam"
            and d.boolean("resolve_aws_unique_ids")
            and arn != ""
            and single["bound_iam_principal_id"] == ""
            and not arn.endswith("*")
        ):
            single["bound_iam_principal_id"] = _resolve(arn, resolve_unique_id)
        for field, value in single.items():
            if value != "":
                lists[field] = (value,)
    if version <= 1:
        for field in ("bound_iam_role_arn", "bound_iam_instance_profile_arn"):
            lists[field] = tuple(f"{value}*" for value in lists[field])
    if version <= 2:
        role_id = new_role_id()
    try:
        cidrs = parse_cidrs(_strings(d, "token_bound_cidrs"))
    except InvalidRequestError as exc:
        raise InternalError(f"error decoding role entry: {exc.message}") from None
    legacy_policies = _strings(d, "policies")
    legacy_ttl, legacy_max_ttl, legacy_period = (
        d.seconds("ttl"),
        d.seconds("max_ttl"),
        d.seconds("period"),
    )
    token = TokenSettings(
        token_policies=_strings(d, "token_policies") or legacy_policies,
        token_ttl=d.seconds("token_ttl") or max(legacy_ttl, 0),
        token_max_ttl=d.seconds("token_max_ttl") or max(legacy_max_ttl, 0),
        token_period=d.seconds("token_period") or max(legacy_period, 0),
        token_explicit_max_ttl=d.seconds("token_explicit_max_ttl"),
        token_num_uses=d.integer("token_num_uses"),
        token_bound_cidrs=cidrs,
        token_no_default_policy=d.boolean("token_no_default_policy"),
        token_type=_token_type(d),
        legacy_policies=legacy_policies,
        legacy_ttl=legacy_ttl,
        legacy_max_ttl=legacy_max_ttl,
        legacy_period=legacy_period,
    )
    return Role(
        name=name,
        role_id=role_id,
        auth_type=auth_type,
        resolve_aws_unique_ids=d.boolean("resolve_aws_unique_ids"),
        inferred_entity_type=d.string("inferred_entity_type"),
        inferred_aws_region=d.string("inferred_aws_region"),
        role_tag=d.string("role_tag"),
        allow_instance_migration=d.boolean("allow_instance_migration"),
        disallow_reauthentication=d.boolean("disallow_reauthentication"),
        require_challenge=d.boolean("require_challenge"),
        token=token,
        version=ROLE_VERSION,
        hmac_key=d.string("hmac_key"),
        **lists,
    )
