"""Token settings shared by roles (Vault's ``tokenutil``) and their arithmetic.

:func:`parse_token_fields` is ``TokenParams.ParseTokenFields`` plus the deprecated-field
upgrades (``policies``, ``ttl``, ``max_ttl``, ``period``) and the mount-limit checks
Vault's AWS role write makes. :func:`compute_lease` is
``framework.CalculateTTL`` as core runs it at login.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs

from aws_iam_backend.errors import InternalError, InvalidRequestError
from aws_iam_backend.vault.fields import FieldType, parse_fields
from aws_iam_backend.vault.gocompat import format_duration, go_quote
from aws_iam_backend.vault.policies import sanitize_policies

DEFAULT_SYSTEM_TTL = 768 * 3600
"""Vault's default for both the system default lease TTL and the system max lease TTL."""

TOKEN_TYPES = ("default", "service", "batch", "default-service", "default-batch")
"""``logical.TokenType`` names; the index is the value Vault stores."""

TOKEN_FIELDS: Mapping[str, FieldType] = {
    "token_bound_cidrs": FieldType.COMMA_STRINGS,
    "token_explicit_max_ttl": FieldType.DURATION,
    "token_max_ttl": FieldType.DURATION,
    "token_no_default_policy": FieldType.BOOL,
    "token_period": FieldType.DURATION,
    "token_policies": FieldType.COMMA_STRINGS,
    "token_type": FieldType.STRING,
    "token_ttl": FieldType.DURATION,
    "token_num_uses": FieldType.INT,
}
"""The tokenutil fields every role accepts."""

LEGACY_TOKEN_FIELDS: Mapping[str, FieldType] = {
    "policies": FieldType.COMMA_STRINGS,
    "ttl": FieldType.DURATION,
    "max_ttl": FieldType.DURATION,
    "period": FieldType.DURATION,
}
"""Deprecated aliases: used only when the ``token_*`` field is absent."""

_INPUT_TOKEN_TYPES = {"": "default", "default": "default", "service": "service", "batch": "batch"}


@attrs.frozen
class TokenSettings:
    """The ``token_*`` fields of a role. Durations are whole seconds.

    ``token_bound_cidrs`` holds networks in ``ip/prefix`` form (single addresses as
    ``/32`` or ``/128``). The ``legacy_*`` fields are the deprecated ``policies``,
    ``ttl``, ``max_ttl`` and ``period`` values Vault keeps beside the new ones; role
    reads show the deprecated keys only when these are set.
    """

    token_policies: tuple[str, ...] = ()
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_period: int = 0
    token_explicit_max_ttl: int = 0
    token_num_uses: int = 0
    token_bound_cidrs: tuple[str, ...] = ()
    token_no_default_policy: bool = False
    token_type: str = "default"
    legacy_policies: tuple[str, ...] = ()
    legacy_ttl: int = 0
    legacy_max_ttl: int = 0
    legacy_period: int = 0


def parse_cidrs(items: tuple[str, ...]) -> tuple[str, ...]:
    """``parseutil.ParseAddrs`` restricted to IP addresses and networks (no ports, no
    UNIX sockets); host bits of a network are cleared. Raises :class:`InvalidRequestError`."""
    result = []
    for item in items:
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise InvalidRequestError(
                f"error parsing address {go_quote(item)}: Unable to convert {go_quote(item)} "
                "to an IPv4 or IPv6 address, or a UNIX Socket"
            ) from None
        result.append(network.with_prefixlen)
    return tuple(result)


def format_cidr(cidr: str) -> str:
    """Vault's rendering of a bound CIDR: a bare address for a single host."""
    network = ipaddress.ip_network(cidr)
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return network.with_prefixlen


def parse_token_fields(
    data: Mapping[str, object],
    existing: TokenSettings | None,
    *,
    default_ttl: int = DEFAULT_SYSTEM_TTL,
    max_ttl: int = DEFAULT_SYSTEM_TTL,
) -> tuple[TokenSettings, list[str]]:
    """Apply the token fields of a write to ``existing`` (or the defaults), in Vault's order.

    1. ``ParseTokenFields``: given fields replace stored ones; then the checks
       ``'token_max_ttl' cannot be negative``, ``'token_period' cannot be negative``,
       ``invalid 'token_type' value "<v>"`` (accepted: ``""``, ``default``, ``service``,
       ``batch``), ``'token_num_uses' cannot be negative``, the two batch-token rules,
       ``'token_ttl' cannot be negative`` and ``'token_ttl' cannot be greater than
       'token_max_ttl'``; CIDR parse errors.
    2. Deprecated aliases: when only the old field is given it sets both; when both are
       given the new one wins (the old one mirrors it); when only the new one is given
       the old one is cleared.
    3. Mount limits: warnings when ``token_ttl`` > ``default_ttl`` or ``token_max_ttl`` >
       ``max_ttl``; errors ``ttl should be shorter than max ttl`` and ``period of '<d>' is
       greater than the backend's maximum lease TTL of '<m>'``.

    Policies (new and deprecated) pass through :func:`sanitize_policies`.
    Raises :class:`InvalidRequestError`; returns the settings and the warnings.
    """
    fields = parse_fields(data, {**TOKEN_FIELDS, **LEGACY_TOKEN_FIELDS})
    current = existing if existing is not None else TokenSettings()
    changes: dict[str, Any] = {}

    cidrs = fields.strings("token_bound_cidrs")
    if cidrs is not None:
        changes["token_bound_cidrs"] = parse_cidrs(cidrs)
    for name in ("token_explicit_max_ttl", "token_max_ttl", "token_period", "token_ttl"):
        value = fields.integer(name)
        if value is not None:
            changes[name] = value
    no_default = fields.boolean("token_no_default_policy")
    if no_default is not None:
        changes["token_no_default_policy"] = no_default
    policies = fields.strings("token_policies")
    if policies is not None:
        changes["token_policies"] = sanitize_policies(policies)
    token_type = fields.string("token_type")
    num_uses = fields.integer("token_num_uses")
    settings = attrs.evolve(current, **changes)

    if settings.token_max_ttl < 0:
        raise InvalidRequestError("'token_max_ttl' cannot be negative")
    if settings.token_period < 0:
        raise InvalidRequestError("'token_period' cannot be negative")
    if token_type is not None:
        if token_type not in _INPUT_TOKEN_TYPES:
            raise InvalidRequestError(f"invalid 'token_type' value {go_quote(token_type)}")
        settings = attrs.evolve(settings, token_type=_INPUT_TOKEN_TYPES[token_type])
    if num_uses is not None:
        settings = attrs.evolve(settings, token_num_uses=num_uses)
    if settings.token_num_uses < 0:
        raise InvalidRequestError("'token_num_uses' cannot be negative")
    if settings.token_type in ("batch", "default-batch"):
        if settings.token_period != 0:
            raise InvalidRequestError(
                "'token_type' cannot be 'batch' or 'default_batch' when set to generate "
                "periodic tokens"
            )
        if settings.token_num_uses != 0:
            raise InvalidRequestError(
                "'token_type' cannot be 'batch' or 'default_batch' when set to generate "
                "tokens with limited use count"
            )
    if settings.token_ttl < 0:
        raise InvalidRequestError("'token_ttl' cannot be negative")
    if 0 < settings.token_max_ttl < settings.token_ttl:
        raise InvalidRequestError("'token_ttl' cannot be greater than 'token_max_ttl'")

    settings = _upgrade_legacy(settings, fields.values)
    return settings, _check_mount_limits(settings, default_ttl=default_ttl, max_ttl=max_ttl)


def _upgrade_legacy(settings: TokenSettings, given: Mapping[str, object]) -> TokenSettings:
    changes: dict[str, Any] = {}
    for old, new in (
        ("policies", "token_policies"),
        ("ttl", "token_ttl"),
        ("max_ttl", "token_max_ttl"),
        ("period", "token_period"),
    ):
        legacy = f"legacy_{old}"
        if new not in given:
            if old in given:
                raw = given[old]
                value = sanitize_policies(raw) if isinstance(raw, tuple) else raw
                changes[legacy] = value
                changes[new] = value
        elif old in given:
            changes[legacy] = getattr(settings, new)
        else:
            changes[legacy] = () if old == "policies" else 0
    return attrs.evolve(settings, **changes)


def _check_mount_limits(settings: TokenSettings, *, default_ttl: int, max_ttl: int) -> list[str]:
    warnings = []
    if settings.token_ttl > default_ttl:
        warnings.append(
            f"Given ttl of {settings.token_ttl} seconds greater than current mount/system "
            f"default of {default_ttl} seconds; ttl will be capped at login time"
        )
    if settings.token_max_ttl > max_ttl:
        warnings.append(
            f"Given max ttl of {settings.token_max_ttl} seconds greater than current "
            f"mount/system default of {max_ttl} seconds; max ttl will be capped at login time"
        )
    if settings.token_max_ttl != 0 and settings.token_max_ttl < settings.token_ttl:
        raise InvalidRequestError("ttl should be shorter than max ttl")
    if settings.token_period > max_ttl:
        raise InvalidRequestError(
            f"period of '{format_duration(settings.token_period)}' is greater than the "
            f"backend's maximum lease TTL of '{format_duration(max_ttl)}'"
        )
    return warnings


def token_response_fields(settings: TokenSettings) -> dict[str, object]:
    """``TokenParams.PopulateTokenData``: the ``token_*`` keys of a role read."""
    return {
        "token_bound_cidrs": [format_cidr(cidr) for cidr in settings.token_bound_cidrs],
        "token_explicit_max_ttl": settings.token_explicit_max_ttl,
        "token_max_ttl": settings.token_max_ttl,
        "token_no_default_policy": settings.token_no_default_policy,
        "token_period": settings.token_period,
        "token_policies": list(settings.token_policies),
        "token_type": settings.token_type,
        "token_ttl": settings.token_ttl,
        "token_num_uses": settings.token_num_uses,
    }


@attrs.frozen
class Lease:
    """A token's lifetime as core computes it (seconds).

    ``ttl`` is the lease duration granted now; ``max_ttl`` the effective maximum
    lifetime from issue (mount/system max, lowered by the role's max and the explicit
    max); ``period`` the effective period (0 if not periodic); ``explicit_max_ttl`` is
    carried to the token for later renewals; ``warnings`` are core's capping warnings.
    """

    ttl: int
    max_ttl: int
    period: int
    explicit_max_ttl: int
    warnings: tuple[str, ...] = ()


def human_duration(seconds: int) -> str:
    """Vault's ``humanDuration``: ``768h0m0s`` -> ``768h``, ``1m0s`` -> ``1m``."""
    text = format_duration(seconds)
    if text.endswith("m0s"):
        text = text[:-2]
    index = text.find("h0m")
    if index > 0:
        text = text[: index + 1] + text[index + 3 :]
    return text


def compute_lease(settings: TokenSettings, *, default_ttl: int, max_ttl: int) -> Lease:
    """The lease of a token issued now (core's ``CalculateTTL`` at login).

    ``default_ttl``/``max_ttl`` are the mount's (or system's) default and max lease TTLs.
    The effective max is ``max_ttl``, lowered by ``token_max_ttl`` and
    ``token_explicit_max_ttl`` when those are set. With ``token_period`` the TTL is the
    period (capped at the effective max, with a warning) and only the explicit max
    limits it further; otherwise the TTL is ``token_ttl`` or ``default_ttl`` when unset,
    capped at the effective max. Renewals re-apply these limits from the issue time
    (:meth:`aws_iam_backend.drivers._sync.tokens.TokenIssuer.extend`).
    """
    explicit_max_ttl = settings.token_explicit_max_ttl
    effective_max = max_ttl
    for cap in (settings.token_max_ttl, explicit_max_ttl):
        if 0 < cap < effective_max:
            effective_max = cap
    if effective_max <= 0:
        raise InternalError("max TTL must be greater than zero")
    warnings = []
    period = settings.token_period
    limit: int
    if period > 0:
        if period > effective_max:
            warnings.append(
                f"period of {go_quote(human_duration(period))} exceeded the effective max_ttl "
                f"of {go_quote(human_duration(effective_max))}; period value is capped "
                "accordingly"
            )
            period = effective_max
        granted = period
        limit = explicit_max_ttl if explicit_max_ttl > 0 else granted
    else:
        granted = settings.token_ttl if settings.token_ttl > 0 else default_ttl
        limit = effective_max
    if granted > limit:
        warnings.append(
            f"TTL of {go_quote(human_duration(granted))} exceeded the effective max_ttl "
            f"of {go_quote(human_duration(limit))}; TTL value is capped accordingly"
        )
        granted = limit
    return Lease(granted, effective_max, period, explicit_max_ttl, tuple(warnings))
