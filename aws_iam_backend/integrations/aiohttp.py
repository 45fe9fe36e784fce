"""aiohttp: serve Vault's HTTP API from an aiohttp app and protect handlers with login tokens.

::

    api = AsyncVaultAPI(storage=AsyncSQLiteStorage("vault.db"), root_token=...)
    app = web.Application()
    app.add_subapp("/vault", vault_app(api))  # POST /vault/v1/auth/aws/login

    @require_token(api, policies=["deploy"])
    async def deploy(request: web.Request, identity: TokenIdentity) -> web.Response:
        return web.json_response({"caller": identity.display_name})

    app.router.add_post("/deploy", deploy)

Every request is awaited on aiohttp's event loop (no thread pool). Bodies over 64 KiB are
refused (413) without being read; errors are Vault's ``{"errors": [...]}``. aiohttp's HTTP
parser refuses Vault's ``LIST`` method (hvac's ``list_*`` calls send it): clients behind
this adapter list with ``GET ...?list=true``; the reference server accepts both.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable

import attrs
from aiohttp import web

from aws_iam_backend.errors import BackendError, RequestTooLargeError
from aws_iam_backend.integrations import TokenIdentity, async_authorize, required_policies
from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server.api import MAX_BODY
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.server.responses import backend_error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ProtectedHandler = Callable[[web.Request, TokenIdentity], Awaitable[web.StreamResponse]]


def _headers(request: web.Request) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ``, ``."""
    return {name.lower(): ", ".join(request.headers.getall(name)) for name in request.headers}


def _response(response: HTTPResponse) -> web.Response:
    return web.Response(status=response.status, body=response.body, headers=response.headers)


async def _body(request: web.Request) -> bytes:
    if (request.content_length or 0) > MAX_BODY:
        raise RequestTooLargeError("request body too large")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise RequestTooLargeError("request body too large")
    return body


def vault_app(api: AsyncVaultAPI) -> web.Application:
    """``api`` as an aiohttp application to add with ``app.add_subapp(prefix, ...)``.

    Vault's paths (``/v1/...``) are relative to the prefix. The sub-application's startup
    awaits :meth:`AsyncVaultAPI.start`, so a storage problem stops the app from starting.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        vault_request = HTTPRequest(
            method=request.method,
            path="/" + request.match_info["tail"],
            query=request.query_string,
            headers=_headers(request),
            remote_addr=request.remote,
        )
        try:
            body = await _body(request)
        except BackendError as exc:
            return _response(await api.refuse(vault_request, exc.status, exc.message))
        return _response(await api.handle(attrs.evolve(vault_request, body=body)))

    async def started(_app: web.Application) -> None:
        await api.start()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    app.on_startup.append(started)
    return app


def require_token(
    api: AsyncVaultAPI, policies: Iterable[str] = ()
) -> Callable[[ProtectedHandler], Handler]:
    """Decorate ``handler(request, identity)``: it runs only for a login token holding every
    one of ``policies``, with that token's :class:`TokenIdentity`; any other request gets
    Vault's ``403 {"errors": ["permission denied"]}`` (or 429 while its address is
    throttled for failed token checks)."""
    required = required_policies(policies)

    def decorate(handler: ProtectedHandler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                identity = await async_authorize(
                    api, _headers(request), request.remote, required
                )
            except BackendError as exc:
                return _response(backend_error_response(exc))
            return await handler(request, identity)

        return wrapper

    return decorate


__all__ = ["require_token", "vault_app"]
