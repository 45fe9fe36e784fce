"""Typed errors. Each carries the HTTP status Vault would answer with.

The reference server and the framework adapters turn any :class:`BackendError`
into ``{"errors": [message]}`` with :attr:`BackendError.status`. Messages never
contain secrets (signatures, secret keys, tokens).
"""

from __future__ import annotations


class BackendError(Exception):
    """Base class of every error the backend raises on purpose."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def errors(self) -> list[str]:
        """The ``errors`` list of Vault's error envelope (empty for a bare 404)."""
        return [self.message] if self.message else []


class InvalidRequestError(BackendError):
    """The caller's input is malformed or not allowed (HTTP 400)."""

    status = 400


class PermissionDeniedError(BackendError):
    """Authenticated or not, the caller may not do this (HTTP 403)."""

    status = 403

    def __init__(self, message: str = "permission denied") -> None:
        super().__init__(message)


class NotFoundError(BackendError):
    """Unknown path or missing entry (HTTP 404)."""

    status = 404


class UnsupportedOperationError(BackendError):
    """The path exists but not for this operation (HTTP 405)."""

    status = 405

    def __init__(self, message: str = "unsupported operation") -> None:
        super().__init__(message)


class RequestTooLargeError(BackendError):
    """A size limit was hit before decoding (HTTP 413)."""

    status = 413


class InternalError(BackendError):
    """A fault on our side, such as a storage failure (HTTP 500)."""

    status = 500


class ConflictError(InternalError):
    """A conditional storage write found the document changed (HTTP 409 if it escapes).

    Callers that read, compute and write back retry on it; ``key`` names the document
    (never its value). The message carries no key, which may be derived from a token.
    """

    status = 409

    def __init__(self, key: str) -> None:
        super().__init__("storage conflict: the entry was changed concurrently; retry")
        self.key = key


class StorageUnavailableError(InternalError):
    """The store cannot be reached right now (HTTP 503); it recovers by itself."""

    status = 503


class UpstreamError(BackendError):
    """STS or IAM answered with something unusable, or could not be reached (HTTP 502)."""

    status = 502


class UpstreamTimeoutError(UpstreamError):
    """The overall deadline for an upstream call ran out (HTTP 504)."""

    status = 504


class RateLimitedError(BackendError):
    """Too many logins from this source, for this role, or in flight (HTTP 429).

    ``retry_after`` (whole seconds, at least 1) is sent as the ``Retry-After`` header.
    """

    status = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class UpstreamThrottledError(UpstreamError):
    """STS answered that it is throttling our requests (HTTP 503, with ``Retry-After``)."""

    status = 503

    def __init__(
        self,
        message: str = "error making upstream request: STS is throttling requests",
        retry_after: int = 1,
    ) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
