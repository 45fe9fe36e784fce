"""WSGI adapter: ``make_wsgi_app(api)`` for gunicorn, mod_wsgi, waitress or wsgiref."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from .api import MAX_BODY, VaultAPI
from .messages import HTTPRequest, HTTPResponse
from .responses import error_response


def _headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def _read_body(environ: WSGIEnvironment, headers: dict[str, str]) -> bytes | HTTPResponse:
    """At most ``MAX_BODY`` bytes of body, or the error response to send instead."""
    declared = headers.get("content-length", "")
    if declared:
        if not declared.isdigit():
            return error_response(400, ["invalid Content-Length header"])
        if int(declared) > MAX_BODY:
            return error_response(413, ["request body too large"])
        return bytes(environ["wsgi.input"].read(int(declared)))
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        return b""  # no body; reading would block on servers like wsgiref
    body = bytes(environ["wsgi.input"].read(MAX_BODY + 1))  # chunked: read up to the cap
    return error_response(413, ["request body too large"]) if len(body) > MAX_BODY else body


def _wsgi_text(value: str) -> str:
    """PEP 3333 hands URL parts over as latin-1; undo that to get UTF-8 text."""
    return value.encode("latin-1").decode("utf-8", "replace")


def make_wsgi_app(api: VaultAPI) -> WSGIApplication:
    """A WSGI callable serving ``api``. Bodies over 64 KiB are refused (413) unread."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers = _headers(environ)
        body = _read_body(environ, headers)
        if isinstance(body, HTTPResponse):
            response = body
        else:
            response = api.handle(
                HTTPRequest(
                    method=str(environ["REQUEST_METHOD"]),
                    path=_wsgi_text(str(environ.get("PATH_INFO", "")) or "/"),
                    query=_wsgi_text(str(environ.get("QUERY_STRING", ""))),
                    headers=headers,
                    body=body,
                    remote_addr=environ.get("REMOTE_ADDR") or None,
                )
            )
        status = f"{response.status} {HTTPStatus(response.status).phrase}"
        start_response(status, [*response.headers, ("Content-Length", str(len(response.body)))])
        return [response.body]

    return app
