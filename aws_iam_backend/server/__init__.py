"""The reference server: Vault's HTTP API over the auth method's drivers.

:class:`AsyncVaultAPI` (over :class:`~aws_iam_backend.AsyncBackend`) and its generated
twin :class:`VaultAPI` (over :class:`~aws_iam_backend.Backend`) are framework-free
(``HTTPRequest -> HTTPResponse``); :mod:`.asgi` serves the first, :mod:`.wsgi` the second.
"""

from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server._sync.api import VaultAPI

__all__ = ["AsyncVaultAPI", "VaultAPI"]
