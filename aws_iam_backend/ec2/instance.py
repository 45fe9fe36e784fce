"""A described EC2 instance and Vault's checks of it, as pure functions.

- :class:`Ec2Instance`: what ``ec2:DescribeInstances`` says about one instance.
- :func:`instance_from_description`: a DescribeInstances answer to an :class:`Ec2Instance`,
  with Vault's ``validateInstance`` checks (one instance, this ID, running) and ours (the
  reservation is owned by the account asked about).
- :func:`check_region_bind`: ``bound_region`` (the ``ec2`` login type only).
- :func:`check_instance_binds`: Vault's ``verifyInstanceMeetsRoleRequirements``.

``check_instance_binds`` is sans-IO: the only bind that needs the network,
``bound_iam_role_arn``, is also the last one Vault checks. Called without the instance
profile's role ARN, it checks every other bind and returns the instance profile ARN whose
role it needs (or None when the instance passes); the driver fetches that role ARN
(:meth:`~aws_iam_backend.io.protocols.Ec2Lookups.instance_profile_role_arn`) and calls it
again with it. A role without ``bound_iam_role_arn`` never costs an IAM call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from aws_iam_backend.errors import InternalError, InvalidRequestError, UpstreamError
from aws_iam_backend.login.arn import ArnError, IamEntity, parse_iam_arn
from aws_iam_backend.vault.gocompat import go_quote

if TYPE_CHECKING:  # only attributes are read; keeps this module free of import cycles
    from aws_iam_backend.vault.roles import Role

__all__ = [
    "EC2_LOGIN_PREFIX",
    "IAM_INFERENCE_PREFIX",
    "Ec2Instance",
    "check_instance_binds",
    "check_region_bind",
    "instance_from_description",
]

IAM_INFERENCE_PREFIX = "error validating instance: "
"""Vault's prefix of a failed bind in an ``iam`` login inferring ``ec2_instance``."""
EC2_LOGIN_PREFIX = "Error validating instance: "
"""Vault's prefix of a failed bind in an ``ec2`` login."""

_RUNNING = "running"


@attrs.frozen(kw_only=True)
class Ec2Instance:
    """One instance as ``ec2:DescribeInstances`` described it; absent values are ``""``.

    ``owner_account_id`` is the reservation's ``OwnerId``; ``region`` the region it was
    described in; ``tags`` the instance's ``(key, value)`` tags in AWS's order.
    """

    instance_id: str
    state: str
    owner_account_id: str
    region: str
    image_id: str = ""
    subnet_id: str = ""
    vpc_id: str = ""
    iam_instance_profile_arn: str = ""
    private_dns_name: str = ""
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str) -> str | None:
        """The value of the first tag called ``key`` (as Vault reads a role tag), or None."""
        for name, value in self.tags:
            if name == key:
                return value
        return None


def instance_from_description(
    description: Mapping[str, Any], *, instance_id: str, account_id: str, region: str
) -> Ec2Instance:
    """The instance in a ``DescribeInstances`` answer for ``instance_id``, checked in
    Vault's order (``validateInstance``), with the reservation's owner checked before its
    state is looked at.

    Raises :class:`InvalidRequestError` when the instance is not there or not running,
    :class:`UpstreamError` when the answer is not about that one instance in
    ``account_id``. Messages are Vault's bare reasons (the caller wraps them).
    """
    reservations = _list(description.get("Reservations"))
    if not reservations:
        raise InvalidRequestError("no reservations found in instance description")
    instances = _list(reservations[0].get("Instances"))
    if not instances:
        raise InvalidRequestError("no instance details found in reservations")
    if len(reservations) > 1 or len(instances) > 1:
        raise UpstreamError(f"more than one instance found for instance ID {go_quote(instance_id)}")
    raw = instances[0]
    if _text(raw.get("InstanceId")) != instance_id:
        raise UpstreamError(
            "expected instance ID not matching the instance ID in the instance description"
        )
    owner = _text(reservations[0].get("OwnerId"))
    if owner != account_id:
        raise UpstreamError(
            f"EC2 described instance {go_quote(instance_id)} in account {go_quote(owner)} "
            f"for account {go_quote(account_id)}"
        )
    state = _text(_dict(raw.get("State")).get("Name"))
    if not state:
        raise UpstreamError("instance state in instance description is nil")
    if state != _RUNNING:
        raise InvalidRequestError("instance is not in 'running' state")
    tags = tuple(
        (_text(tag.get("Key")), _text(tag.get("Value")))
        for tag in _list(raw.get("Tags"))
        if isinstance(tag.get("Key"), str)
    )
    return Ec2Instance(
        instance_id=instance_id,
        state=state,
        owner_account_id=owner,
        region=region,
        image_id=_text(raw.get("ImageId")),
        subnet_id=_text(raw.get("SubnetId")),
        vpc_id=_text(raw.get("VpcId")),
        iam_instance_profile_arn=_text(_dict(raw.get("IamInstanceProfile")).get("Arn")),
        private_dns_name=_text(raw.get("PrivateDnsName")),
        tags=tags,
    )


def check_region_bind(role: Role, region: str, role_name: str) -> None:
    """``bound_region`` against the identity document's region: the ``ec2`` login type
    checks it after describing the instance and before :func:`check_instance_binds`
    (Vault's text, without the ``Error validating instance`` prefix). IAM inference never
    checks it (``iam`` roles cannot have it)."""
    if role.bound_region and region not in role.bound_region:
        raise InvalidRequestError(
            f"Region {go_quote(region)} does not satisfy the constraint on role "
            f"{go_quote(role_name)}"
        )


def check_instance_binds(
    role: Role,
    instance: Ec2Instance,
    *,
    account_id: str,
    role_name: str,
    instance_profile_role_arn: str | None = None,
    prefix: str = IAM_INFERENCE_PREFIX,
) -> str | None:
    """Vault's ``verifyInstanceMeetsRoleRequirements``: the role's EC2 binds, in Vault's
    order, against a described running instance in ``account_id``.

    ``account_id`` is the account the instance was described in (STS's ``Account`` for an
    ``iam`` login, the identity document's for ``ec2``). Returns None when every bind holds,
    or the instance profile ARN whose role ARN the ``bound_iam_role_arn`` bind still needs
    (only when the role has that bind, every other one holds and
    ``instance_profile_role_arn`` was not given): fetch it and call again with it.

    A bind that does not hold raises :class:`InvalidRequestError` with ``prefix`` and
    Vault's reason; a bound value the description lacks raises :class:`InternalError`
    (Vault's 500s), as does a description not of a running instance in ``account_id``.
    """
    if instance.owner_account_id != account_id or instance.state != _RUNNING:
        raise InternalError(
            f"instance description of {go_quote(instance.instance_id)} is not of a running "
            f"instance in account {go_quote(account_id)}"
        )
    name = go_quote(role_name)

    def refuse(reason: str) -> InvalidRequestError:
        return InvalidRequestError(prefix + reason)

    if role.bound_ec2_instance_id and instance.instance_id not in role.bound_ec2_instance_id:
        raise refuse(
            f"instance ID {go_quote(instance.instance_id)} does not belong to the role {name}"
        )
    if role.bound_account_id and account_id not in role.bound_account_id:
        raise refuse(f"account ID {go_quote(account_id)} does not belong to role {name}")
    if role.bound_ami_id:
        if not instance.image_id:
            raise InternalError("AMI ID in the instance description is nil")
        if instance.image_id not in role.bound_ami_id:
            raise refuse(f"AMI ID {go_quote(instance.image_id)} does not belong to role {name}")
    if role.bound_subnet_id:
        if not instance.subnet_id:
            raise InternalError("subnet ID in the instance description is nil")
        if instance.subnet_id not in role.bound_subnet_id:
            raise refuse(
                f"subnet ID {go_quote(instance.subnet_id)} does not satisfy the constraint "
                f"on role {name}"
            )
    if role.bound_vpc_id:
        if not instance.vpc_id:
            raise InternalError("VPC ID in the instance description is nil")
        if instance.vpc_id not in role.bound_vpc_id:
            raise refuse(
                f"VPC ID {go_quote(instance.vpc_id)} does not satisfy the constraint on role {name}"
            )
    profile_arn = instance.iam_instance_profile_arn
    if role.bound_iam_instance_profile_arn:
        if not profile_arn:
            raise InternalError("IAM instance profile in the instance description is nil")
        if not _arn_matches(role.bound_iam_instance_profile_arn, profile_arn):
            raise refuse(
                f"IAM instance profile ARN {go_quote(profile_arn)} does not satisfy the "
                f"constraint role {name}"
            )
    if not role.bound_iam_role_arn:
        return None
    if not profile_arn:
        raise InternalError("IAM instance profile in the instance description is nil")
    parse_profile_arn(profile_arn)
    if instance_profile_role_arn is None:
        return profile_arn
    if not instance_profile_role_arn:
        raise InternalError("IAM role ARN could not be fetched")
    if not _arn_matches(role.bound_iam_role_arn, instance_profile_role_arn):
        raise refuse(
            f"IAM role ARN {go_quote(instance_profile_role_arn)} does not satisfy the "
            f"constraint role {name}"
        )
    return None


def _arn_matches(bound: tuple[str, ...], arn: str) -> bool:
    """Vault's instance-profile and role ARN rule: a bound value ending in ``*`` is a plain
    prefix (a ``*`` elsewhere is a literal character of an IAM path), else exact."""
    return any(
        arn.startswith(value[:-1]) if value.endswith("*") else arn == value for value in bound
    )


def parse_profile_arn(arn: str) -> IamEntity:
    """An instance profile's ARN, parsed as Vault does before looking its role up
    (``failed to parse IAM instance profile ARN ...``: a 500)."""
    try:
        entity = parse_iam_arn(arn)
    except ArnError as exc:
        raise InternalError(
            f"failed to parse IAM instance profile ARN {go_quote(arn)}: {exc}"
        ) from None
    if entity.type != "instance-profile":
        raise InternalError(
            f"failed to parse IAM instance profile ARN {go_quote(arn)}: not an instance profile"
        )
    return entity


def _list(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
