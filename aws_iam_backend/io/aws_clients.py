"""botocore clients for one target account, shared by the IAM and EC2 lookups.

Credentials: the configured static keys, else botocore's default chain; with a
``config/sts/<account>`` role, credentials assumed into it (refreshed before expiry).
Without one, the server's own credentials must belong to the target account (learned
once per credential set with ``sts:GetCallerIdentity``), else the client is refused.
Clients and the own-account answer are cached in bounded caches; everything here is
thread-safe. :func:`call` runs one botocore call and maps its errors to safe messages.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Collection, Hashable
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
from aws_iam_backend.vault.config import redact_url

__all__ = ["AwsClients", "call", "safe_message"]

_ROLE_SESSION_NAME = "aws-iam-backend"
_MAX_ERROR = 200


class AwsClients:
    """Cached botocore clients, each for one service, region, endpoint and target account.

    ``session`` defaults to a fresh botocore session (its default credential chain is
    used when ``AwsAccess`` carries no static keys). Share one instance between
    :class:`~aws_iam_backend.io.iam.BotocoreIamLookups` and
    :class:`~aws_iam_backend.io.ec2.BotocoreEc2Lookups` so they share credentials and the
    own-account answer.
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

    def for_account(
        self, service: str, region: str, endpoint: str, account_id: str, access: AwsAccess
    ) -> Any:
        """A client of ``service`` whose credentials are for ``account_id`` only.

        With ``access.sts_role`` the role is assumed (the caller must still check that the
        answers are about ``account_id``); without one the server's own credentials must
        belong to ``account_id``, else :class:`InvalidRequestError` (Vault's text).
        """
        identity = _credential_identity(access, region)
        if access.sts_role is None:
            own = self._own_account(access, region, identity)
            if own != account_id:
                raise InvalidRequestError(
                    f'unable to fetch client for account ID "{account_id}" -- '
                    f'default client is for account "{own}"'
                )
        key = (service, region, account_id, identity, endpoint, access.max_retries)
        return self._client(key, service, region, endpoint, access)

    def clear(self) -> None:
        """Forget cached clients and own-account IDs (call after ``config/client`` changes)."""
        with self._lock:
            self._clients.clear()
            self._own_accounts.clear()

    # ------------------------------------------------------------------ internals

    def _own_account(self, access: AwsAccess, region: str, identity: Hashable) -> str:
        """The account of the server's own credentials (one STS call per credential set)."""
        sts_region = access.sts_region or region
        key = (identity, access.sts_endpoint, sts_region)
        with self._lock:
            cached = self._own_accounts.get(key)
        if cached is not None:
            return cached
        client = self._client(
            ("sts", *key, access.max_retries), "sts", sts_region, access.sts_endpoint, access
        )
        account = str(call(client.get_caller_identity).get("Account") or "")
        with self._lock:
            self._own_accounts[key] = account
        return account

    def _client(
        self, key: tuple[Hashable, ...], service: str, region: str, endpoint: str, access: AwsAccess
    ) -> Any:
        """A cached botocore client for ``key`` (which includes the credential identity)."""
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


def call(function: Callable[[], Any], *, caller_errors: Collection[str] = ()) -> dict[str, Any]:
    """Run a botocore call, mapping its errors to :class:`UpstreamError` with safe text
    (``Code: Message``); error codes in ``caller_errors`` (the caller asked about something
    that does not exist) map to :class:`InvalidRequestError` instead."""
    try:
        result: dict[str, Any] = function()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raw_code = str(error.get("Code") or "Unknown")
        code = safe_message(raw_code)
        message = safe_message(str(error.get("Message") or ""))
        text = f"{code}: {message}" if message else code
        if raw_code in caller_errors:
            raise InvalidRequestError(text) from None
        raise UpstreamError(text) from None
    except BotoCoreError as exc:
        raise UpstreamError(safe_message(f"{type(exc).__name__}: {exc}")) from None
    return result


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def safe_message(text: str) -> str:
    """One line of printable text, capped, with any URL in it redacted (botocore quotes
    endpoint URLs, which may carry userinfo or a query)."""
    text = _URL.sub(lambda match: redact_url(match.group()), text)
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 3] + "..."
