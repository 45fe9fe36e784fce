"""Pure parts of a successful IAM login: alias, metadata, the data kept with the token and
the :class:`~aws_iam_backend.vault.tokens.TokenSpec` to issue."""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import attrs

from aws_iam_backend.ec2.instance import Ec2Instance
from aws_iam_backend.login.arn import IamEntity
from aws_iam_backend.login.messages import CallerIdentity, OutboundRequest
from aws_iam_backend.vault.config import IdentityConfig
from aws_iam_backend.vault.roles import EC2_ENTITY_TYPE, Role
from aws_iam_backend.vault.tokens import TokenSpec
from aws_iam_backend.vault.tokenutil import Lease


@attrs.frozen
class VerifiedLogin:
    """Everything known about a login once STS vouched for the caller and the role allowed it."""

    role: Role
    role_name: str  # as given or defaulted (not lower-cased), like Vault's internal data
    entity: IamEntity
    identity: CallerIdentity
    request: OutboundRequest
    instance: Ec2Instance | None = None  # the inferred EC2 instance, when the role infers one

    @property
    def client_user_id(self) -> str:
        """The unique ID part of ``UserId`` (``AROA...`` for assumed roles)."""
        return self.identity.user_id.split(":", 1)[0]

    @property
    def display_name(self) -> str:
        """The token's display name before the mount prefix."""
        return self.entity.display_name

    def field_values(self) -> dict[str, str]:
        """Every metadata field Vault can attach to an IAM login, by name."""
        instance = self.instance
        return {
            "account_id": self.entity.account_id,
            "auth_type": "iam",
            "canonical_arn": self.entity.canonical_arn,
            "client_arn": self.identity.arn,
            "client_user_id": self.client_user_id,
            "inferred_aws_region": self.role.inferred_aws_region,
            "inferred_entity_id": instance.instance_id if instance else "",
            "inferred_entity_type": EC2_ENTITY_TYPE if instance else "",
            "inferred_hostname": instance.private_dns_name if instance else "",
        }

    def alias_name(self, identity_config: IdentityConfig) -> str:
        """The identity alias name selected by ``iam_alias``."""
        choice = identity_config.iam_alias
        if choice == "unique_id":
            return self.client_user_id
        if choice == "full_arn":
            return self.identity.arn
        if choice == "canonical_arn":
            return self.entity.canonical_arn
        return self.role.role_id

    def metadata(self, identity_config: IdentityConfig) -> dict[str, str]:
        """Token metadata: ``role_id`` plus each selected ``iam_metadata`` field that is set."""
        values = self.field_values()
        result = {"role_id": self.role.role_id}
        for name in identity_config.iam_metadata:
            value = values.get(name, "")
            if value:
                result[name] = value
        return result

    def internal_data(self) -> dict[str, str]:
        """Kept with the token for renewal; never shown to clients."""
        return {
            "auth_type": "iam",
            "role_name": self.role_name,
            "role_id": self.role.role_id,
            "canonical_arn": self.entity.canonical_arn,
            "client_user_id": self.client_user_id,
            "account_id": self.entity.account_id,
            "client_arn": self.identity.arn,
            "inferred_entity_id": self.instance.instance_id if self.instance else "",
            "inferred_aws_region": self.role.inferred_aws_region,
            "inferred_hostname": self.instance.private_dns_name if self.instance else "",
        }


class VerifiedAnyLogin(Protocol):
    """What :func:`token_spec` reads of a verified login of either type."""

    @property
    def role(self) -> Role: ...
    @property
    def role_name(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    def alias_name(self, identity_config: IdentityConfig) -> str: ...
    def metadata(self, identity_config: IdentityConfig) -> dict[str, str]: ...
    def internal_data(self) -> dict[str, str]: ...


@functools.lru_cache(maxsize=1024)  # a pure function of two strings; logins repeat them
def entity_id(mount: str, alias_name: str) -> str:
    """A stable identity entity ID for an alias on a mount."""
    # uuid.uuid5(uuid.NAMESPACE_URL, name), formatted, without building a UUID object.
    name = f"aws-iam-backend:{mount}:{alias_name}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_URL + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NAMESPACE_URL = uuid.NAMESPACE_URL.bytes


def token_spec(
    verified: VerifiedAnyLogin,
    identity_config: IdentityConfig,
    *,
    mount: str,
    lease: Lease,
    now: datetime,
    policies: Sequence[str] | None = None,
) -> TokenSpec:
    """What to issue for ``verified``: the role's policies (or ``policies``, a role
    tag's), plus ``default`` unless the role says not to, the lease, alias-derived
    entity ID, metadata and internal data."""
    settings = verified.role.token
    policies = list(settings.token_policies if policies is None else policies)
    if not settings.token_no_default_policy and "default" not in policies:
        policies.insert(0, "default")
    alias = verified.alias_name(identity_config)
    sorted_policies = tuple(sorted(policies))
    return TokenSpec(
        policies=sorted_policies,
        token_policies=sorted_policies,
        metadata=verified.metadata(identity_config),
        internal_data=verified.internal_data(),
        display_name=f"{mount.strip('/').replace('/', '-')}-{verified.display_name}".rstrip("-"),
        ttl=lease.ttl,
        max_ttl=lease.max_ttl,
        explicit_max_ttl=lease.explicit_max_ttl,
        period=lease.period,
        num_uses=settings.token_num_uses,
        bound_cidrs=settings.token_bound_cidrs,
        token_type="batch" if settings.token_type in ("batch", "default-batch") else "service",
        entity_id=entity_id(mount, alias),
        mount=mount,
        role_name=verified.role_name,
        issued_at=now,
    )
