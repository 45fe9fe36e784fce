"""Pure checks that decide whether a verified principal may use a role.

``check_binding`` is Vault's bound-principal rule (unique IDs, canonical ARNs,
trailing-``*`` wildcards against the full ARN from IAM), with the account
cross-checks of CVE-2025-11621 added. ``check_cidrs`` is ``token_bound_cidrs``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from aws_iam_backend.errors import PermissionDeniedError
from aws_iam_backend.login.arn import ArnError, IamEntity, parse_iam_arn
from aws_iam_backend.login.glob import glob_match
from aws_iam_backend.vault.roles import Role


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


def check_binding(
    role: Role,
    entity: IamEntity,
    client_user_id: str,
    full_arn: Callable[[], str],
) -> bool:
    """True if the principal matches the role's ``bound_iam_principal_arn``.

    ``full_arn`` is called only when a wildcard entry needs the principal's ARN with
    its path; it may raise (the caller maps the error). A unique-ID match also needs
    the principal's account to be the account of one of the exact bound ARNs, and a
    wildcard match needs the full ARN to be in the principal's own account. A role with
    no bound ARN admits nobody (Vault admits everybody; such roles cannot be written,
    but could be imported).
    """
    bound = role.bound_iam_principal_arn
    if not bound:
        return False
    if client_user_id in role.bound_iam_principal_id and (
        entity.account_id in _exact_bound_accounts(role)
    ):
        return True
    if not role.resolve_aws_unique_ids and entity.canonical_arn in bound:
        return True
    wildcards = [pattern for pattern in bound if pattern.endswith("*")]
    if not wildcards:
        return False
    resolved = full_arn()
    try:
        resolved_entity = parse_iam_arn(resolved)
    except ArnError:
        return False
    if (resolved_entity.partition, resolved_entity.account_id) != (
        entity.partition,
        entity.account_id,
    ):
        return False
    return any(glob_match(pattern, resolved) for pattern in wildcards)


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
