"""Mount configuration: ``config/client``, ``config/identity``, ``config/sts/<account>``.

Each endpoint has a pure ``write_*`` (request data -> new entry, Vault's semantics and
texts plus our stricter checks), a ``*_read_data`` (the read response) and storage
converters using Vault's JSON shape.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.login.arn import ArnError, parse_iam_arn
from aws_iam_backend.login.partitions import partition_by_id
from aws_iam_backend.vault.fields import FieldType, StoredDocument, go_trim_space, parse_fields
from aws_iam_backend.vault.gocompat import canonical_header_key, go_list, go_quote

DEFAULT_IAM_METADATA = ("account_id", "auth_type")
IAM_METADATA_AVAILABLE = (
    "canonical_arn",
    "client_arn",
    "client_user_id",
    "inferred_aws_region",
    "inferred_entity_id",
    "inferred_entity_type",
    "inferred_hostname",
)
DEFAULT_EC2_METADATA = ("account_id", "auth_type")
EC2_METADATA_AVAILABLE = ("ami_id", "instance_id", "region")
IAM_ALIAS_VALUES = ("role_id", "unique_id", "full_arn", "canonical_arn")
EC2_ALIAS_VALUES = ("role_id", "instance_id", "image_id")
MAX_SERVER_ID_LENGTH = 8192

CLIENT_CONFIG_FIELDS: Mapping[str, FieldType] = {
    "access_key": FieldType.STRING,
    "secret_key": FieldType.STRING,
    "endpoint": FieldType.STRING,
    "iam_endpoint": FieldType.STRING,
    "sts_endpoint": FieldType.STRING,
    "sts_region": FieldType.STRING,
    "use_sts_region_from_client": FieldType.BOOL,
    "iam_server_id_header_value": FieldType.STRING,
    "allowed_sts_header_values": FieldType.COMMA_STRINGS,
    "max_retries": FieldType.INT,
    "role_arn": FieldType.STRING,
    "identity_token_audience": FieldType.STRING,
    "identity_token_ttl": FieldType.DURATION,
    "replay_protection": FieldType.BOOL,
    "require_challenge": FieldType.BOOL,
}
"""Field schema of ``config/client`` (``replay_protection`` and ``require_challenge`` are
our extensions)."""

IDENTITY_CONFIG_FIELDS: Mapping[str, FieldType] = {
    "iam_alias": FieldType.STRING,
    "iam_metadata": FieldType.COMMA_STRINGS,
    "ec2_alias": FieldType.STRING,
    "ec2_metadata": FieldType.COMMA_STRINGS,
}
"""Field schema of ``config/identity``."""

STS_CONFIG_FIELDS: Mapping[str, FieldType] = {
    "account_id": FieldType.STRING,
    "sts_role": FieldType.STRING,
    "external_id": FieldType.STRING,
}
"""Field schema of ``config/sts/<account_id>`` (``account_id`` is the path parameter)."""

_WIF_FIELDS = ("role_arn", "identity_token_audience", "identity_token_ttl")
_HOSTNAME = re.compile(
    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?", re.ASCII
)
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://", re.ASCII)
_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)


@attrs.frozen
class ClientConfig:
    """``config/client``. An absent entry behaves as ``ClientConfig()``."""

    access_key: str = ""
    secret_key: str = attrs.field(default="", repr=False)
    endpoint: str = ""
    iam_endpoint: str = ""
    sts_endpoint: str = ""
    sts_region: str = ""
    use_sts_region_from_client: bool = False
    iam_server_id_header_value: str = ""
    allowed_sts_header_values: tuple[str, ...] = ()
    max_retries: int = -1
    replay_protection: bool = False  # ours: each signed request is accepted once
    require_challenge: bool = False  # ours: logins must sign a server-issued nonce


@attrs.frozen
class IdentityConfig:
    """``config/identity``: alias source and token metadata for IAM logins."""

    iam_alias: str = "role_id"
    iam_metadata: tuple[str, ...] = DEFAULT_IAM_METADATA
    ec2_alias: str = "role_id"
    ec2_metadata: tuple[str, ...] = DEFAULT_EC2_METADATA


@attrs.frozen
class StsRoleConfig:
    """``config/sts/<account_id>``: the role to assume for IAM calls about that account."""

    account_id: str
    sts_role: str
    external_id: str = ""


# ----------------------------------------------------------------- config/client


def validate_endpoint(field: str, value: str) -> str:
    """Check an endpoint override (``sts_endpoint``, ``iam_endpoint``, ``endpoint``).

    Empty means "not set". Otherwise: printable ASCII; ``https`` (plain ``http`` only for
    a loopback host: ``localhost``, 127.0.0.0/8, ``::1``); a valid host name or IP
    literal with an optional port; no userinfo, query or fragment; path empty or ``/``
    (no path prefix: requests always go to ``/``). Returns ``value`` unchanged. Messages
    quote the value through :func:`redact_url`, never with its userinfo or query.
    """
    if value == "":
        return value

    def invalid(reason: str) -> InvalidRequestError:
        return InvalidRequestError(f"invalid {field} {go_quote(redact_url(value))}: {reason}")

    if not all("\x21" <= char <= "\x7e" for char in value):
        raise invalid("only printable ASCII without spaces is allowed")
    scheme_error = "must be an https URL (http is allowed only for loopback hosts)"
    if "://" not in value:
        raise invalid(scheme_error)
    if "?" in value or "#" in value:
        raise invalid("a query or fragment is not allowed")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise invalid("not a valid URL") from None
    if "@" in parts.netloc:
        raise invalid("userinfo is not allowed")
    host = parts.hostname or ""
    if parts.path not in ("", "/"):
        raise invalid("a path is not allowed")
    if port == 0 or not (_is_ip(host) or (not parts.netloc.startswith("[") and
                                          _HOSTNAME.fullmatch(host))):
        raise invalid("not a valid host")
    if parts.scheme == "https":
        return value
    if parts.scheme == "http" and _is_loopback(host):
        return value
    raise invalid(scheme_error)


def redact_url(value: str) -> str:
    """``value`` as it may be quoted in an error message, an audit record or a log line.

    Everything from the first ``?`` or ``#`` on becomes ``?***`` (a query can carry
    credentials, signatures or tokens), and userinfo becomes ``***@``: everything after
    ``scheme://`` (from the start when there is no such scheme) up to the last ``@``
    before the query, so a password holding ``/`` or ``@`` is hidden too. A value without
    ``@``, ``?`` or ``#`` comes back unchanged. Use it wherever a configured URL is quoted.
    """
    cut = len(value)
    for mark in "?#":
        position = value.find(mark)
        if position != -1:
            cut = min(cut, position)
    head = value[:cut]
    at = head.rfind("@")
    if at != -1:
        scheme = _URL_SCHEME.match(head)
        start = scheme.end() if scheme is not None and scheme.end() <= at else 0
        head = head[:start] + "***" + head[at:]
    return head + ("?***" if cut < len(value) else "")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_server_id(value: str) -> str:
    if len(value) > MAX_SERVER_ID_LENGTH or not all(" " <= char <= "~" for char in value):
        raise InvalidRequestError(
            "invalid iam_server_id_header_value: use at most 8192 printable ASCII characters"
        )
    if value != value.strip(" "):
        raise InvalidRequestError(
            "invalid iam_server_id_header_value: leading or trailing spaces are not allowed"
        )
    return value


def write_client_config(
    existing: ClientConfig | None,
    data: Mapping[str, object],
    *,
    validate_headers: Callable[[Sequence[str]], tuple[str, ...]],
) -> ClientConfig:
    """Create or update ``config/client``: given fields replace stored ones (defaults on
    create). ``allowed_sts_header_values`` entries are canonicalised (Go MIME rules) and
    then passed to ``validate_headers``, which returns the names to store or raises.

    Stricter than Vault: endpoint URLs (:func:`validate_endpoint`), ``max_retries`` >= -1,
    a printable ``iam_server_id_header_value``, and the plugin workload identity fields
    (``role_arn``, ``identity_token_audience``, ``identity_token_ttl``) refused unless
    empty or zero. Raises :class:`InvalidRequestError`.
    """
    fields = parse_fields(data, CLIENT_CONFIG_FIELDS)
    for name in _WIF_FIELDS:
        if fields.values.get(name) not in (None, "", 0):
            raise InvalidRequestError(
                f"{name} is not supported: plugin workload identity federation is not "
                "available on this server"
            )
    changes: dict[str, Any] = {}
    for name in ("access_key", "secret_key", "sts_region"):
        value = fields.string(name)
        if value is not None:
            changes[name] = value
    for name in ("endpoint", "iam_endpoint", "sts_endpoint"):
        value = fields.string(name)
        if value is not None:
            changes[name] = validate_endpoint(name, value)
    for name in ("use_sts_region_from_client", "replay_protection", "require_challenge"):
        flag = fields.boolean(name)
        if flag is not None:
            changes[name] = flag
    server_id = fields.string("iam_server_id_header_value")
    if server_id is not None:
        changes["iam_server_id_header_value"] = _validate_server_id(server_id)
    headers = fields.strings("allowed_sts_header_values")
    if headers is not None:
        canonical = [canonical_header_key(name) for name in headers]
        changes["allowed_sts_header_values"] = tuple(validate_headers(canonical))
    max_retries = fields.integer("max_retries")
    if max_retries is not None:
        if max_retries < -1:
            raise InvalidRequestError(
                "max_retries must be -1 (use the default) or a number of retries >= 0"
            )
        changes["max_retries"] = max_retries
    return attrs.evolve(existing if existing is not None else ClientConfig(), **changes)


def client_config_read_data(cfg: ClientConfig) -> dict[str, object]:
    """The read response of ``config/client`` (never ``secret_key``); the workload
    identity keys are present with their empty values, as Vault returns them."""
    return {
        "access_key": cfg.access_key,
        "endpoint": cfg.endpoint,
        "iam_endpoint": cfg.iam_endpoint,
        "sts_endpoint": cfg.sts_endpoint,
        "sts_region": cfg.sts_region,
        "use_sts_region_from_client": cfg.use_sts_region_from_client,
        "iam_server_id_header_value": cfg.iam_server_id_header_value,
        "max_retries": cfg.max_retries,
        "allowed_sts_header_values": list(cfg.allowed_sts_header_values),
        "role_arn": "",
        "identity_token_audience": "",
        "identity_token_ttl": 0,
        "replay_protection": cfg.replay_protection,
        "require_challenge": cfg.require_challenge,
    }


def client_config_to_storage(cfg: ClientConfig) -> dict[str, object]:
    """The JSON document Vault stores at ``config/client``."""
    return {
        "access_key": cfg.access_key,
        "secret_key": cfg.secret_key,
        "endpoint": cfg.endpoint,
        "iam_endpoint": cfg.iam_endpoint,
        "sts_endpoint": cfg.sts_endpoint,
        "sts_region": cfg.sts_region,
        "use_sts_region_from_client": cfg.use_sts_region_from_client,
        "iam_server_id_header_value": cfg.iam_server_id_header_value,
        "allowed_sts_header_values": list(cfg.allowed_sts_header_values),
        "max_retries": cfg.max_retries,
        "role_arn": "",
        "replay_protection": cfg.replay_protection,
        "require_challenge": cfg.require_challenge,
    }


def client_config_from_storage(doc: Mapping[str, object]) -> ClientConfig:
    """Decode ``config/client`` (keys Vault may add, such as rotation settings, are
    ignored). Raises :class:`~aws_iam_backend.errors.InternalError` on bad types."""
    d = StoredDocument(doc, "client config")
    return ClientConfig(
        access_key=d.string("access_key"),
        secret_key=d.string("secret_key"),
        endpoint=d.string("endpoint"),
        iam_endpoint=d.string("iam_endpoint"),
        sts_endpoint=d.string("sts_endpoint"),
        sts_region=d.string("sts_region"),
        use_sts_region_from_client=d.boolean("use_sts_region_from_client"),
        iam_server_id_header_value=d.string("iam_server_id_header_value"),
        allowed_sts_header_values=d.strings("allowed_sts_header_values"),
        max_retries=d.integer("max_retries") if "max_retries" in doc else -1,
        replay_protection=d.boolean("replay_protection"),
        require_challenge=d.boolean("require_challenge"),
    )


# --------------------------------------------------------------- config/identity


def _go_quote_list(items: Sequence[str]) -> str:
    return go_list(go_quote(item) for item in items)


def parse_auth_metadata(
    values: Sequence[str], default: tuple[str, ...], available: tuple[str, ...]
) -> tuple[str, ...]:
    """authmetadata ``ParseAuthMetadata``: trim, lower-case, de-duplicate, sort; ``default``
    alone selects the defaults; an empty list selects nothing."""
    provided = sorted({go_trim_space(value).lower() for value in values} - {""})
    if provided == ["default"]:
        return default
    if "default" in provided:
        raise InvalidRequestError(
            f"{_go_quote_list(provided)} contains default - default can't be used in "
            "combination with other fields"
        )
    allowed = default + available
    if not set(provided) <= set(allowed):
        raise InvalidRequestError(
            f"{go_quote(', '.join(provided))} contains an unavailable field, please select "
            f"from {go_quote(', '.join(allowed))}"
        )
    return tuple(provided)


def write_identity_config(
    existing: IdentityConfig | None, data: Mapping[str, object]
) -> IdentityConfig:
    """Update ``config/identity`` (Vault's order: ``iam_alias``, ``ec2_alias``,
    ``iam_metadata``, ``ec2_metadata``). Raises :class:`InvalidRequestError` with
    ``iam_alias of "<v>" not in set of allowed values: [...]`` and authmetadata's texts."""
    fields = parse_fields(data, IDENTITY_CONFIG_FIELDS)
    changes: dict[str, Any] = {}
    for name, allowed in (("iam_alias", IAM_ALIAS_VALUES), ("ec2_alias", EC2_ALIAS_VALUES)):
        value = fields.string(name)
        if value is not None:
            if value not in allowed:
                raise InvalidRequestError(
                    f"{name} of {go_quote(value)} not in set of allowed values: "
                    f"{go_list(allowed)}"
                )
            changes[name] = value
    for name, default, available in (
        ("iam_metadata", DEFAULT_IAM_METADATA, IAM_METADATA_AVAILABLE),
        ("ec2_metadata", DEFAULT_EC2_METADATA, EC2_METADATA_AVAILABLE),
    ):
        values = fields.strings(name)
        if values is not None:
            changes[name] = parse_auth_metadata(values, default, available)
    return attrs.evolve(existing if existing is not None else IdentityConfig(), **changes)


def identity_config_read_data(cfg: IdentityConfig) -> dict[str, object]:
    """The read response of ``config/identity`` (all four keys, always)."""
    return {
        "iam_alias": cfg.iam_alias,
        "iam_metadata": list(cfg.iam_metadata),
        "ec2_alias": cfg.ec2_alias,
        "ec2_metadata": list(cfg.ec2_metadata),
    }


def identity_config_to_storage(cfg: IdentityConfig) -> dict[str, object]:
    """Vault's ``config/identity`` document; metadata equal to the defaults is stored as
    ``null`` ("default"), so a later change of the defaults applies."""

    def handler(values: tuple[str, ...], default: tuple[str, ...]) -> dict[str, object]:
        return {"auth_metadata": None if values == default else list(values)}

    return {
        "iam_alias": cfg.iam_alias,
        "iam_auth_metadata_handler": handler(cfg.iam_metadata, DEFAULT_IAM_METADATA),
        "ec2_alias": cfg.ec2_alias,
        "ec2_auth_metadata_handler": handler(cfg.ec2_metadata, DEFAULT_EC2_METADATA),
    }


def identity_config_from_storage(doc: Mapping[str, object]) -> IdentityConfig:
    """Decode ``config/identity``; empty aliases read as ``role_id``, missing or ``null``
    metadata as the defaults."""
    d = StoredDocument(doc, "identity config")

    def metadata(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = doc.get(key)
        if raw is None:
            return default
        if not isinstance(raw, Mapping):
            raise d.error(key)
        if raw.get("auth_metadata") is None:
            return default
        return StoredDocument(raw, "identity config").strings("auth_metadata")

    return IdentityConfig(
        iam_alias=d.string("iam_alias") or "role_id",
        iam_metadata=metadata("iam_auth_metadata_handler", DEFAULT_IAM_METADATA),
        ec2_alias=d.string("ec2_alias") or "role_id",
        ec2_metadata=metadata("ec2_auth_metadata_handler", DEFAULT_EC2_METADATA),
    )


# ---------------------------------------------------------------- config/sts/<id>


def _validate_sts_role(account_id: str, sts_role: str) -> None:
    reason = f"must be the ARN of an IAM role in account {account_id}"
    try:
        entity = parse_iam_arn(sts_role)
    except ArnError:
        entity = None
    parts = sts_role.split(":")
    if (
        entity is None
        or not all("\x21" <= char <= "\x7e" for char in sts_role)
        or partition_by_id(entity.partition) is None
        or parts[2] != "iam"
        or parts[3] != ""
        or entity.account_id != account_id
        or entity.type != "role"
        or entity.friendly_name == ""
        or "//" in parts[5]
    ):
        raise InvalidRequestError(f"invalid sts_role {go_quote(sts_role)}: {reason}")


def write_sts_config(
    account_id: str, data: Mapping[str, object], existing: StsRoleConfig | None = None
) -> StsRoleConfig:
    """Create or update ``config/sts/<account_id>``.

    Vault's texts: ``missing AWS account ID``, ``missing sts role`` (create without
    ``sts_role``), ``sts role cannot be empty``. Stricter: the account ID must be 12
    ASCII digits, ``sts_role`` an ``arn:<known partition>:iam::<account_id>:role/...``
    ARN, ``external_id`` 2-1224 characters of ``[\\w+=,.@:/-]`` (AWS's rule) or empty.
    """
    fields = parse_fields(data, STS_CONFIG_FIELDS)
    if account_id == "":
        raise InvalidRequestError("missing AWS account ID")
    if _ACCOUNT.fullmatch(account_id) is None:
        raise InvalidRequestError(
            f"invalid AWS account ID {go_quote(account_id)}: must be 12 digits"
        )
    entry = existing if existing is not None else StsRoleConfig(account_id, "")
    sts_role = fields.string("sts_role")
    if sts_role is not None:
        entry = attrs.evolve(entry, sts_role=sts_role)
    elif existing is None:
        raise InvalidRequestError("missing sts role")
    if entry.sts_role == "":
        raise InvalidRequestError("sts role cannot be empty")
    _validate_sts_role(account_id, entry.sts_role)
    external_id = fields.string("external_id")
    if external_id is not None:
        if external_id != "" and _EXTERNAL_ID.fullmatch(external_id) is None:
            raise InvalidRequestError(
                "invalid external_id: use 2 to 1224 letters, digits or characters of _+=,.@:/-"
            )
        entry = attrs.evolve(entry, external_id=external_id)
    return entry


def sts_config_read_data(entry: StsRoleConfig) -> dict[str, object]:
    """The read response of ``config/sts/<account_id>``."""
    return {"sts_role": entry.sts_role, "external_id": entry.external_id}


def sts_config_to_storage(entry: StsRoleConfig) -> dict[str, object]:
    """Vault's ``config/sts/<account_id>`` document."""
    return {"sts_role": entry.sts_role, "external_id": entry.external_id}


def sts_config_from_storage(account_id: str, doc: Mapping[str, object]) -> StsRoleConfig:
    """Decode ``config/sts/<account_id>``."""
    d = StoredDocument(doc, "sts config")
    return StsRoleConfig(account_id, d.string("sts_role"), d.string("external_id"))
