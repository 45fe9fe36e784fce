"""IAM/STS ARN parsing (Vault's rules), canonical ARNs and friendly names."""

from __future__ import annotations

import functools

import attrs

from aws_iam_backend.vault.gocompat import go_quote

PRINCIPAL_TYPES = frozenset({"user", "role", "instance-profile", "assumed-role"})


class ArnError(ValueError):
    """An ARN that does not parse; the message is Vault's text."""


@attrs.frozen
class IamEntity:
    """A parsed principal ARN: ``arn:<partition>:<iam|sts>::<account>:<type>/<path>/<name>``."""

    partition: str
    account_id: str
    type: str
    path: str
    friendly_name: str
    session_info: str = ""

    @property
    def canonical_arn(self) -> str:
        """The ARN with service ``iam``, assumed-role mapped to role, and the path dropped."""
        kind = "role" if self.type == "assumed-role" else self.type
        return f"arn:{self.partition}:iam::{self.account_id}:{kind}/{self.friendly_name}"

    @property
    def display_name(self) -> str:
        """Friendly name, or ``<role>/<session>`` for an assumed role."""
        if self.type == "assumed-role":
            return f"{self.friendly_name}/{self.session_info}"
        return self.friendly_name

    def go_repr(self) -> str:
        """Go's ``%v`` of Vault's entity pointer, used in some of Vault's error texts."""
        return (
            f"&{{{self.partition} {self.account_id} {self.type} {self.path} "
            f"{self.friendly_name} {self.session_info}}}"
        )


# A login parses the STS-vouched ARN up to three times; the result is immutable, so the
# parses after the first are cache hits. Bounded; errors are never cached.
@functools.lru_cache(maxsize=1024)
def parse_iam_arn(arn: str) -> IamEntity:
    """Parse a principal ARN exactly as Vault's ``parseIamArn`` does.

    Raises :class:`ArnError` with Vault's message.
    """
    parts = arn.split(":")
    if len(parts) != 6:
        raise ArnError(
            f"unrecognized arn: contains {len(parts)} colon-separated parts, expected 6"
        )
    if parts[0] != "arn":
        raise ArnError('unrecognized arn: does not begin with "arn:"')
    partition, service, _region, account, resource = parts[1:]
    if service not in ("iam", "sts"):
        raise ArnError(f"unrecognized service: {service}, not one of iam or sts")
    pieces = resource.split("/")
    if len(pieces) < 2:
        raise ArnError(
            f"unrecognized arn: {go_quote(resource)} contains fewer than 2 slash-separated parts"
        )
    kind = pieces[0]
    if kind == "assumed-role":
        if len(pieces) < 3:
            raise ArnError(
                f"unrecognized arn: {go_quote(resource)} contains fewer than 3 "
                "slash-separated parts"
            )
        return IamEntity(partition, account, kind, "", pieces[1], pieces[2])
    if kind not in PRINCIPAL_TYPES:
        raise ArnError(f"unrecognized principal type: {go_quote(kind)}")
    return IamEntity(partition, account, kind, "/".join(pieces[1:-1]), pieces[-1])
