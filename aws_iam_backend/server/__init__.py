"""The reference server: Vault's HTTP API over :class:`aws_iam_backend.Backend`.

:class:`~aws_iam_backend.server.api.VaultAPI` is framework-free
(``HTTPRequest -> HTTPResponse``); :mod:`.wsgi` and :mod:`.asgi` adapt it.
"""
