"""IAM lookups (unique IDs, full ARNs, an instance profile's role) with botocore, always in
the entity's own account.

Clients come from :class:`~aws_iam_backend.io.aws_clients.AwsClients` (static keys or
botocore's default chain; a ``config/sts/<account>`` role assumed, else the server's own
credentials must belong to the entity's account). Every ARN IAM returns must be in the
entity's account (CVE-2025-11621 class). Everything here is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import botocore.session
from cachetools import TTLCache

from aws_iam_backend.ec2.instance import parse_profile_arn
from aws_iam_backend.errors import BackendError, InternalError, InvalidRequestError, UpstreamError
from aws_iam_backend.io.aws_clients import AwsClients, call
from aws_iam_backend.io.protocols import AwsAccess
from aws_iam_backend.login.arn import IamEntity
from aws_iam_backend.login.partitions import partition_by_id
from aws_iam_backend.vault.gocompat import go_quote

__all__ = ["BotocoreIamLookups", "UniqueIdArnCache"]


class BotocoreIamLookups:
    """:class:`~aws_iam_backend.io.protocols.IamLookups` backed by botocore clients.

    ``clients`` shares an :class:`AwsClients` (with its credentials and caches) with other
    lookups; without it one is built from the remaining arguments (``session`` defaults
    to a fresh botocore session, whose default credential chain is used when
    ``AwsAccess`` carries no static keys).
    """

    def __init__(
        self,
        *,
        clients: AwsClients | None = None,
        session: botocore.session.Session | None = None,
        max_clients: int = 256,
        own_account_ttl: float = 3600.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.clients = clients or AwsClients(
            session=session,
            max_clients=max_clients,
            own_account_ttl=own_account_ttl,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

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
        found = self._get(self._iam_client(entity, access), entity, operation, parameter, key)
        return str(found.get(id_field) or "")

    def full_arn(self, entity: IamEntity, access: AwsAccess) -> str:
        """The ARN, with path, of the user or role named by ``entity`` (roles for assumed roles)."""
        if entity.type == "user":
            operation, parameter, key = "get_user", "UserName", "User"
        elif entity.type in ("role", "assumed-role"):
            operation, parameter, key = "get_role", "RoleName", "Role"
        else:
            raise InvalidRequestError(f"unrecognized entity type: {entity.type}")
        found = self._get(self._iam_client(entity, access), entity, operation, parameter, key)
        return str(found.get("Arn") or "")

    def instance_profile_role_arn(self, profile_arn: str, access: AwsAccess) -> str:
        """The ARN of the one role in the instance profile ``profile_arn`` (Vault's
        ``instanceIamRoleARN``), looked up in the profile's own account.

        Errors carry Vault's texts: ``could not fetch IAM client: <err>`` (credentials for
        the account) or ``IAM role ARN could not be fetched: <err>`` (the call or its
        answer, including a role outside the profile's account).
        """
        entity = parse_profile_arn(profile_arn)
        try:
            client = self._iam_client(entity, access)
        except BackendError as exc:
            raise _reworded(exc, f"could not fetch IAM client: {exc.message}") from None
        try:
            found = self._get(
                client, entity, "get_instance_profile", "InstanceProfileName", "InstanceProfile"
            )
            roles = found.get("Roles")
            if not isinstance(roles, list) or len(roles) != 1:
                raise UpstreamError("invalid roles in the output of instance profile details")
            role_arn = str((roles[0] or {}).get("Arn") or "")
            if not role_arn:
                raise UpstreamError("nil role ARN in the output of instance profile details")
            _check_account(role_arn, entity.account_id)
        except BackendError as exc:
            raise _reworded(exc, f"IAM role ARN could not be fetched: {exc.message}") from None
        return role_arn

    def clear(self) -> None:
        """Forget cached clients and own-account IDs (call after ``config/client`` changes)."""
        self.clients.clear()

    # ------------------------------------------------------------------ internals

    def _get(
        self, client: Any, entity: IamEntity, operation: str, parameter: str, key: str
    ) -> dict[str, Any]:
        """Call an IAM ``Get*`` by friendly name and check the returned ARN's account."""
        result = call(lambda: getattr(client, operation)(**{parameter: entity.friendly_name}))
        found: dict[str, Any] = result.get(key) or {}
        _check_account(str(found.get("Arn") or ""), entity.account_id)
        return found

    def _iam_client(self, entity: IamEntity, access: AwsAccess) -> Any:
        region = _partition_region(entity.partition)
        return self.clients.for_account(
            "iam", region, access.iam_endpoint, entity.account_id, access
        )


def _check_account(arn: str, account_id: str) -> None:
    """Refuse an ARN from IAM that is not in ``account_id``."""
    account = arn.split(":")[4] if arn.count(":") >= 5 else ""
    if account != account_id:
        raise UpstreamError(
            f"IAM returned an ARN in account {go_quote(account)} for an entity "
            f"in account {go_quote(account_id)}"
        )


def _reworded(error: BackendError, message: str) -> BackendError:
    """``error``'s kind (and HTTP status) with a new message."""
    if isinstance(error, InvalidRequestError):
        return InvalidRequestError(message)
    if isinstance(error, InternalError):
        return InternalError(message)
    return UpstreamError(message)


def _partition_region(partition_id: str) -> str:
    """The region used for IAM/STS clients of a partition (its global IAM region)."""
    partition = partition_by_id(partition_id)
    if partition is None:
        raise InvalidRequestError(
            f"unable to resolve partition {go_quote(partition_id)} to a region"
        )
    return partition.implicit_global_region


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
