"""Roles: the ``role/<name>`` entries that decide who may log in and what token they get."""

from __future__ import annotations

import attrs

from .tokenutil import TokenSettings

ROLE_VERSION = 3


@attrs.frozen
class Role:
    """A role entry. List fields are tuples; durations are seconds."""

    name: str
    role_id: str
    auth_type: str = "iam"
    bound_iam_principal_arn: tuple[str, ...] = ()
    bound_iam_principal_id: tuple[str, ...] = ()
    resolve_aws_unique_ids: bool = True
    inferred_entity_type: str = ""
    inferred_aws_region: str = ""
    bound_account_id: tuple[str, ...] = ()
    bound_ami_id: tuple[str, ...] = ()
    bound_ec2_instance_id: tuple[str, ...] = ()
    bound_iam_role_arn: tuple[str, ...] = ()
    bound_iam_instance_profile_arn: tuple[str, ...] = ()
    bound_region: tuple[str, ...] = ()
    bound_subnet_id: tuple[str, ...] = ()
    bound_vpc_id: tuple[str, ...] = ()
    role_tag: str = ""
    allow_instance_migration: bool = False
    disallow_reauthentication: bool = False
    token: TokenSettings = TokenSettings()
    version: int = ROLE_VERSION
