"""WSGI adapter: ``make_wsgi_app(api)`` for gunicorn, mod_wsgi, waitress or wsgiref."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from aws_iam_backend.server._sync.api import VaultAPI
from aws_iam_backend.server.api import MAX_BODY
from aws_iam_backend.server.framing import LENGTH_MISMATCH, TOO_LARGE, Refusal, declared_length
from aws_iam_backend.server.messages import HTTPRequest


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


def _read_body(environ: WSGIEnvironment, headers: dict[str, str]) -> bytes | Refusal:
    """At most ``MAX_BODY`` bytes of body, or why it is refused."""
    declared = declared_length(headers)
    if isinstance(declared, Refusal):
        return declared
    if declared is not None:
        body = bytes(environ["wsgi.input"].read(declared))
        return body if len(body) == declared else LENGTH_MISMATCH
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        return b""  # no body; reading would block on servers like wsgiref
    body = bytes(environ["wsgi.input"].read(MAX_BODY + 1))  # chunked: read up to the cap
    return TOO_LARGE if len(body) > MAX_BODY else body


def _wsgi_text(value: str) -> str:
    """PEP 3333 hands URL parts over as latin-1; undo that to get UTF-8 text."""
    return value.encode("latin-1").decode("utf-8", "replace")


def make_wsgi_app(api: VaultAPI) -> WSGIApplication:
    """A WSGI callable serving ``api``. Bodies over 64 KiB are refused (413) unread;
    refusals answer Vault's JSON error and are audited (:meth:`VaultAPI.refuse`)."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers = _headers(environ)
        body = _read_body(environ, headers)
        request = HTTPRequest(
            method=str(environ["REQUEST_METHOD"]),
            path=_wsgi_text(str(environ.get("PATH_INFO", "")) or "/"),
            query=_wsgi_text(str(environ.get("QUERY_STRING", ""))),
            headers=headers,
            body=b"" if isinstance(body, Refusal) else body,
            remote_addr=environ.get("REMOTE_ADDR") or None,
        )
        if isinstance(body, Refusal):
            response = api.refuse(request, body.status, body.message)
        else:
            response = api.handle(request)
        status = f"{response.status} {HTTPStatus(response.status).phrase}"
        start_response(status, [*response.headers, ("Content-Length", str(len(response.body)))])
        return [response.body]

    return app
