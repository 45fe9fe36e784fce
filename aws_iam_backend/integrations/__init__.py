"""Framework adapters over ``VaultAPI`` (Flask, WSGI) and ``AsyncVaultAPI`` (Starlette).

:mod:`.flask` and :mod:`.starlette` (FastAPI too) each mount Vault's HTTP API under a
URL prefix and protect views with a login token. What they share lives here and imports
no framework: :class:`TokenIdentity`, what a protected view learns about its caller, and
:func:`authorize`, the check behind both adapters' ``require_token``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from aws_iam_backend.errors import PermissionDeniedError
from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server._sync.api import VaultAPI
from aws_iam_backend.server.auth import request_token
from aws_iam_backend.vault.tokens import TokenRecord


@attrs.frozen
class TokenIdentity:
    """Who called a protected view: a login token's record, minus the token itself.

    ``client_arn`` is the ARN STS returned at login (``None`` if the record lacks it).
    """

    accessor: str
    policies: tuple[str, ...]
    metadata: dict[str, str]
    display_name: str
    entity_id: str
    role_name: str
    client_arn: str | None

    @classmethod
    def from_record(cls, record: TokenRecord) -> TokenIdentity:
        """The identity of the token ``record`` describes."""
        return cls(
            accessor=record.accessor,
            policies=record.policies,
            metadata=dict(record.metadata),
            display_name=record.display_name,
            entity_id=record.entity_id,
            role_name=record.role_name,
            client_arn=record.internal_data.get("client_arn") or None,
        )


def required_policies(policies: Iterable[str]) -> frozenset[str]:
    """``policies`` as a set; :class:`TypeError` for a bare string (a likely typo for a list)."""
    if isinstance(policies, str):
        raise TypeError("policies must be an iterable of policy names, not a string")
    return frozenset(policies)


def authorize(
    api: VaultAPI,
    headers: Mapping[str, str],
    remote_addr: str | None,
    required: frozenset[str] = frozenset(),
) -> TokenIdentity:
    """The identity behind the request's token, holding every ``required`` policy.

    ``headers`` have lower-case names; the token comes from ``X-Vault-Token`` or
    ``Authorization: Bearer``. ``remote_addr`` is the socket peer (``X-Forwarded-For``
    counts as the API's ``trusted_proxies`` say). Raises :class:`PermissionDeniedError`
    when the token is missing, unknown, expired, used up, bound to other CIDRs, the root
    token (which has no identity) or short of a policy; other
    :class:`~aws_iam_backend.errors.BackendError` on storage faults. A limited-use token
    spends one use, as on any Vault request.
    """
    record = api.lookup_token(
        _token(headers), remote_addr=remote_addr, forwarded_for=headers.get("x-forwarded-for")
    )
    return _identity(record, required)


async def async_authorize(
    api: AsyncVaultAPI,
    headers: Mapping[str, str],
    remote_addr: str | None,
    required: frozenset[str] = frozenset(),
) -> TokenIdentity:
    """:func:`authorize` for asyncio hosts, over :class:`AsyncVaultAPI` (awaited)."""
    record = await api.lookup_token(
        _token(headers), remote_addr=remote_addr, forwarded_for=headers.get("x-forwarded-for")
    )
    return _identity(record, required)


def _token(headers: Mapping[str, str]) -> str:
    token = request_token(dict(headers))
    if token is None:
        raise PermissionDeniedError()
    return token


def _identity(record: TokenRecord, required: frozenset[str]) -> TokenIdentity:
    if not required <= set(record.policies):
        raise PermissionDeniedError()
    return TokenIdentity.from_record(record)


__all__ = ["TokenIdentity", "async_authorize", "authorize", "required_policies"]
