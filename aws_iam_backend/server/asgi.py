"""ASGI adapter: ``make_asgi_app(api)`` for uvicorn, hypercorn or any ASGI server.

The core blocks (storage, STS), so each request runs ``api.handle`` in a bounded thread
pool while the event loop keeps accepting and reading other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .api import MAX_BODY, VaultAPI
from .messages import HTTPRequest, HTTPResponse
from .responses import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ``, `` as HTTP allows."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _read_body(receive: Receive, headers: dict[str, str]) -> bytes | HTTPResponse:
    """The body, never buffering more than ``MAX_BODY`` bytes, or the error to send instead."""
    declared = headers.get("content-length", "")
    if declared and not declared.isdigit():
        return error_response(400, ["invalid Content-Length header"])
    if declared and int(declared) > MAX_BODY:
        return error_response(413, ["request body too large"])
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return error_response(400, ["client disconnected"])
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return error_response(413, ["request body too large"])
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: HTTPResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def make_asgi_app(api: VaultAPI, *, max_workers: int = 256) -> ASGIApp:
    """An ASGI callable serving ``api`` with at most ``max_workers`` requests in the core at once.

    Bodies over 64 KiB are refused (413) without buffering more than that. The pool
    is shut down by the ASGI lifespan ``shutdown`` event.
    """
    executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vault-api")

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope type: {scope['type']}")
        headers = _headers(scope)
        body = await _read_body(receive, headers)
        if isinstance(body, HTTPResponse):
            await _send(send, body)
            return
        client = scope.get("client")
        request = HTTPRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            remote_addr=client[0] if client else None,
        )
        loop = asyncio.get_running_loop()
        await _send(send, await loop.run_in_executor(executor, api.handle, request))

    return app
