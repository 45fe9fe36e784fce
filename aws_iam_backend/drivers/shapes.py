"""What the drivers take and return: settings, requests, responses, routes (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from aws_iam_backend.drivers.ratelimit import RateLimits
from aws_iam_backend.errors import NotFoundError
from aws_iam_backend.login.challenge import DEFAULT_CHALLENGE_TTL
from aws_iam_backend.login.messages import CallerIdentity
from aws_iam_backend.login.rebuild import RequestPolicy
from aws_iam_backend.vault.tokens import TokenRecord

OPERATIONS = frozenset({"read", "create", "update", "delete", "list", "renew"})
DEFAULT_TTL = 768 * 3600


@attrs.frozen
class BackendSettings:
    """Server-wide settings (not stored; given by the host application)."""

    mount: str = "aws/"
    default_ttl: int = DEFAULT_TTL
    max_ttl: int = DEFAULT_TTL
    sts_timeout: float = 10.0
    request_policy: RequestPolicy = attrs.field(factory=RequestPolicy)
    challenge_ttl: int = DEFAULT_CHALLENGE_TTL  # seconds a server challenge nonce is valid
    rate_limits: RateLimits = attrs.field(factory=RateLimits)
    audit_required: bool = True


@attrs.frozen
class Request:
    """One request to the auth method, like Vault's ``logical.Request``."""

    operation: str
    path: str
    data: Mapping[str, Any] = attrs.field(factory=dict)
    client_token: str | None = attrs.field(default=None, repr=False)
    remote_addr: str | None = None
    request_id: str = ""


@attrs.frozen
class Response:
    """What a handler returns: ``data`` for reads, ``auth`` for logins and renewals."""

    data: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    # For the audit record only; never serialised.
    principal: CallerIdentity | None = attrs.field(default=None, repr=False, eq=False)
    role: str | None = attrs.field(default=None, repr=False, eq=False)


ROLE_PATH = re.compile(r"role/(?P<name>[^/]+)")
_STS_PATH = re.compile(r"config/sts/(?P<account>[^/]+)")
_FIXED_ROUTES = frozenset(
    {"login", "challenge", "role", "roles", "config/client", "config/identity", "config/sts"}
)
_LEGACY_NAMES = {
    "identity-whitelist": "identity-accesslist",
    "roletag-blacklist": "roletag-denylist",
}


def _current_name(path: str) -> str:
    """``path`` with a legacy list name (Vault's pre-1.7 ``*-whitelist``/``*-blacklist``)
    in its list segment replaced by the current one: ``identity-whitelist/<id>``,
    ``config/tidy/roletag-blacklist``, ``tidy/identity-whitelist``."""
    for prefix in ("", "config/tidy/", "tidy/"):
        if path.startswith(prefix):
            name, slash, rest = path[len(prefix) :].partition("/")
            if name in _LEGACY_NAMES and (prefix == "" or not slash):
                return prefix + _LEGACY_NAMES[name] + slash + rest
    return path


_EC2_FIXED = frozenset(
    {
        "config/certificates",
        "identity-accesslist",
        "roletag-denylist",
        "config/tidy/identity-accesslist",
        "config/tidy/roletag-denylist",
        "tidy/identity-accesslist",
        "tidy/roletag-denylist",
    }
)
_EC2_PATHS = (
    (re.compile(r"config/certificate/(?P<arg>[^/]*)"), "config/certificate/"),
    (re.compile(r"identity-accesslist/(?P<arg>[^/]*)"), "identity-accesslist/"),
    (re.compile(r"roletag-denylist/(?P<arg>.*)", re.DOTALL), "roletag-denylist/"),
    (re.compile(r"role/(?P<arg>[^/]+)/tag"), "role/tag"),
)
EC2_ROUTES = _EC2_FIXED | {route for _, route in _EC2_PATHS}
"""The routes :class:`~aws_iam_backend.drivers._async.ec2.AsyncEc2Auth` serves."""


def route(path: str) -> tuple[str, str]:
    """``(route, argument)`` for a path relative to the mount: ``("role/", name)``,
    ``("config/sts/", account)``, an EC2 route (legacy ``*-whitelist``/``*-blacklist``
    names mapped to the current ones) or ``(path, "")`` for a fixed path; 404 otherwise.

    Slashes around ``path`` are ignored, except a trailing one after a deny-listed role
    tag: standard base64 (how tags travel in paths) may end with ``/``."""
    path = path.lstrip("/")
    if not _current_name(path).startswith("roletag-denylist/"):
        path = path.rstrip("/")
    if path in _FIXED_ROUTES:
        return ("role" if path == "roles" else path), ""
    if match := ROLE_PATH.fullmatch(path):
        return "role/", match["name"]
    if match := _STS_PATH.fullmatch(path):
        return "config/sts/", match["account"]
    path = _current_name(path)
    if path in _EC2_FIXED:
        return path, ""
    for pattern, name in _EC2_PATHS:
        if match := pattern.fullmatch(path):
            return name, match["arg"]
    raise NotFoundError("unsupported path")


def status(operation: str, response: Response) -> int:
    """The status Vault's HTTP API answers ``response`` with: 404 for a list without keys
    and for a read that found nothing (a handler's empty response, Vault's ``nil, nil``),
    204 for any other empty response."""
    if operation == "list" and not (response.data or {}).get("keys"):
        return 404
    if response.data is None and response.auth is None and not response.warnings:
        return 404 if operation == "read" else 204
    return 200


def list_response(keys: list[str]) -> Response:
    return Response(data={"keys": keys})


def auth_data(record: TokenRecord) -> dict[str, Any]:
    """Vault's ``auth`` object for a login or renewal response."""
    return {
        "client_token": record.client_token or "",
        "accessor": record.accessor,
        "policies": list(record.policies),
        "token_policies": list(record.token_policies),
        "identity_policies": None,
        "metadata": dict(record.metadata),
        "lease_duration": record.ttl,
        "renewable": record.renewable,
        "entity_id": record.entity_id,
        "token_type": record.token_type,
        "orphan": True,
        "mfa_requirement": None,
        "num_uses": record.num_uses,
    }


__all__ = [
    "BackendSettings",
    "Request",
    "Response",
    "auth_data",
    "list_response",
    "route",
    "status",
]
