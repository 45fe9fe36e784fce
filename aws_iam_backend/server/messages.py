"""Framework-neutral HTTP request and response values for :class:`VaultAPI`."""

from __future__ import annotations

import attrs


@attrs.frozen
class HTTPRequest:
    """One HTTP request as the API sees it.

    ``path`` is the URL path (``/v1/auth/aws/login``), ``query`` the raw query string,
    ``headers`` a mapping with lower-case names, ``remote_addr`` the socket peer address.
    """

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    remote_addr: str | None = None


@attrs.frozen
class HTTPResponse:
    """Status, headers and body to send back."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
