"""Starlette and FastAPI: mount Vault's HTTP API and protect routes with login tokens.

::

    api = AsyncVaultAPI(storage=AsyncSQLiteStorage("vault.db"), root_token=...)
    app = FastAPI(exception_handlers={VaultHTTPException: vault_exception_handler})
    app.mount("/vault", vault_router(api))  # POST /vault/v1/auth/aws/login

    @app.get("/deploy")
    async def deploy(
        identity: TokenIdentity = Depends(require_token(api, policies=["deploy"])),
    ) -> dict[str, str]:
        return {"caller": identity.display_name}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from aws_iam_backend.errors import BackendError
from aws_iam_backend.integrations import TokenIdentity, async_authorize, required_policies
from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server.asgi import make_asgi_app
from aws_iam_backend.server.responses import backend_error_response


def _route_path(scope: Scope) -> str:
    """The path below the mount point: Starlette's ``Mount`` keeps the full ``path`` and
    extends ``root_path`` instead of stripping it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


def vault_router(api: AsyncVaultAPI) -> ASGIApp:
    """``api`` as an ASGI app to mount: ``app.mount("/vault", vault_router(api))``.

    It is :func:`~aws_iam_backend.server.asgi.make_asgi_app` (bodies over 64 KiB get
    413; every request awaited on the host's event loop, no thread pool) seeing paths
    relative to the mount point. A mounted app gets no lifespan events: ``api`` reads
    what it keeps in storage on its first request (or ``await api.start()`` at startup).
    """
    inner = make_asgi_app(api)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "path": _route_path(scope)}
        await inner(scope, receive, send)

    return app


class VaultHTTPException(HTTPException):
    """A refused token. With :func:`vault_exception_handler` registered the body is
    Vault's ``{"errors": [...]}``; without it, FastAPI's ``{"detail": ...}``."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(error.status, detail=error.message)
        self.error = error


async def vault_exception_handler(_request: Request, exc: Exception) -> Response:
    """Render a :class:`VaultHTTPException` as Vault's error envelope (``application/json``)."""
    if not isinstance(exc, VaultHTTPException):
        raise exc
    response = backend_error_response(exc.error)
    return Response(response.body, status_code=response.status, headers=dict(response.headers))


def _headers(request: Request) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ``, ``."""
    return {name: ", ".join(request.headers.getlist(name)) for name in request.headers}


def require_token(
    api: AsyncVaultAPI, policies: Iterable[str] = ()
) -> Callable[[Request], Awaitable[TokenIdentity]]:
    """A dependency giving the caller's :class:`TokenIdentity` if its login token holds
    every one of ``policies``; otherwise it raises :class:`VaultHTTPException` (403).

    ``identity: TokenIdentity = Depends(require_token(api, policies=["deploy"]))``.
    The lookup is awaited on the event loop (no thread pool).
    """
    required = required_policies(policies)

    async def dependency(request: Request) -> TokenIdentity:
        peer = request.client.host if request.client else None
        try:
            return await async_authorize(api, _headers(request), peer, required)
        except BackendError as exc:
            raise VaultHTTPException(exc) from None

    return dependency


__all__ = ["VaultHTTPException", "require_token", "vault_exception_handler", "vault_router"]
