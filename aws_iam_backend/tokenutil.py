"""Token settings shared by roles (Vault's ``tokenutil``) and their arithmetic."""

from __future__ import annotations

import attrs


@attrs.frozen
class TokenSettings:
    """The ``token_*`` fields of a role. Durations are whole seconds."""

    token_policies: tuple[str, ...] = ()
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_period: int = 0
    token_explicit_max_ttl: int = 0
    token_num_uses: int = 0
    token_bound_cidrs: tuple[str, ...] = ()
    token_no_default_policy: bool = False
    token_type: str = "default"
