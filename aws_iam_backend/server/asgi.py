"""ASGI adapter: ``make_asgi_app(api)`` for uvicorn, hypercorn or any ASGI server.

Each request awaits :meth:`AsyncVaultAPI.handle` on the server's event loop: no thread
pool on the request path (storage, STS and the cache are awaited; SQLite runs on its
storage's own thread).

Every HTTP request gets Vault's JSON answer and one audit record: a request refused here,
before :meth:`AsyncVaultAPI.handle` (a body over the cap, a ``Content-Length`` that is not a
number or disagrees with the body, both ``Content-Length`` and ``Transfer-Encoding``, a
client gone mid-body, a body not all received within the request deadline), is answered
and audited by :meth:`AsyncVaultAPI.refuse`, and the connection is closed since the rest of its
byte stream cannot be trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

import attrs

from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server.api import MAX_BODY
from aws_iam_backend.server.framing import (
    DISCONNECTED,
    LENGTH_MISMATCH,
    TOO_LARGE,
    Refusal,
    declared_length,
)
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.server.responses import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]

_log = logging.getLogger("aws_iam_backend.server")
DEFAULT_REQUEST_TIMEOUT = 30  # seconds for a request body, Vault's http_read_timeout


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ``, `` as HTTP allows."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


BODY_TIMEOUT = Refusal(408, "request body read timed out")


async def _read_body(
    receive: Receive, headers: dict[str, str], timeout: float | None = None
) -> bytes | Refusal:
    """The body, never buffering more than ``MAX_BODY`` bytes, or why it is refused;
    :data:`BODY_TIMEOUT` when it has not all arrived within ``timeout`` seconds."""
    declared = declared_length(headers)
    if isinstance(declared, Refusal):
        return declared
    try:
        async with asyncio.timeout(timeout):
            return await _receive_body(receive, declared)
    except TimeoutError:
        return BODY_TIMEOUT


async def _receive_body(receive: Receive, declared: int | None) -> bytes | Refusal:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return DISCONNECTED
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            if declared is not None and size != declared:
                return LENGTH_MISMATCH
            return b"".join(chunks)


async def _unless_disconnected(
    handling: Coroutine[Any, Any, HTTPResponse], receive: Receive
) -> HTTPResponse | None:
    """``handling``'s response, or None if the client disconnects first (``handling`` is
    then cancelled). With the body read, the next ASGI message can only be a disconnect:
    one watcher task waits for it and cancels this task if it comes."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    def on_message(watcher: asyncio.Future[Message]) -> None:
        nonlocal gone
        if _is_disconnect(watcher):
            gone = True
            current.cancel()

    watcher = asyncio.ensure_future(receive())
    watcher.add_done_callback(on_message)
    try:
        return await handling
    except asyncio.CancelledError:
        if gone and current.uncancel() == 0:
            return None  # the client went away: nothing to answer
        raise
    finally:
        watcher.remove_done_callback(on_message)
        watcher.cancel()


def _is_disconnect(watcher: asyncio.Future[Message]) -> bool:
    if watcher.cancelled() or watcher.exception() is not None:
        return False
    return bool(watcher.result().get("type") == "http.disconnect")


def _closing(response: HTTPResponse) -> HTTPResponse:
    """``response`` with ``Connection: close``."""
    return attrs.evolve(response, headers=(*response.headers, ("Connection", "close")))


async def _send(send: Send, response: HTTPResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


Hook = Callable[[], Awaitable[None]]


def make_asgi_app(
    api: AsyncVaultAPI,
    *,
    request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    on_startup: Hook | None = None,
    on_shutdown: Hook | None = None,
) -> ASGIApp:
    """An ASGI callable serving ``api``.

    Bodies over 64 KiB are refused (413) without buffering more than that. A body not all
    received ``request_timeout`` seconds after the request head (None: no deadline) is
    refused ``408 request body read timed out`` (audited, ``Connection: close``). The ASGI
    lifespan ``startup`` awaits :meth:`AsyncVaultAPI.start` (a storage problem fails the
    startup, with its message) and then ``on_startup``; ``shutdown`` awaits ``on_shutdown``.
    A client that disconnects mid-request cancels its handling (a login not yet issued
    issues nothing and releases its replay claim). Should the adapter itself fail, the
    answer is still a JSON ``500 internal error``, logged but not audited.
    """

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await api.start()
                    if on_startup is not None:
                        await on_startup()
                except Exception as exc:
                    _log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if on_shutdown is not None:
                    await on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        body = await _read_body(receive, headers, request_timeout)
        client = scope.get("client")
        request = HTTPRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body if isinstance(body, bytes) else b"",
            remote_addr=client[0] if client else None,
        )
        if isinstance(body, Refusal):
            await _send(send, _closing(await api.refuse(request, body.status, body.message)))
            return
        response = await _unless_disconnected(api.handle(request), receive)
        if response is not None:
            await _send(send, response)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope type: {scope['type']}")
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await http(scope, receive, tracked)
        except Exception:
            _log.exception("internal error in the ASGI adapter")
            if started:
                raise  # too late for an answer: the server closes the connection
            await _send(send, _closing(error_response(500, ["internal error"])))

    return app
