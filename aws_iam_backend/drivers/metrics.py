"""Metrics events of the core: the :class:`Metrics` protocol and its no-op default.

The backend (``AsyncBackend(metrics=...)`` and ``Backend``), its token issuer and
:class:`~aws_iam_backend.io.storage._async.metered.AsyncMeteredStorage` report what happened
to an injected :class:`Metrics`; the default, :data:`NO_METRICS`, does nothing. The core
never imports a metrics library: the reference server plugs in prometheus-client
(:class:`~aws_iam_backend.server.metrics.PrometheusMetrics`).

Every value passed is meant to be a metric label, so each is drawn from a bounded set:
mounts and roles are names an administrator created (a login naming a role this process
has not seen exist is :data:`NO_ROLE`), outcomes are :data:`SUCCESS` or an error's class
name (:func:`outcome_of`), never an error's text. Implementations must be cheap and must
not raise: events are reported on the login path.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from aws_iam_backend.errors import BackendError

SUCCESS: Final = "success"
NO_ROLE: Final = "-"
"""The role label of a login whose role is not known to exist (the name is the client's)."""

# refused(kind): a login turned away before or instead of a verdict on its identity
RATE_LIMITED: Final = "rate_limit"  # its source's or its role's token bucket was empty
STS_BUSY: Final = "concurrency"  # no outbound slot (max_concurrent_sts_calls) in time
REPLAY: Final = "replay"  # the signed request was used before
CHALLENGE: Final = "challenge"  # missing, unsigned, expired, invalid or reused nonce

# token(event)
ISSUED: Final = "issued"
RENEWED: Final = "renewed"
REVOKED: Final = "revoked"  # by request, a mount's disable, or a limited-use token's last use
EXPIRED: Final = "expired"  # removed by tidy


class Metrics(Protocol):
    """Receives the core's events. Every argument is a bounded label value (see module)."""

    def login(self, mount: str, role: str, outcome: str) -> None:
        """A login (iam or ec2) ended: :data:`SUCCESS` or the error class that ended it."""
        ...

    def sts_call(self, seconds: float, outcome: str) -> None:
        """A GetCallerIdentity call (retries included) and the reading of its answer ended,
        ``seconds`` after it was sent: :data:`SUCCESS` or an error class
        (``UpstreamThrottledError`` when STS throttled us, ``UpstreamTimeoutError``, ...)."""
        ...

    def outbound(self, delta: int) -> None:
        """An outbound AWS call took (+1) or gave back (-1) its slot: calls in flight."""
        ...

    def refused(self, kind: str) -> None:
        """A login was refused for ``kind``: :data:`RATE_LIMITED`, :data:`STS_BUSY`,
        :data:`REPLAY` or :data:`CHALLENGE`."""
        ...

    def token(self, event: str) -> None:
        """A token was :data:`ISSUED`, :data:`RENEWED`, :data:`REVOKED` or :data:`EXPIRED`."""
        ...

    def storage(self, op: str, seconds: float, error: str) -> None:
        """A storage call (``read``, ``commit``, ``list``, ``expired``) took ``seconds``;
        ``error`` is "" or the error class it raised."""
        ...


class NoMetrics:
    """The :class:`Metrics` that records nothing (the default)."""

    def login(self, mount: str, role: str, outcome: str) -> None:
        pass

    def sts_call(self, seconds: float, outcome: str) -> None:
        pass

    def outbound(self, delta: int) -> None:
        pass

    def refused(self, kind: str) -> None:
        pass

    def token(self, event: str) -> None:
        pass

    def storage(self, op: str, seconds: float, error: str) -> None:
        pass


NO_METRICS: Final = NoMetrics()


def outcome_of(exc: BaseException) -> str:
    """The label of a failure: the class name of one of the backend's own errors,
    ``cancelled`` for a cancelled call, ``unexpected`` for anything else (a bug)."""
    if isinstance(exc, BackendError):
        return type(exc).__name__
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "unexpected"


__all__ = [
    "CHALLENGE",
    "EXPIRED",
    "ISSUED",
    "NO_METRICS",
    "NO_ROLE",
    "RATE_LIMITED",
    "RENEWED",
    "REPLAY",
    "REVOKED",
    "STS_BUSY",
    "SUCCESS",
    "Metrics",
    "NoMetrics",
    "outcome_of",
]
