"""Value objects passed between the stages of the login pipeline.

``payload -> OutboundRequest -> STSResponse -> CallerIdentity``: each is built once,
validated when built, and never re-checked downstream.
"""

from __future__ import annotations

from datetime import datetime

import attrs


@attrs.frozen
class SigV4Info:
    """What the client's SigV4 signature says about itself (parsed, not verified)."""

    access_key_id: str
    scope_date: str  # yyyymmdd
    region: str
    signed_headers: tuple[str, ...]
    signature: str  # 64 lower-case hex characters
    request_time: datetime  # X-Amz-Date, UTC
    presigned: bool  # signed in the query string (GET) rather than the Authorization header
    expires: int | None = None  # X-Amz-Expires for presigned requests


@attrs.frozen
class OutboundRequest:
    """The GetCallerIdentity request we send to STS, rebuilt from validated parts.

    ``url`` is where we connect (scheme, host, optional port, path ``/`` and the
    client's raw query for GET); ``host`` is the ``Host`` header we send (the host
    the client signed). ``headers`` never contains ``Host``, ``Content-Length`` or
    hop-by-hop headers; the transport adds those.
    """

    method: str
    url: str
    host: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    sigv4: SigV4Info


@attrs.frozen
class STSResponse:
    """An HTTP response from STS, as received (body already capped by the transport)."""

    status: int
    headers: tuple[tuple[str, str], ...]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None


@attrs.frozen
class CallerIdentity:
    """The identity STS vouched for (all three fields non-empty and consistent)."""

    arn: str
    user_id: str
    account: str
    request_id: str = ""
