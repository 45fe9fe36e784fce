"""A verified ``ec2`` login: what the token carries (alias, metadata, internal data)."""

from __future__ import annotations

import attrs

from aws_iam_backend.ec2.document import IdentityDocument
from aws_iam_backend.ec2.instance import Ec2Instance
from aws_iam_backend.vault.config import IdentityConfig
from aws_iam_backend.vault.gocompat import format_duration
from aws_iam_backend.vault.roles import Role


@attrs.frozen
class VerifiedEc2Login:
    """An ``ec2`` login that passed every check, before its token is issued.

    ``nonce`` is the nonce to return in the token's metadata (one the server generated
    for a first login that allows reauthentication), else None. ``role_tag_max_ttl`` is
    the role tag's ``max_ttl`` in seconds (0 without a tag, or without one on the tag).
    """

    role: Role
    role_name: str
    document: IdentityDocument
    instance: Ec2Instance
    nonce: str | None = attrs.field(default=None, repr=False)
    role_tag_max_ttl: int = 0

    @property
    def display_name(self) -> str:
        """Vault sets none for ``ec2`` logins: the token shows the mount's name only."""
        return ""

    def field_values(self) -> dict[str, str]:
        """Every metadata field Vault can attach to an ``ec2`` login, by name."""
        return {
            "account_id": self.document.account_id,
            "ami_id": self.document.image_id,
            "auth_type": "ec2",
            "instance_id": self.document.instance_id,
            "region": self.document.region,
        }

    def alias_name(self, identity_config: IdentityConfig) -> str:
        """The identity alias name selected by ``ec2_alias``."""
        choice = identity_config.ec2_alias
        if choice == "instance_id":
            return self.document.instance_id
        if choice == "image_id":
            return self.document.image_id
        return self.role.role_id

    def metadata(self, identity_config: IdentityConfig) -> dict[str, str]:
        """Vault's ``role_tag_max_ttl`` and ``role``, the generated ``nonce`` (if any),
        and each selected ``ec2_metadata`` field."""
        result = {
            "role_tag_max_ttl": format_duration(self.role_tag_max_ttl),
            "role": self.role_name,
        }
        values = self.field_values()
        for name in identity_config.ec2_metadata:
            if values.get(name):
                result[name] = values[name]
        if self.nonce is not None:
            result["nonce"] = self.nonce
        return result

    def internal_data(self) -> dict[str, str]:
        """Kept with the token for renewal; never shown to clients."""
        return {
            "auth_type": "ec2",
            "role_name": self.role_name,
            "role_id": self.role.role_id,
            "instance_id": self.document.instance_id,
            "region": self.document.region,
            "account_id": self.document.account_id,
        }
