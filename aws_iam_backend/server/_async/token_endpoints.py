"""``/v1/auth/token/*``: lookup-self, renew-self, revoke-self, lookup, lookup-accessor,
revoke-accessor, create and create-orphan.

A login token sees and acts on itself only; the root token on any token, and only the
root token creates tokens (``token/`` mount tokens, see :mod:`...vault.token_store`).
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
from aws_iam_backend.io.concurrency import AsyncResult
from aws_iam_backend.server._async.authenticator import AsyncAuthenticator
from aws_iam_backend.server._async.mount_table import AsyncMountTable
from aws_iam_backend.server.auth import Caller, same_secret
from aws_iam_backend.server.messages import HTTPResponse
from aws_iam_backend.server.mounts import TOKEN_MOUNT
from aws_iam_backend.server.responses import envelope, no_content
from aws_iam_backend.vault.fields import (
    FieldType,
    parse_fields,
    to_duration,
    unrecognized_warning,
)
from aws_iam_backend.vault.token_store import CREATE_FIELDS, parse_create, token_lease
from aws_iam_backend.vault.tokens import TokenRecord, TokenSpec, rfc3339
from aws_iam_backend.vault.tokenutil import Lease

Handler = Callable[[Caller, Mapping[str, Any], str | None], AsyncResult[HTTPResponse]]


class AsyncTokenEndpoints:
    """The token store's HTTP endpoints over the issuer all mounts share."""

    def __init__(
        self, authenticator: AsyncAuthenticator, mounts: AsyncMountTable, clock: Clock
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
            "lookup": (frozenset({"read", "update"}), self._lookup),
            "lookup-accessor": (frozenset({"update"}), self._lookup_accessor),
            "revoke-accessor": (frozenset({"update"}), self._revoke_accessor),
            "create": (frozenset({"update"}), self._create),
            "create-orphan": (frozenset({"update"}), self._create_orphan),
        }

    async def handle(
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
        return await handler(await self._auth.caller(token, client_ip), data, client_ip)

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

    async def _lookup_self(
        self, caller: Caller, _data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        return envelope(data=self._lookup_data(caller, self._clock.now()))

    async def _renew_self(
        self, caller: Caller, data: Mapping[str, Any], ip: str | None
    ) -> HTTPResponse:
        if caller.record is None:
            raise InvalidRequestError("root token is not renewable")
        created = caller.record.mount == TOKEN_MOUNT
        backend = None if created else await self._mounts.backend(caller.record.mount)
        if backend is None and not created:
            raise PermissionDeniedError()
        try:
            increment = to_duration(data.get("increment", 0))
        except ValueError:
            raise InvalidRequestError("invalid increment") from None
        if backend is None:
            record = await self._renew_created(caller, caller.record, increment)
            return envelope(auth=_created_auth(attrs.evolve(record, client_token=caller.token)))
        record = await backend.renew_token(caller.token, remote_addr=ip, increment=increment)
        return envelope(auth=auth_data(attrs.evolve(record, client_token=caller.token)))

    async def _renew_created(
        self, caller: Caller, record: TokenRecord, increment: int
    ) -> TokenRecord:
        """Renew a ``token/`` mount token as Vault's token store does: ``increment``, else
        the TTL it was last granted, capped from its issue time by the ``token/`` mount's
        current max lease TTL (read past any cache) and its explicit max."""
        if record.token_type == "batch":
            raise InvalidRequestError("batch tokens cannot be renewed")
        if not record.renewable:
            raise InvalidRequestError("lease is not renewable")
        _, mount = await self._mounts.token_mount(fresh=True)
        default_ttl, max_ttl = self._mounts.lease_ttls(mount)
        lease = token_lease(
            ttl=record.ttl,
            period=record.period,
            explicit_max_ttl=record.explicit_max_ttl,
            default_ttl=default_ttl,
            max_ttl=max_ttl,
        )
        return await self._issuer.extend(
            caller.token,
            ttl=increment or lease.ttl,
            now=self._clock.now(),
            max_ttl=lease.max_ttl,
            period=lease.period,
        )

    async def _revoke_self(
        self, caller: Caller, _data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        if caller.record is None:
            raise InvalidRequestError("cannot revoke the root token")
        await self._issuer.revoke(caller.token)
        return no_content()

    async def _lookup(
        self, caller: Caller, data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        """Vault's ``handleLookup``: ``token``, or the caller's own when none is given."""
        target = parse_fields(data, _TOKEN_FIELD).string("token") or caller.token
        if same_secret(target, caller.token):
            return await self._lookup_self(caller, data, _ip)
        if not caller.is_root:
            raise PermissionDeniedError()
        record = await self._issuer.lookup(target)
        if record is None:
            raise PermissionDeniedError("bad token")
        other = Caller(target, record)
        return envelope(data=self._lookup_data(other, self._clock.now()))

    async def _lookup_accessor(
        self, caller: Caller, data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        """Vault's ``handleUpdateLookupAccessor`` (root only): the token's lookup data with
        ``id`` blank; 400 ``missing accessor`` or ``invalid accessor``."""
        if not caller.is_root:
            raise PermissionDeniedError()
        accessor = parse_fields(data, _ACCESSOR_FIELD).string("accessor")
        if not accessor:
            raise InvalidRequestError("missing accessor")
        record = await self._issuer.lookup_accessor(accessor)
        if record is None:
            raise InvalidRequestError("invalid accessor")
        found = record.lookup_data(self._clock.now())
        found["id"] = ""
        return envelope(data=found)

    async def _create(
        self, caller: Caller, data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        return await self._create_common(caller, data, orphan_endpoint=False)

    async def _create_orphan(
        self, caller: Caller, data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        return await self._create_common(caller, data, orphan_endpoint=True)

    async def _create_common(
        self, caller: Caller, data: Mapping[str, Any], *, orphan_endpoint: bool
    ) -> HTTPResponse:
        """Vault's ``handleCreateCommon`` with the root token as parent (root only): the
        token's lease comes from the ``token/`` mount's TTLs, and it is committed only on
        the mount table they were read from."""
        if not caller.is_root:
            raise PermissionDeniedError()
        request = parse_create(data, orphan_endpoint=orphan_endpoint)
        leases: list[Lease] = []

        def build(default_ttl: int, max_ttl: int) -> TokenSpec:
            lease = request.lease(default_ttl=default_ttl, max_ttl=max_ttl)
            leases.append(lease)
            return request.spec(lease, self._clock.now())

        record = await self._mounts.issue_token(build)
        warnings = [*leases[-1].warnings, *unrecognized_warning(data, CREATE_FIELDS)]
        return envelope(auth=_created_auth(record), warnings=warnings)

    async def _revoke_accessor(
        self, caller: Caller, data: Mapping[str, Any], _ip: str | None
    ) -> HTTPResponse:
        accessor = _string_field(data, "accessor")
        if caller.record is not None and not same_secret(accessor, caller.record.accessor):
            raise PermissionDeniedError()
        if await self._issuer.lookup_accessor(accessor) is None:
            raise InvalidRequestError("invalid accessor")
        await self._issuer.revoke_accessor(accessor)
        return no_content()


_TOKEN_FIELD = {"token": FieldType.STRING}
_ACCESSOR_FIELD = {"accessor": FieldType.STRING}


def _created_auth(record: TokenRecord) -> dict[str, Any]:
    """Vault's ``auth`` object for a ``token/`` mount token: its own orphan flag, and
    ``metadata`` null when it has none."""
    return {**auth_data(record), "orphan": record.orphan, "metadata": dict(record.metadata) or None}


def _string_field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"missing {name}")
    return value
