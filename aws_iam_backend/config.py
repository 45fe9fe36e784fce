"""Mount configuration: ``config/client``, ``config/identity``, ``config/sts/<account>``."""

from __future__ import annotations

import attrs

DEFAULT_IAM_METADATA = ("account_id", "auth_type")


@attrs.frozen
class ClientConfig:
    """``config/client``. An absent entry behaves as ``ClientConfig()``."""

    access_key: str = ""
    secret_key: str = attrs.field(default="", repr=False)
    endpoint: str = ""
    iam_endpoint: str = ""
    sts_endpoint: str = ""
    sts_region: str = ""
    use_sts_region_from_client: bool = False
    iam_server_id_header_value: str = ""
    allowed_sts_header_values: tuple[str, ...] = ()
    max_retries: int = -1


@attrs.frozen
class IdentityConfig:
    """``config/identity``: alias source and token metadata for IAM logins."""

    iam_alias: str = "role_id"
    iam_metadata: tuple[str, ...] = DEFAULT_IAM_METADATA
    ec2_alias: str = "role_id"
    ec2_metadata: tuple[str, ...] = DEFAULT_IAM_METADATA


@attrs.frozen
class StsRoleConfig:
    """``config/sts/<account_id>``: the role to assume for IAM calls about that account."""

    account_id: str
    sts_role: str
    external_id: str = ""
