"""Who is calling: the root token, a token issued by a login, or nobody."""

from __future__ import annotations

import hmac

import attrs

from ..binding import check_cidrs
from ..errors import PermissionDeniedError
from ..tokens import TokenIssuer, TokenRecord


@attrs.frozen
class Caller:
    """An authenticated caller: ``record`` is None for the root token."""

    token: str = attrs.field(repr=False)
    record: TokenRecord | None

    @property
    def is_root(self) -> bool:
        """True for the configured root token."""
        return self.record is None


def request_token(headers: dict[str, str]) -> str | None:
    """The token from ``X-Vault-Token``, else from ``Authorization: Bearer <token>``."""
    token = headers.get("x-vault-token", "").strip()
    if token:
        return token
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class Authenticator:
    """Checks tokens against the root token (constant time) and the shared token issuer."""

    def __init__(self, root_token: str, issuer: TokenIssuer) -> None:
        if not root_token:
            raise ValueError("the root token must not be empty")
        self._root = root_token.encode("utf-8", "surrogatepass")
        self.issuer = issuer

    def is_root(self, token: str) -> bool:
        """True if ``token`` is the root token."""
        return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._root)

    def caller(self, token: str | None, client_ip: str | None) -> Caller:
        """The caller holding ``token``; 403 when it is missing, unknown, expired or used up,
        or when ``client_ip`` is outside the token's bound CIDRs. Consumes one use."""
        if not token:
            raise PermissionDeniedError()
        if self.is_root(token):
            return Caller(token, None)
        record = self.issuer.lookup(token)
        if record is None:
            raise PermissionDeniedError()
        check_cidrs(record.bound_cidrs, client_ip)
        if record.num_uses:
            used = self.issuer.use(token)
            if used is None:
                raise PermissionDeniedError()
            record = used
        return Caller(token, record)

    def root(self, token: str | None) -> Caller:
        """The root caller; 403 for any other token or none."""
        if not token or not self.is_root(token):
            raise PermissionDeniedError()
        return Caller(token, None)
