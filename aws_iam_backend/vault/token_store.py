"""Vault's token store ``auth/token/create`` and ``create-orphan`` as pure functions.

:func:`parse_create` is ``handleCreateCommon`` for the root token as parent (root is
"sudo"): the request's fields weakly decoded as Vault's ``mapstructure`` does, then its
checks in Vault's order with Vault's messages. Differences, each a 400 with a plain
reason: this server has one root token (a request that would make a root token, by
``policies`` holding ``root`` or by giving none and so inheriting the parent's, is
refused), no token roles (``entity_alias`` is refused as Vault refuses it without a
role) and no custom token IDs (``id``). :meth:`CreateRequest.spec` computes the lease as
``framework.CalculateTTL`` does against the ``token/`` mount's TTLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.vault.fields import (
    MAX_DURATION_SECONDS,
    go_trim_space,
    to_bool,
    to_int,
    to_string,
)
from aws_iam_backend.vault.gocompat import DurationError, go_quote, parse_duration_seconds
from aws_iam_backend.vault.policies import sanitize_policies
from aws_iam_backend.vault.tokens import TokenSpec
from aws_iam_backend.vault.tokenutil import Lease, TokenSettings, compute_lease

TOKEN_MOUNT_PATH = "token/"
NON_ASSIGNABLE_POLICIES = ("response-wrapping", "control-group")
"""Vault's ``nonAssignablePolicies``."""
CREATE_FIELDS = frozenset(
    {
        "display_name",
        "entity_alias",
        "explicit_max_ttl",
        "format",
        "id",
        "lease",
        "meta",
        "metadata",  # a schema field Vault's handler never reads ("meta" is the one)
        "no_default_policy",
        "no_parent",
        "num_uses",
        "period",
        "policies",
        "renewable",
        "role_name",
        "ttl",
        "type",
    }
)
"""Every field Vault's create endpoints declare."""
_DISPLAY_NAME_SANITIZE = re.compile(r"[^a-zA-Z0-9-]")
_T = TypeVar("_T")


@attrs.frozen
class CreateRequest:
    """A checked ``auth/token/create`` request. Durations are seconds (0: not given)."""

    policies: tuple[str, ...]
    metadata: dict[str, str]
    display_name: str
    num_uses: int
    ttl: int
    explicit_max_ttl: int
    period: int
    renewable: bool
    token_type: str
    orphan: bool
    path: str

    def lease(self, *, default_ttl: int, max_ttl: int) -> Lease:
        """The token's lease against the ``token/`` mount's TTLs (``CalculateTTL``)."""
        return token_lease(
            ttl=self.ttl,
            period=self.period,
            explicit_max_ttl=self.explicit_max_ttl,
            default_ttl=default_ttl,
            max_ttl=max_ttl,
        )

    def spec(self, lease: Lease, now: datetime) -> TokenSpec:
        """What to issue for this request with ``lease``, at ``now``."""
        return TokenSpec(
            policies=self.policies,
            token_policies=self.policies,
            metadata=self.metadata,
            internal_data={},
            display_name=self.display_name,
            ttl=lease.ttl,
            max_ttl=lease.max_ttl,
            explicit_max_ttl=self.explicit_max_ttl,
            period=lease.period,
            num_uses=self.num_uses,
            bound_cidrs=(),
            token_type=self.token_type,
            entity_id="",
            mount=TOKEN_MOUNT_PATH,
            role_name="",
            issued_at=now,
            path=self.path,
            orphan=self.orphan,
            renewable=self.renewable,
        )


def token_lease(
    *, ttl: int, period: int, explicit_max_ttl: int, default_ttl: int, max_ttl: int
) -> Lease:
    """The lease of a ``token/`` mount token asking for ``ttl``, ``period`` and
    ``explicit_max_ttl`` (0: not given) against the mount's TTLs (``CalculateTTL``): at
    create, and again at each renewal."""
    settings = TokenSettings(
        token_ttl=ttl, token_period=period, token_explicit_max_ttl=explicit_max_ttl
    )
    return compute_lease(settings, default_ttl=default_ttl, max_ttl=max_ttl)


class _Decoder:
    """``mapstructure.WeakDecode`` of the request into Vault's struct: collects every
    field's error, reported together as Vault reports them."""

    def __init__(self, data: Mapping[str, object]) -> None:
        self.data = data
        self.errors: list[str] = []

    def field(self, name: str, convert: Callable[[object], _T], default: _T) -> _T:
        if name not in self.data or self.data[name] is None:
            return default
        try:
            return convert(self.data[name])
        except ValueError as exc:
            self.errors.append(_named(str(exc), name))
            return default

    def strings(self, name: str) -> tuple[str, ...]:
        raw = self.data.get(name)
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]  # a lone value is lifted to a list
        result = []
        for index, item in enumerate(items):
            try:
                result.append(to_string(item))
            except ValueError as exc:
                self.errors.append(_named(str(exc), f"{name}[{index}]"))
        return tuple(result)

    def string_map(self, name: str) -> dict[str, str]:
        raw = self.data.get(name)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.errors.append(f"'{name}' expected a map, got '{_kind(raw)}'")
            return {}
        result = {}
        for key, value in raw.items():
            try:
                result[str(key)] = to_string(value)
            except ValueError as exc:
                self.errors.append(_named(str(exc), f"{name}[{key}]"))
        return result

    def check(self) -> None:
        if self.errors:
            points = sorted(f"* {error}" for error in self.errors)
            raise InvalidRequestError(
                f"Error decoding request: {len(points)} error(s) decoding:\n\n" + "\n".join(points)
            )


def _named(detail: str, name: str) -> str:
    """A field-data conversion message (which names the field ``''``) naming ``name``."""
    return detail.replace("''", f"'{name}'", 1)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "slice"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "float64" if isinstance(value, float) else "int"


def _seconds(text: str) -> int:
    """``parseutil.ParseDurationSecond`` of a non-empty string (negative values kept:
    each caller has Vault's message for them); 400 with the parse error."""
    try:
        seconds = parse_duration_seconds(text)
    except DurationError as exc:
        raise InvalidRequestError(str(exc)) from None
    if abs(seconds) > MAX_DURATION_SECONDS:
        raise InvalidRequestError("duration out of range")
    return seconds


def _go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` (the legacy ``lease`` field): a unit is required."""
    body = text.lstrip("+-")
    if body and body != "0" and body.isascii() and body.isdigit():
        raise InvalidRequestError(f"time: missing unit in duration {go_quote(text)}")
    if body.endswith("d"):
        raise InvalidRequestError(f'time: unknown unit "d" in duration {go_quote(text)}')
    return _seconds(text)


def _policies(given: tuple[str, ...], no_default_policy: bool) -> tuple[str, ...]:
    """Vault's policy rules for a sudo caller, normalised as role policies are (split on
    commas, trimmed, lower-cased, sorted). ``default`` is added unless
    ``no_default_policy``, which also removes a given one."""
    names = {go_trim_space(part).lower() for item in given for part in item.split(",")}
    if not names - {""} or "root" in names:
        raise InvalidRequestError(
            "root tokens cannot be created: this server has a single root token, so a "
            "token needs policies of its own (not root)"
        )
    policies = set(sanitize_policies(given))
    if no_default_policy:
        policies.discard("default")
    else:
        policies.add("default")
    for policy in sorted(policies):
        if policy in NON_ASSIGNABLE_POLICIES:
            raise InvalidRequestError(f"cannot assign policy {go_quote(policy)}")
    return tuple(sorted(policies))


def _display_name(name: str) -> str:
    if not name:
        return "token"
    full = _DISPLAY_NAME_SANITIZE.sub("-", "token-" + name)
    return full.removesuffix("-")


def _batch_reason(explicit_max_ttl: str, num_uses: int, period: str) -> str:
    """Vault's ``switch`` over what a batch token cannot have: the first case that
    applies decides, even when it finds nothing wrong."""
    if explicit_max_ttl != "":
        try:
            bad = parse_duration_seconds(explicit_max_ttl) != 0
        except DurationError:
            raise InvalidRequestError('"explicit_max_ttl" value could not be parsed') from None
        return "explicit_max_ttl" if bad else ""
    if num_uses != 0:
        return "num_uses"
    if period != "":
        try:
            bad = parse_duration_seconds(period) != 0
        except DurationError:
            raise InvalidRequestError('"period" value could not be parsed') from None
        return "period" if bad else ""
    return ""


def parse_create(data: Mapping[str, Any], *, orphan_endpoint: bool) -> CreateRequest:
    """Check a create request from the root token (``orphan_endpoint``: it came to
    ``create-orphan``); 400 with Vault's message for the first thing wrong."""
    decoder = _Decoder(data)
    token_id = decoder.field("id", to_string, "")
    policies = decoder.strings("policies")
    metadata = decoder.string_map("meta")
    no_parent = decoder.field("no_parent", to_bool, False)
    no_default_policy = decoder.field("no_default_policy", to_bool, False)
    lease = decoder.field("lease", to_string, "")
    ttl = decoder.field("ttl", to_string, "")
    renewable = decoder.field("renewable", to_bool, True)  # null: not given
    explicit_max_ttl = decoder.field("explicit_max_ttl", to_string, "")
    display_name = decoder.field("display_name", to_string, "")
    num_uses = decoder.field("num_uses", to_int, 0)
    period = decoder.field("period", to_string, "")
    token_type = decoder.field("type", to_string, "")
    entity_alias = decoder.field("entity_alias", to_string, "")
    decoder.check()

    if token_type in ("", "service"):
        token_type = "service"
    elif token_type == "batch":
        reason = _batch_reason(explicit_max_ttl, num_uses, period)
        if reason:
            raise InvalidRequestError(f"batch tokens cannot have {go_quote(reason)} set")
        renewable = False
    else:
        raise InvalidRequestError("invalid 'token_type' value")
    if num_uses < 0:
        raise InvalidRequestError("number of uses cannot be negative")
    if entity_alias:
        raise InvalidRequestError("'entity_alias' is only allowed in combination with token role")
    if token_id:
        raise InvalidRequestError("custom token IDs are not supported by this server")
    final_policies = _policies(policies, no_default_policy)
    orphan = orphan_endpoint or no_parent

    explicit = 0
    if explicit_max_ttl != "":
        explicit = _seconds(explicit_max_ttl)
        if explicit < 0:
            raise InvalidRequestError("explicit_max_ttl must be positive")
    periodic = 0
    if period != "":
        periodic = _seconds(period)
        if periodic < 0:
            raise InvalidRequestError("period must be positive")
    seconds = 0
    if ttl != "":
        seconds = _seconds(ttl)
        if seconds < 0:
            raise InvalidRequestError("ttl must be positive")
    elif lease != "":
        seconds = _go_duration(lease)
        if seconds < 0:
            raise InvalidRequestError("lease must be positive")
    return CreateRequest(
        policies=final_policies,
        metadata=metadata,
        display_name=_display_name(display_name),
        num_uses=num_uses,
        ttl=seconds,
        explicit_max_ttl=explicit,
        period=periodic,
        renewable=renewable,
        token_type=token_type,
        orphan=orphan,
        path="auth/token/create-orphan" if orphan_endpoint else "auth/token/create",
    )


__all__ = ["CREATE_FIELDS", "CreateRequest", "parse_create", "token_lease"]
