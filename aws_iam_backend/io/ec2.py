"""EC2 lookups with botocore, always with credentials for the instance's own account.

Clients come from :class:`~aws_iam_backend.io.aws_clients.AwsClients`, with the same
credential rules as the IAM lookups (a ``config/sts/<account>`` role assumed, else the
server's own credentials must belong to the account). The EC2 client's region is the
region asked about, its endpoint ``AwsAccess.ec2_endpoint`` (``config/client``'s
``endpoint``). The answer must be about the instance asked for, in a reservation owned by
that account (checked in :func:`~aws_iam_backend.ec2.instance.instance_from_description`).
Everything here is thread-safe.
"""

from __future__ import annotations

import re

from aws_iam_backend.ec2.instance import Ec2Instance, instance_from_description
from aws_iam_backend.errors import InvalidRequestError, UpstreamError
from aws_iam_backend.io.aws_clients import AwsClients, call
from aws_iam_backend.io.iam import BotocoreIamLookups
from aws_iam_backend.io.protocols import AwsAccess
from aws_iam_backend.vault.gocompat import go_quote

__all__ = ["BotocoreEc2Lookups"]

# AWS instance IDs: "i-" and 8 or 17 lower-case hex digits. Checked before any call, since
# in an IAM login the ID is the caller's chosen role session name.
_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})", re.ASCII)
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
_MAX_REGION = 32
_MAX_QUOTED = 64

# DescribeInstances errors about the ID the caller named rather than about AWS or us.
_CALLER_ERRORS = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


class BotocoreEc2Lookups:
    """:class:`~aws_iam_backend.io.protocols.Ec2Lookups` backed by botocore clients.

    ``clients`` shares an :class:`AwsClients` with
    :class:`~aws_iam_backend.io.iam.BotocoreIamLookups` (pass its ``clients``); without it
    a new one with default settings is used.
    """

    def __init__(self, *, clients: AwsClients | None = None) -> None:
        self.clients = clients or AwsClients()
        self._iam = BotocoreIamLookups(clients=self.clients)

    def describe_instance(
        self, instance_id: str, region: str, account_id: str, access: AwsAccess
    ) -> Ec2Instance:
        """The running instance ``instance_id`` in ``region`` of ``account_id`` (Vault's
        ``validateInstance``); bare reasons, the caller adds its flow's wrapping."""
        if not _INSTANCE_ID.fullmatch(instance_id):
            raise InvalidRequestError(f"invalid instance ID {go_quote(instance_id[:_MAX_QUOTED])}")
        if len(region) > _MAX_REGION or not _REGION.fullmatch(region):
            raise InvalidRequestError(f"invalid region {go_quote(region[:_MAX_QUOTED])}")
        client = self.clients.for_account("ec2", region, access.ec2_endpoint, account_id, access)
        try:
            description = call(
                lambda: client.describe_instances(InstanceIds=[instance_id]),
                caller_errors=_CALLER_ERRORS,
            )
        except (InvalidRequestError, UpstreamError) as exc:
            message = f"error fetching description for instance ID {go_quote(instance_id)}: "
            raise type(exc)(message + exc.message) from None
        return instance_from_description(
            description, instance_id=instance_id, account_id=account_id, region=region
        )

    def instance_profile_role_arn(self, profile_arn: str, access: AwsAccess) -> str:
        """The ARN of the instance profile's one role, looked up in the profile's account
        (see :meth:`BotocoreIamLookups.instance_profile_role_arn`)."""
        return self._iam.instance_profile_role_arn(profile_arn, access)

    def clear(self) -> None:
        """Forget cached clients and own-account IDs (call after ``config/client`` changes)."""
        self.clients.clear()
