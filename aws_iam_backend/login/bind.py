"""Pure checks that decide whether a verified principal may use a role.

``check_binding`` and ``check_full_arn`` are Vault's bound-principal rule (unique IDs,
canonical ARNs, trailing-``*`` wildcards against the full ARN from IAM, which the driver
fetches only when ``check_binding`` says a wildcard decides), with the account
cross-checks of CVE-2025-11621 added. ``check_cidrs`` is ``token_bound_cidrs``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aws_iam_backend.errors import PermissionDeniedError
from aws_iam_backend.login.arn import ArnError, IamEntity, parse_iam_arn
from aws_iam_backend.login.glob import glob_match
from aws_iam_backend.vault.roles import EC2_ENTITY_TYPE, Role


def _exact_bound_accounts(role: Role) -> set[str]:
    accounts = set()
    for bound in role.bound_iam_principal_arn:
        if bound.endswith("*"):
            continue
        try:
            accounts.add(parse_iam_arn(bound).account_id)
        except ArnError:
            continue
    return accounts


def check_binding(role: Role, entity: IamEntity, client_user_id: str) -> bool | None:
    """Whether the principal matches the role's ``bound_iam_principal_arn``, decided locally:
    True or False, or None when only a wildcard entry can still match, which needs the
    principal's ARN with its path from IAM (then :func:`check_full_arn` decides).

    A unique-ID match also needs the principal's account to be the account of one of the
    exact bound ARNs. A role with no bound ARN admits nobody (Vault admits everybody; such
    roles cannot be written, but could be imported), unless it infers an EC2 instance:
    then the instance checks decide, as in Vault.
    """
    bound = role.bound_iam_principal_arn
    if not bound:
        return role.inferred_entity_type == EC2_ENTITY_TYPE
    if client_user_id in role.bound_iam_principal_id and (
        entity.account_id in _exact_bound_accounts(role)
    ):
        return True
    if not role.resolve_aws_unique_ids and entity.canonical_arn in bound:
        return True
    return None if any(pattern.endswith("*") for pattern in bound) else False


def check_full_arn(role: Role, entity: IamEntity, full_arn: str) -> bool:
    """True if ``full_arn`` (IAM's ARN of the principal, with its path) matches one of the
    role's wildcard entries and is in the principal's own partition and account."""
    try:
        resolved = parse_iam_arn(full_arn)
    except ArnError:
        return False
    if (resolved.partition, resolved.account_id) != (entity.partition, entity.account_id):
        return False
    wildcards = [pattern for pattern in role.bound_iam_principal_arn if pattern.endswith("*")]
    return any(glob_match(pattern, full_arn) for pattern in wildcards)


def check_cidrs(bound_cidrs: Sequence[str], remote_addr: str | None) -> None:
    """Raise :class:`PermissionDeniedError` unless ``remote_addr`` is inside a bound CIDR.

    No bound CIDRs means no restriction; bound CIDRs with no known address deny.
    """
    if not bound_cidrs:
        return
    if not remote_addr:
        raise PermissionDeniedError()
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        raise PermissionDeniedError() from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for cidr in bound_cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if address.version == network.version and address in network:
            return
    raise PermissionDeniedError()
