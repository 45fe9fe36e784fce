""":class:`VaultAPI`: Vault's HTTP API over the AWS auth backends, framework-free.

``handle(HTTPRequest) -> HTTPResponse`` serves ``/v1/sys/health``, ``/v1/sys/auth``,
``/v1/sys/auth/<path>``, ``/v1/sys/openapi``, ``/v1/auth/token/*`` and everything under
``/v1/auth/<mount>/``. Login is open; a login token may use the token endpoints on
itself; everything else needs the root token.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from importlib import metadata
from typing import Any
from urllib.parse import parse_qs

from ..backend import Backend, BackendSettings, Request
from ..clock import Clock, SystemClock
from ..errors import (
    BackendError,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
    UnsupportedOperationError,
)
from ..fields import loads_strict
from ..interfaces import Storage
from ..storage.prefixed import PrefixedStorage
from ..tokens import StoreTokenIssuer, TokenRecord
from .auth import Authenticator, request_token
from .client_ip import client_ip, parse_networks
from .messages import HTTPRequest, HTTPResponse
from .mounts import BackendFactory, MountTable
from .openapi import OPENAPI
from .responses import (
    backend_error_response,
    envelope,
    envelope_document,
    error_response,
    json_response,
)
from .token_endpoints import TokenEndpoints

MAX_BODY = 64 * 1024
TOKEN_STORAGE_PREFIX = "sys/token/"
CLUSTER_KEY = "sys/cluster"

_OPERATIONS = {
    "GET": "read",
    "HEAD": "read",
    "POST": "update",
    "PUT": "update",
    "DELETE": "delete",
    "LIST": "list",
}
_TRUE = frozenset({"1", "t", "T", "true", "True", "TRUE"})
_log = logging.getLogger("aws_iam_backend.server")


def _version() -> str:
    try:
        return metadata.version("aws_iam_backend")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class VaultAPI:
    """Vault's HTTP API for any number of AWS auth mounts over one storage.

    Storage layout: ``sys/mounts`` (mount table), ``sys/token/`` (tokens of every
    mount), ``auth/<mount uuid>/`` (each mount's roles and config). ``backend_factory``
    is called with ``storage=``, ``issuer=`` and ``settings=`` keywords for each
    mount (default :class:`Backend`). ``trusted_proxies`` are addresses or CIDRs whose
    ``X-Forwarded-For`` is believed.
    """

    def __init__(
        self,
        *,
        storage: Storage,
        root_token: str,
        settings: BackendSettings | None = None,
        trusted_proxies: Sequence[str] = (),
        backend_factory: BackendFactory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.storage = storage
        self._clock = clock or SystemClock()
        self._trusted = parse_networks(trusted_proxies)
        token_storage = PrefixedStorage(storage, TOKEN_STORAGE_PREFIX)
        issuer = StoreTokenIssuer(token_storage, clock=self._clock)
        self._auth = Authenticator(root_token, issuer)
        self.mounts = MountTable(
            storage=storage,
            issuer=issuer,
            token_storage=token_storage,
            settings=settings or BackendSettings(),
            backend_factory=backend_factory or Backend,
        )
        self._tokens = TokenEndpoints(self._auth, self.mounts, self._clock)
        self._cluster_id = self._load_cluster_id()
        self._version = _version()

    def _load_cluster_id(self) -> str:
        doc = self.storage.get(CLUSTER_KEY)
        if doc is None:
            doc = {"id": str(uuid.uuid4())}
            self.storage.put(CLUSTER_KEY, doc)
        return str(doc["id"])

    def lookup_token(
        self, token: str, *, remote_addr: str | None, forwarded_for: str | None = None
    ) -> TokenRecord:
        """The live login token ``token`` as seen from ``remote_addr`` (and ``X-Forwarded-For``
        per ``trusted_proxies``), spending one use of a limited-use token.

        :class:`PermissionDeniedError` if it is unknown, expired, used up, bound to other
        CIDRs, or the root token (which has no record); for framework integrations.
        """
        ip = client_ip(remote_addr, forwarded_for, self._trusted)
        record = self._auth.caller(token, ip).record
        if record is None:
            raise PermissionDeniedError()
        return record

    def handle(self, request: HTTPRequest) -> HTTPResponse:
        """Serve one request; never raises."""
        try:
            return self._dispatch(request)
        except BackendError as exc:
            return backend_error_response(exc)
        except Exception:
            _log.exception("internal error serving %s %s", request.method, request.path)
            return error_response(500, ["internal error"])

    def _dispatch(self, request: HTTPRequest) -> HTTPResponse:
        operation = _OPERATIONS.get(request.method.upper())
        if operation is None:
            raise UnsupportedOperationError()
        if len(request.body) > MAX_BODY:
            raise RequestTooLargeError("request body too large")
        if not request.path.startswith("/v1/"):
            raise NotFoundError("unsupported path")
        path = request.path[len("/v1/") :]
        if operation == "read" and _TRUE & set(parse_qs(request.query).get("list", [])):
            operation = "list"
        head = request.method.upper() == "HEAD"
        if path == "sys/health":
            return self._health(operation, head)
        if head:
            raise UnsupportedOperationError()
        if path == "sys/openapi":
            _only(operation, "read")
            return json_response(200, OPENAPI)
        data = loads_strict(request.body) if operation == "update" else {}
        token = request_token(request.headers)
        if path == "sys/auth":
            _only(operation, "read")
            self._auth.root(token)
            listing = self.mounts.describe()
            return json_response(200, {**listing, **envelope_document(data=listing)})
        if path.startswith("sys/auth/"):
            return self._sys_auth(operation, path[len("sys/auth/") :], token, data)
        ip = client_ip(request.remote_addr, request.headers.get("x-forwarded-for"), self._trusted)
        if path.startswith("auth/token/"):
            return self._tokens.handle(path[len("auth/token/") :], operation, token, data, ip)
        if path.startswith("auth/"):
            return self._auth_method(operation, path[len("auth/") :], token, data, ip)
        raise NotFoundError(f'no handler for route "{path}". route entry not found.')

    def _health(self, operation: str, head: bool) -> HTTPResponse:
        _only(operation, "read")
        response = json_response(
            200,
            {
                "initialized": True,
                "sealed": False,
                "standby": False,
                "performance_standby": False,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": int(time.time()),
                "version": self._version,
                "enterprise": False,
                "cluster_name": "aws-iam-backend",
                "cluster_id": self._cluster_id,
            },
        )
        return HTTPResponse(status=200, headers=response.headers) if head else response

    def _sys_auth(
        self, operation: str, mount: str, token: str | None, data: dict[str, Any]
    ) -> HTTPResponse:
        if operation not in ("update", "delete"):
            raise UnsupportedOperationError()
        self._auth.root(token)
        if operation == "update":
            self.mounts.enable(mount, data)
        else:
            self.mounts.disable(mount)
        return envelope()

    def _auth_method(
        self,
        operation: str,
        rest: str,
        token: str | None,
        data: dict[str, Any],
        ip: str | None,
    ) -> HTTPResponse:
        resolved = self.mounts.resolve(rest)
        if resolved is None:
            raise NotFoundError(f'no handler for route "auth/{rest}". route entry not found.')
        backend, relative = resolved
        if relative.strip("/") != "login" or operation != "update":
            self._auth.root(token)
        response = backend.handle_request(
            Request(operation, relative, data, client_token=token, remote_addr=ip)
        )
        if operation == "list" and not (response.data or {}).get("keys"):
            raise NotFoundError("")
        return envelope(data=response.data, auth=response.auth, warnings=response.warnings)


def _only(operation: str, allowed: str) -> None:
    if operation != allowed:
        raise UnsupportedOperationError()
