# Generated from ../_async/token_endpoints.py by scripts/unasync.py: do not edit.
"""``/v1/auth/token/*``: lookup-self, renew-self, revoke-self, lookup, revoke-accessor.

A login token sees and acts on itself only; the root token on any token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from aws_iam_backend.drivers.shapes import auth_data
from aws_iam_backend.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedOperationError,
)
from aws_iam_backend.io.clock import Clock
from aws_iam_backend.io.concurrency import Result
from aws_iam_backend.server._sync.authenticator import Authenticator
from aws_iam_backend.server._sync.mount_table import MountTable
from aws_iam_backend.server.auth import Caller, same_secret
from aws_iam_backend.server.messages import HTTPResponse
from aws_iam_backend.server.responses import envelope, no_content
from aws_iam_backend.vault.fields import to_duration
from aws_iam_backend.vault.tokens import rfc3339

Handler = Callable[[Caller, Mapping[str, Any], str | None], Result[HTTPResponse]]


class TokenEndpoints:
    """The token store's HTTP endpoints over the issuer all mounts share."""

    def __init__(
        self, authenticator: Authenticator, mounts: MountTable, clock: Clock
    ) -> None:
        self._auth = authenticator
        self._issuer = authenticator.issuer
        self._mounts = mounts
        self._clock = clock
        self._started = clock.now()
        self._routes: dict[str, tuple[frozenset[str], Handler]] = {
            "lookup-self": (frozenset({"read", "update"}), self._lookup_self),
            "renew-self": (frozenset({"update"}), self._renew_self),
            "revoke-self": (frozenset({"update"}), self._revoke_self),
            "lookup": (frozenset({"update"}), self._lookup),
            "revoke-accessor": (frozenset({"update"}), self._revoke_accessor),
        }

    def handle(
        self,
        name: str,
        operation: str,
        token: str | None,
        data: Mapping[str, Any],
        client_ip: str | None,
    ) -> HTTPResponse:
        """Serve ``auth/token/<name>``: 404 for unknown names, 405 for other operations."""
        route = self._routes.get(name)
        if route is None:
            raise NotFoundError(f'no handler for route "auth/token/{name}". route entry not found.')
        operations, handler = route
        if operation not in operations:
            raise UnsupportedOperationError()
        return handler(self._auth.caller(token, client_ip), data, client_ip)

    def _root_data(self, token: str) -> dict[str, Any]:
        return {
            "id": token,
            "accessor": "",
            "creation_time": int(self._started.timestamp()),
            "creation_ttl": 0,
            "display_name": "root",
            "entity_id": "",
            "expire_time": None,
            "explicit_max_ttl": 0,
            "issue_time": rfc3339(self._started),
            "meta": None,
            "num_uses": 0,
            "orphan": True,
            "path": "auth/token/root",
            "policies": ["root"],
            "renewable": False,
            "ttl": 0,
            "type": "service",
        }

    def _lookup_data(self, caller: Caller, now: datetime) -> dict[str, Any]:
        if caller.record is None:
            return self._root_data(caller.token)
        return attrs.evolve(caller.record, client_token=caller.token).lookup_data(now)

    def _lookup_self(
        self, caller: Caller, _data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        return envelope(data=self._lookup_data(caller, self._clock.now()))

    def _renew_self(
        self, caller: Caller, data: Mapping[str, Any], ip: str | None
    ) -> HTTPResponse:
        if caller.record is None:
            raise InvalidRequestError("root token is not renewable")
        backend = self._mounts.backend(caller.record.mount)
        if backend is None:
            raise PermissionDeniedError()
        try:
            increment = to_duration(data.get("increment", 0))
        except ValueError:
            raise InvalidRequestError("invalid increment") from None
        record = backend.renew_token(caller.token, remote_addr=ip, increment=increment)
        return envelope(auth=auth_data(attrs.evolve(record, client_token=caller.token)))

    def _revoke_self(
        self, caller: Caller, _data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        if caller.record is None:
            raise InvalidRequestError("cannot revoke the root token")
        self._issuer.revoke(caller.token)
        return no_content()

    def _lookup(
        self, caller: Caller, data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        target = _string_field(data, "token")
        if same_secret(target, caller.token):
            return self._lookup_self(caller, data, _ip)
        if not caller.is_root:
            raise PermissionDeniedError()
        record = self._issuer.lookup(target)
        if record is None:
            raise PermissionDeniedError("bad token")
        other = Caller(target, record)
        return envelope(data=self._lookup_data(other, self._clock.now()))

    def _revoke_accessor(
        self, caller: Caller, data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        accessor = _string_field(data, "accessor")
        if caller.record is not None and not same_secret(accessor, caller.record.accessor):
            raise PermissionDeniedError()
        if self._issuer.lookup_accessor(accessor) is None:
            raise InvalidRequestError("invalid accessor")
        self._issuer.revoke_accessor(accessor)
        return no_content()


def _string_field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"missing {name}")
    return value
