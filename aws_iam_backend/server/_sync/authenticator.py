# Generated from ../_async/authenticator.py by scripts/unasync.py: do not edit.
"""Token checks against the root token and the shared token issuer (see :mod:`..auth`)."""

from __future__ import annotations

import hmac

from aws_iam_backend.drivers._sync.tokens import TokenIssuer
from aws_iam_backend.errors import PermissionDeniedError
from aws_iam_backend.login.bind import check_cidrs
from aws_iam_backend.server.auth import Caller, secret_digest
from aws_iam_backend.server.guessing import FailedCheckThrottle


class Authenticator:
    """Checks tokens against the root token (constant time) and the shared token issuer.

    Failed checks (a token that is neither the root token nor a live token) are counted
    per source by ``throttle`` (default:
    :class:`~aws_iam_backend.server.guessing.FailedCheckThrottle` with 10 at once, then 1
    per second; a token the source failed with just before counts once);
    a source with none left gets a 429 before its token is looked at. Methods that take
    an address throttle only when it is given.
    """

    def __init__(
        self,
        root_token: str,
        issuer: TokenIssuer,
        *,
        throttle: FailedCheckThrottle | None = None,
    ) -> None:
        if not root_token:
            raise ValueError("the root token must not be empty")
        # Compared as keyed digests: equal length whatever the caller sends, so neither the
        # content nor the length of the root token shows in the time a comparison takes.
        self._root = secret_digest(root_token)
        self.issuer = issuer
        self.throttle = throttle if throttle is not None else FailedCheckThrottle()

    def is_root(self, token: str) -> bool:
        """True if ``token`` is the root token (constant time)."""
        return hmac.compare_digest(secret_digest(token), self._root)

    def caller(self, token: str | None, client_ip: str | None) -> Caller:
        """The caller holding ``token``; 403 when it is missing, unknown, expired or used up,
        or when ``client_ip`` is outside the token's bound CIDRs. Consumes one use.

        429 when ``client_ip`` has failed too many checks (before ``token`` is looked at);
        an unknown or expired token counts as a failed check of ``client_ip``.
        """
        if not token:
            raise PermissionDeniedError()
        self.throttle.check(client_ip)
        digest = secret_digest(token)
        if hmac.compare_digest(digest, self._root):
            return Caller(token, None)
        record = self.issuer.lookup(token)
        if record is None:
            self.throttle.failed(client_ip, digest)
            raise PermissionDeniedError()
        check_cidrs(record.bound_cidrs, client_ip)
        if record.num_uses:
            used = self.issuer.use(token)
            if used is None:
                raise PermissionDeniedError()
            record = used
        return Caller(token, record)

    def root(self, token: str | None, remote_addr: str | None = None) -> Caller:
        """The root caller; 403 for any other token or none.

        With ``remote_addr``: 429 when it has failed too many checks (before ``token`` is
        looked at), and a token that is neither the root token nor a live login token
        counts as a failed check of ``remote_addr``.
        """
        if not token:
            raise PermissionDeniedError()
        self.throttle.check(remote_addr)
        digest = secret_digest(token)
        if hmac.compare_digest(digest, self._root):
            return Caller(token, None)
        if (
            remote_addr is not None
            and self.throttle.enabled
            and self.issuer.lookup(token) is None
        ):
            self.throttle.failed(remote_addr, digest)
        raise PermissionDeniedError()


__all__ = ["Authenticator"]
