"""Flask: mount Vault's HTTP API in an app and protect views with login tokens.

::

    auth = AwsIamAuth(app, api=VaultAPI(storage=..., root_token=...))
    # POST /vault/v1/auth/aws/login now logs in; every other Vault endpoint is there too.

    @app.get("/deploy")
    @auth.require_token(policies=["deploy"])
    def deploy() -> dict[str, str]:
        return {"caller": current_identity().display_name}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

import flask
from werkzeug.exceptions import RequestEntityTooLarge

from aws_iam_backend.errors import BackendError, RequestTooLargeError
from aws_iam_backend.integrations import TokenIdentity, authorize, required_policies
from aws_iam_backend.server._sync.api import VaultAPI
from aws_iam_backend.server.api import MAX_BODY
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.server.responses import backend_error_response

EXTENSION_KEY = "aws_iam_auth"
IDENTITY_ATTR = "aws_iam_identity"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "LIST")

P = ParamSpec("P")
R = TypeVar("R")


def _headers() -> dict[str, str]:
    return {name.lower(): value for name, value in flask.request.headers.items()}


def _body() -> bytes:
    """The request body: 413 past ``MAX_BODY``, never reading more than one byte beyond it.

    It reads ``request.stream``, not ``get_data()``, which is unbounded when the server
    terminates the input (chunked bodies).
    """
    request = flask.request
    if (request.content_length or 0) > MAX_BODY:
        raise RequestTooLargeError("request body too large")
    try:
        body = request.stream.read(MAX_BODY + 1)
    except RequestEntityTooLarge:  # the app's own MAX_CONTENT_LENGTH is smaller
        raise RequestTooLargeError("request body too large") from None
    if len(body) > MAX_BODY:
        raise RequestTooLargeError("request body too large")
    return body


def to_flask(response: HTTPResponse) -> flask.Response:
    """``response`` as a Flask response, adding no Content-Type of its own."""
    result = flask.Response(response.body, status=response.status, headers=list(response.headers))
    if not any(name.lower() == "content-type" for name, _ in response.headers):
        del result.headers["Content-Type"]
    return result


def current_identity() -> TokenIdentity:
    """The caller of the current :meth:`AwsIamAuth.require_token` view."""
    identity = flask.g.get(IDENTITY_ATTR)
    if not isinstance(identity, TokenIdentity):
        raise RuntimeError("no token identity: the view is not wrapped by require_token")
    return identity


class AwsIamAuth:
    """Flask extension serving ``api`` under ``url_prefix`` (``POST /vault/v1/auth/aws/login``).

    Every Vault method is routed (``LIST`` and ``?list=true`` included); bodies over
    64 KiB get 413. :meth:`require_token` protects your own views.
    """

    def __init__(
        self, app: flask.Flask | None = None, *, api: VaultAPI, url_prefix: str = "/vault"
    ) -> None:
        self.api = api
        prefix = url_prefix.strip("/")
        self.url_prefix = f"/{prefix}" if prefix else ""
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Route ``<url_prefix>/<path>`` of ``app`` to the API."""
        app.add_url_rule(
            f"{self.url_prefix}/<path:path>",
            endpoint=EXTENSION_KEY,
            view_func=self._serve,
            methods=METHODS,
            provide_automatic_options=False,
        )
        app.extensions[EXTENSION_KEY] = self

    def _serve(self, path: str) -> flask.Response:
        request = flask.request
        try:
            body = _body()
        except BackendError as exc:
            return to_flask(backend_error_response(exc))
        response = self.api.handle(
            HTTPRequest(
                method=request.method,
                path="/" + path,
                query=request.query_string.decode("utf-8", "replace"),
                headers=_headers(),
                body=body,
                remote_addr=request.remote_addr,
            )
        )
        return to_flask(response)

    def require_token(
        self, policies: Iterable[str] = ()
    ) -> Callable[[Callable[P, R]], Callable[P, R | flask.Response]]:
        """Decorator: run the view only for a login token holding every one of ``policies``.

        Otherwise answer 403 ``{"errors": ["permission denied"]}``. The caller's
        :class:`TokenIdentity` is ``flask.g.aws_iam_identity`` (see :func:`current_identity`).
        """
        required = required_policies(policies)

        def decorator(view: Callable[P, R]) -> Callable[P, R | flask.Response]:
            @functools.wraps(view)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | flask.Response:
                try:
                    identity = authorize(self.api, _headers(), flask.request.remote_addr, required)
                except BackendError as exc:
                    return to_flask(backend_error_response(exc))
                setattr(flask.g, IDENTITY_ATTR, identity)
                return view(*args, **kwargs)

            return wrapper

        return decorator


__all__ = ["AwsIamAuth", "current_identity", "to_flask"]
