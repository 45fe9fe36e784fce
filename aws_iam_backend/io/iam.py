"""IAM lookups (unique IDs, full ARNs) with botocore, always in the entity's own account.

Credentials: the configured static keys, else botocore's default chain; with a
``config/sts/<account>`` role, credentials assumed into it (refreshed before expiry).
Without one, the server's own credentials must belong to the entity's account (learned
once per credential set with ``sts:GetCallerIdentity``). Every ARN IAM returns must be in
the entity's account (CVE-2025-11621 class). Clients and the own-account answer are
cached in bounded caches; everything here is thread-safe.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError
from cachetools import LRUCache, TTLCache

from aws_iam_backend.errors import InvalidRequestError, UpstreamError
from aws_iam_backend.io.protocols import AwsAccess
from aws_iam_backend.login.arn import IamEntity
from aws_iam_backend.login.partitions import partition_by_id
from aws_iam_backend.vault.config import redact_url
from aws_iam_backend.vault.gocompat import go_quote

__all__ = ["BotocoreIamLookups", "UniqueIdArnCache"]

_ROLE_SESSION_NAME = "aws-iam-backend"
_MAX_ERROR = 200


class BotocoreIamLookups:
    """:class:`~aws_iam_backend.io.protocols.IamLookups` backed by botocore clients.

    ``session`` defaults to a fresh botocore session (its default credential chain is
    used when ``AwsAccess`` carries no static keys).
    """

    def __init__(
        self,
        *,
        session: botocore.session.Session | None = None,
        max_clients: int = 256,
        own_account_ttl: float = 3600.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._session = session or botocore.session.get_session()
        self._lock = threading.Lock()  # botocore's client creation is not thread-safe
        self._clients: LRUCache[Hashable, Any] = LRUCache(maxsize=max_clients)
        self._own_accounts: TTLCache[Hashable, str] = TTLCache(
            maxsize=max_clients, ttl=own_account_ttl
        )
        self._timeouts = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}

    def unique_id(self, entity: IamEntity, access: AwsAccess) -> str:
        """``UserId``, ``RoleId`` or ``InstanceProfileId`` of the entity (Vault's resolution)."""
        calls: dict[str, tuple[str, str, str, str]] = {
            "user": ("get_user", "UserName", "User", "UserId"),
            "role": ("get_role", "RoleName", "Role", "RoleId"),
            "instance-profile": (
                "get_instance_profile",
                "InstanceProfileName",
                "InstanceProfile",
                "InstanceProfileId",
            ),
        }
        if entity.type not in calls:
            raise InvalidRequestError(f"unrecognized error type {go_quote(entity.type)}")
        operation, parameter, key, id_field = calls[entity.type]
        found = self._get(entity, access, operation, parameter, key)
        return str(found.get(id_field) or "")

    def full_arn(self, entity: IamEntity, access: AwsAccess) -> str:
        """The ARN, with path, of the user or role named by ``entity`` (roles for assumed roles)."""
        if entity.type == "user":
            found = self._get(entity, access, "get_user", "UserName", "User")
        elif entity.type in ("role", "assumed-role"):
            found = self._get(entity, access, "get_role", "RoleName", "Role")
        else:
            raise InvalidRequestError(f"unrecognized entity type: {entity.type}")
        return str(found.get("Arn") or "")

    def clear(self) -> None:
        """Forget cached clients and own-account IDs (call after ``config/client`` changes)."""
        with self._lock:
            self._clients.clear()
            self._own_accounts.clear()

    # ------------------------------------------------------------------ internals

    def _get(
        self, entity: IamEntity, access: AwsAccess, operation: str, parameter: str, key: str
    ) -> dict[str, Any]:
        """Call an IAM ``Get*`` by friendly name and check the returned ARN's account."""
        client = self._iam_client(entity, access)
        result = _call(lambda: getattr(client, operation)(**{parameter: entity.friendly_name}))
        found: dict[str, Any] = result.get(key) or {}
        arn = str(found.get("Arn") or "")
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        if account != entity.account_id:
            raise UpstreamError(
                f"IAM returned an ARN in account {go_quote(account)} for an entity "
                f"in account {go_quote(entity.account_id)}"
            )
        return found

    def _iam_client(self, entity: IamEntity, access: AwsAccess) -> Any:
        region = _partition_region(entity.partition)
        identity = _credential_identity(access, region)
        if access.sts_role is None:
            own = self._own_account(access, region, identity)
            if own != entity.account_id:
                raise InvalidRequestError(
                    f'unable to fetch client for account ID "{entity.account_id}" -- '
                    f'default client is for account "{own}"'
                )
        key = ("iam", entity.partition, entity.account_id, identity, access.iam_endpoint)
        return self._client(key, "iam", region, access.iam_endpoint, access)

    def _own_account(self, access: AwsAccess, region: str, identity: Hashable) -> str:
        """The account of the server's own credentials (one STS call per credential set)."""
        sts_region = access.sts_region or region
        key = (identity, access.sts_endpoint, sts_region)
        with self._lock:
            cached = self._own_accounts.get(key)
        if cached is not None:
            return cached
        client = self._client(("sts", *key), "sts", sts_region, access.sts_endpoint, access)
        account = str(_call(client.get_caller_identity).get("Account") or "")
        with self._lock:
            self._own_accounts[key] = account
        return account

    def _client(
        self, key: tuple[Hashable, ...], service: str, region: str, endpoint: str, access: AwsAccess
    ) -> Any:
        """A cached botocore client for ``key`` (which includes the credential identity)."""
        key = (*key, access.max_retries)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                session = self._session
                credentials = self._credentials(access, region)
                if credentials is not None:
                    session = botocore.session.Session()
                    session.register_component(
                        "data_loader", self._session.get_component("data_loader")
                    )
                    session.register_component(
                        "credential_provider", CredentialResolver([_Fixed(credentials)])
                    )
                client = session.create_client(
                    service,
                    region_name=region,
                    endpoint_url=endpoint or None,
                    config=self._config(access),
                )
                self._clients[key] = client
            return client

    def _credentials(self, access: AwsAccess, region: str) -> Credentials | None:
        """Static keys, credentials assumed into ``sts_role``, or None (the default chain)."""
        base = Credentials(access.access_key, access.secret_key) if access.access_key else None
        if access.sts_role is None:
            return base
        extra = {"RoleSessionName": _ROLE_SESSION_NAME}
        if access.external_id:
            extra["ExternalId"] = access.external_id
        config = self._config(access)

        def sts_client(service: str, **keys: Any) -> Any:
            with self._lock:
                return self._session.create_client(
                    service,
                    region_name=access.sts_region or region,
                    endpoint_url=access.sts_endpoint or None,
                    config=config,
                    **keys,
                )

        source = base if base is not None else self._session.get_credentials()
        if source is None:
            raise UpstreamError("unable to locate AWS credentials")
        fetcher = AssumeRoleCredentialFetcher(sts_client, source, access.sts_role, extra_args=extra)
        # Assumed on first use, refreshed by botocore before they expire.
        return DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )

    def _config(self, access: AwsAccess) -> Config:
        retries = {"max_attempts": access.max_retries} if access.max_retries >= 0 else None
        return Config(retries=retries, **self._timeouts)


class _Fixed(CredentialProvider):  # type: ignore[misc]
    """A credential provider that always answers with the given credentials."""

    METHOD = "aws-iam-backend"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._fixed = credentials

    def load(self) -> Credentials:
        return self._fixed


def _credential_identity(access: AwsAccess, region: str) -> Hashable:
    """A hashable name for the credentials ``access`` selects (the secret only as a digest)."""
    if access.access_key:
        digest = hashlib.sha256(access.secret_key.encode()).hexdigest()
        base: Hashable = ("static", access.access_key, digest)
    else:
        base = ("default",)
    if access.sts_role is None:
        return base
    return (
        "assumed",
        access.sts_role,
        access.external_id,
        base,
        access.sts_endpoint,
        access.sts_region or region,
    )


def _partition_region(partition_id: str) -> str:
    """The region used for IAM/STS clients of a partition (its global IAM region)."""
    partition = partition_by_id(partition_id)
    if partition is None:
        raise InvalidRequestError(
            f"unable to resolve partition {go_quote(partition_id)} to a region"
        )
    return partition.implicit_global_region


def _call(function: Callable[[], Any]) -> dict[str, Any]:
    """Run a botocore call, mapping its errors to :class:`UpstreamError` with safe text."""
    try:
        result: dict[str, Any] = function()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = _safe(str(error.get("Code") or "Unknown"))
        message = _safe(str(error.get("Message") or ""))
        raise UpstreamError(f"{code}: {message}" if message else code) from None
    except BotoCoreError as exc:
        raise UpstreamError(_safe(f"{type(exc).__name__}: {exc}")) from None
    return result


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def _safe(text: str) -> str:
    """One line of printable text, capped, with any URL in it redacted (botocore quotes
    endpoint URLs, which may carry userinfo or a query)."""
    text = _URL.sub(lambda match: redact_url(match.group()), text)
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 3] + "..."


class UniqueIdArnCache:
    """Full ARNs by ``(partition, account, unique ID)``: bounded, expiring, thread-safe.

    Entries expire ``ttl`` seconds after they were stored (reads do not extend them,
    unlike Vault's sliding cache), so a stale mapping lives at most ``ttl``.
    """

    def __init__(
        self,
        *,
        ttl: float = 7 * 24 * 3600,
        maxsize: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._cache: TTLCache[tuple[str, str, str], str] = TTLCache(
            maxsize=maxsize, ttl=ttl, timer=timer
        )

    def get(self, key: tuple[str, str, str]) -> str | None:
        """The cached full ARN for ``(partition, account, unique_id)``, or None."""
        with self._lock:
            return self._cache.get(key)

    def put(self, key: tuple[str, str, str], arn: str) -> None:
        """Remember ``arn`` for ``(partition, account, unique_id)``."""
        with self._lock:
            self._cache[key] = arn

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._cache.clear()
