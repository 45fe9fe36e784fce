# Generated from ../_async/api.py by scripts/unasync.py: do not edit.
"""Vault's HTTP API for any number of AWS auth mounts: :class:`VaultAPI`.

The API has two drivers generated from one source: the async one, awaited by the ASGI app
and the Starlette and aiohttp integrations, and the sync one, which WSGI and Flask call.
Shared pieces are in :mod:`aws_iam_backend.server.api`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from aws_iam_backend.drivers._sync.backend import Backend
from aws_iam_backend.drivers._sync.claims import StorageReplayCache
from aws_iam_backend.drivers._sync.keys import stored_key
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer
from aws_iam_backend.drivers.audit import (
    FAILED_MESSAGE,
    HMAC_KEY_PATH,
    AuditEntry,
    AuditFailedError,
    AuditHasher,
    Auditor,
    AuditSink,
    describe_request,
)
from aws_iam_backend.drivers.metrics import NO_METRICS, Metrics
from aws_iam_backend.drivers.shapes import BackendSettings, Request
from aws_iam_backend.drivers.shapes import status as response_status
from aws_iam_backend.errors import (
    BackendError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
    UnsupportedOperationError,
)
from aws_iam_backend.io.clock import Clock, SystemClock
from aws_iam_backend.io.concurrency import Result
from aws_iam_backend.io.protocols import Storage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.cached import CachedStorage, uncached
from aws_iam_backend.io.storage._sync.metered import MeteredStorage
from aws_iam_backend.io.storage._sync.prefixed import PrefixedStorage
from aws_iam_backend.server._sync.authenticator import Authenticator
from aws_iam_backend.server._sync.mount_table import BackendFactory, MountTable
from aws_iam_backend.server._sync.token_endpoints import TokenEndpoints
from aws_iam_backend.server.api import (
    AUDITED,
    CLUSTER_KEY,
    MAX_BODY,
    NOTE,
    OPERATIONS,
    TOKEN_STORAGE_PREFIX,
    MarkingSink,
    NotingMetrics,
    RequestNote,
    bare_entry,
    cacheable,
    describe,
    is_open,
    list_operation,
    note_error,
    note_mount,
    only,
    package_version,
)
from aws_iam_backend.server.auth import request_token
from aws_iam_backend.server.client_ip import client_ip, parse_networks
from aws_iam_backend.server.logs import log_request
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.server.metrics import MetricsExposition
from aws_iam_backend.server.mounts import SharedCache
from aws_iam_backend.server.openapi import OPENAPI
from aws_iam_backend.server.responses import (
    REQUEST_ID,
    backend_error_response,
    envelope,
    envelope_document,
    error_response,
    json_response,
)
from aws_iam_backend.vault.fields import loads_strict
from aws_iam_backend.vault.gocompat import go_quote
from aws_iam_backend.vault.tokens import TokenRecord

_log = logging.getLogger("aws_iam_backend.server")
_Answer = tuple[HTTPResponse, str]  # the response and the error text for the audit record


class VaultAPI:
    """Vault's HTTP API for any number of AWS auth mounts over one storage.

    Storage layout: ``sys/mounts`` (mount table), ``sys/token/`` (tokens of every
    mount), ``auth/<mount uuid>/`` (each mount's roles and config). ``backend_factory``
    is called with ``storage=``, ``issuer=`` and ``settings=`` keywords for each
    mount (default :class:`Backend`). ``trusted_proxies`` are addresses or CIDRs whose
    ``X-Forwarded-For`` is believed. ``audit`` receives one record per request (every
    mount's backend is given it too); ``settings.audit_required`` says whether a failing
    sink fails the request.

    ``metrics`` (see :mod:`aws_iam_backend.drivers.metrics`) hears of every mount's
    logins, STS calls and refusals (each backend is given it, as ``metrics=``), of tokens,
    and of every call that reaches ``storage``; when it can render itself
    (:class:`~aws_iam_backend.server.metrics.MetricsExposition`, as
    :class:`~aws_iam_backend.server.metrics.PrometheusMetrics` does) ``GET
    /v1/sys/metrics?format=prometheus`` serves it, to the root token, or to anyone with
    ``unauthenticated_metrics_access``. Each request is logged in one line (see
    :mod:`aws_iam_backend.server.logs`).
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
        audit: AuditSink | None = None,
        cache: SharedCache | None = None,
        coherence_interval: float = 0.25,
        metrics: Metrics | None = None,
        unauthenticated_metrics_access: bool = False,
    ) -> None:
        self.storage = storage
        self.cache = cache
        self.metrics: Metrics = metrics if metrics is not None else NO_METRICS
        self._exposition = metrics if isinstance(metrics, MetricsExposition) else None
        self._open_metrics = unauthenticated_metrics_access
        self._clock = clock or SystemClock()
        self._trusted = parse_networks(trusted_proxies)
        metered = storage if metrics is None else MeteredStorage(storage, metrics)
        self._store = CachedStorage(metered, cacheable=cacheable, interval=coherence_interval)
        token_storage = PrefixedStorage(self._store, TOKEN_STORAGE_PREFIX)
        issuer = StoreTokenIssuer(token_storage, clock=self._clock, metrics=self.metrics)
        self.issuer = issuer
        self._auth = Authenticator(root_token, issuer)
        settings = settings or BackendSettings()
        self._hasher = AuditHasher()  # keyed by start(), shared with every mount's backend
        self.audit_sink = audit
        self._auditor: Auditor | None = None
        if audit is not None:
            audit = MarkingSink(audit)
            self._auditor = Auditor(
                audit, self._hasher, required=settings.audit_required, clock=self._clock
            )
        options: dict[str, object] = {"metrics": NotingMetrics(self.metrics)}
        if audit is not None:
            options.update(audit=audit, audit_hasher=self._hasher)
        self.mounts = MountTable(
            storage=self._store,
            issuer=issuer,
            settings=settings,
            backend_factory=backend_factory or Backend,
            backend_options=options,
            cache=cache,
            clock=self._clock,
        )
        self._tokens = TokenEndpoints(self._auth, self.mounts, self._clock)
        self._cluster_id = ""
        self._version = package_version()

    def start(self) -> None:
        """Read (or create) what the API keeps in storage: the cluster ID and, with an audit
        sink, the audit HMAC key. Done on the first request if not done before; a host
        that does it at startup finds a storage problem there."""
        if self._cluster_id:
            return
        if not self._hasher.keyed:
            self._hasher.set_key(stored_key(self.storage, HMAC_KEY_PATH))
        ops.create(self._store, CLUSTER_KEY, {"id": str(uuid.uuid4())})
        doc = ops.get(self._store, CLUSTER_KEY) or {}
        self._cluster_id = str(doc.get("id", ""))

    def lookup_token(
        self, token: str, *, remote_addr: str | None, forwarded_for: str | None = None
    ) -> TokenRecord:
        """The live login token ``token`` as seen from ``remote_addr`` (and ``X-Forwarded-For``
        per ``trusted_proxies``), spending one use of a limited-use token.

        :class:`PermissionDeniedError` if it is unknown, expired, used up, bound to other
        CIDRs, or the root token (which has no record); for framework integrations.
        """
        ip = client_ip(remote_addr, forwarded_for, self._trusted)
        record = (self._auth.caller(token, ip)).record
        if record is None:
            raise PermissionDeniedError()
        return record

    def handle(self, request: HTTPRequest) -> HTTPResponse:
        """Serve one request and write its one audit record (unless a mount's backend wrote
        it, or the path is ``sys/health``).

        Never raises: an unexpected exception anywhere, in serving or in describing the
        request for the audit trail, is logged and answered ``500 internal error`` (still
        audited when the sink works).
        """
        return self._guarded(request, self._serve)

    def refuse(self, request: HTTPRequest, status: int, message: str) -> HTTPResponse:
        """Vault's error envelope ``{"errors": [message]}`` with ``status`` for a request
        an adapter refused before :meth:`handle` (body over the cap, bad ``Content-Length``),
        audited like any other request. ``request.body`` is ignored. Never raises."""
        refused = HTTPRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            remote_addr=request.remote_addr,
        )

        def answer(_: HTTPRequest) -> tuple[HTTPResponse, str]:
            note_error("refused")
            return error_response(status, [message]), message

        return self._guarded(refused, answer)

    def _guarded(
        self, request: HTTPRequest, serve: Callable[[HTTPRequest], Result[_Answer]]
    ) -> HTTPResponse:
        started = time.perf_counter()
        note = RequestNote()
        request_id = str(uuid.uuid4())
        id_token = REQUEST_ID.set(request_id)
        audited = AUDITED.set(False)
        noted = NOTE.set(note)
        status = 0  # stays 0 if the handling is cancelled (the client went away)
        try:
            try:
                self.start()
                response, error = serve(request)
                response = self._audit(request, response, error)
            except Exception as exc:  # _serve and _audit catch all but a failed start()
                _log.exception("internal error serving %s", describe(request))
                note.error = type(exc).__name__
                response = error_response(500, ["internal error"])
            status = response.status
            return response
        finally:
            log_request(request, status, time.perf_counter() - started, request_id, note)
            NOTE.reset(noted)
            AUDITED.reset(audited)
            REQUEST_ID.reset(id_token)

    def _serve(self, request: HTTPRequest) -> tuple[HTTPResponse, str]:
        try:
            return self._dispatch(request), ""
        except BackendError as exc:
            note_error(type(exc).__name__)
            return backend_error_response(exc), exc.message
        except Exception as exc:
            _log.exception("internal error serving %s", describe(request))
            note_error(type(exc).__name__)
            return error_response(500, ["internal error"]), "internal error"

    def _audit(
        self, request: HTTPRequest, response: HTTPResponse, error: str
    ) -> HTTPResponse:
        """Write the request's record unless one was written (by a mount's backend) already;
        ``500 audit logging failed`` instead of ``response`` if the required record failed."""
        if self._auditor is None or AUDITED.get():
            return response
        path = request.path[len("/v1/") :] if request.path.startswith("/v1/") else request.path
        if path == "sys/health":
            return response
        try:
            entry = self._audit_entry(request, path)
        except Exception:
            _log.exception("cannot describe %s for the audit record", describe(request))
            entry = bare_entry(request, path)
        try:
            self._auditor.write(entry, status=response.status, error=error)
        except AuditFailedError:
            note_error(AuditFailedError.__name__)
            return error_response(500, [FAILED_MESSAGE])
        except Exception:  # building the record itself failed: as good as a failed sink
            _log.exception("audit record of %s failed", describe(request))
            if self._auditor.required:
                note_error(AuditFailedError.__name__)
                return error_response(500, [FAILED_MESSAGE])
        return response

    def _audit_entry(self, request: HTTPRequest, path: str) -> AuditEntry:
        operation = list_operation(
            OPERATIONS.get(request.method.upper(), request.method.lower()[:16]), request.query
        )
        try:
            ip = client_ip(
                request.remote_addr, request.headers.get("x-forwarded-for"), self._trusted
            )
        except InvalidRequestError:
            ip = request.remote_addr
        entry = AuditEntry(
            request_id=REQUEST_ID.get(),
            operation=operation,
            path=path,
            mount=self._audit_mount(path),
            remote_address=ip,
            client_token=request_token(request.headers),
        )
        try:
            data = loads_strict(request.body) if operation == "update" else {}
        except BackendError:
            data = {}
        describe_request(entry, path, data)
        return entry

    def _audit_mount(self, path: str) -> str:
        if path.startswith("auth/token/"):
            return "token/"
        if path.startswith("auth/"):
            note = NOTE.get()
            if note is not None and note.mount != "-":  # resolved while serving it
                return note.mount
            resolved = self.mounts.resolve(path[len("auth/") :])
            return resolved[0].settings.mount if resolved else ""
        return "sys/" if path.startswith("sys/") else ""

    def tidy(self) -> int:
        """Remove expired tokens and signature/nonce claims (by expiry index, in batches),
        then each mount's expired identity access list entries and deny-listed role tags
        (Vault's periodic tidy, with each mount's ``config/tidy/*`` settings).

        Safe to run from every process at once; the reference server runs it every
        minute off the request path. Returns how many entries went. A mount whose tidy
        fails is logged and skipped (the others still run); tokens and claims failing
        raise.
        """
        removed = self.issuer.tidy()
        replay = self.mounts.replay_cache
        if isinstance(replay, StorageReplayCache):
            removed += replay.tidy()
        for path, backend in (self.mounts.backends()).items():
            try:
                removed += backend.ec2_admin.tidy()
            except BackendError as exc:
                _log.warning("tidy of mount %s failed: %s", path, exc.message)
        return removed

    def audit_hash(self, value: str) -> str:
        """The HMAC this server's audit records show for ``value`` (``sys/audit-hash``)."""
        self.start()
        return self._hasher.hash(value)

    def _dispatch(self, request: HTTPRequest) -> HTTPResponse:
        operation = OPERATIONS.get(request.method.upper())
        if operation is None:
            raise UnsupportedOperationError()
        if len(request.body) > MAX_BODY:
            raise RequestTooLargeError("request body too large")
        if not request.path.startswith("/v1/"):
            raise NotFoundError("unsupported path")
        path = request.path[len("/v1/") :]
        operation = list_operation(operation, request.query)
        head = request.method.upper() == "HEAD"
        if path == "sys/health":
            return self._health(operation, head)
        if head:
            raise UnsupportedOperationError()
        if path == "sys/openapi":
            only(operation, "read")
            return json_response(200, OPENAPI)
        data = loads_strict(request.body) if operation == "update" else {}
        token = request_token(request.headers)
        ip = client_ip(request.remote_addr, request.headers.get("x-forwarded-for"), self._trusted)
        if path == "sys/audit-hash" or path.startswith("sys/audit-hash/"):
            only(operation, "update")
            self._auth.root(token, ip)
            value = data.get("input")
            if not isinstance(value, str):
                raise InvalidRequestError("missing input")
            hashed = {"hash": self.audit_hash(value)}
            return json_response(200, {**hashed, **envelope_document(data=hashed)})
        if path == "sys/metrics":
            only(operation, "read")
            if not self._open_metrics:
                self._auth.root(token, ip)
            return self._metrics_response(request)
        if path == "sys/auth":
            only(operation, "read")
            self._auth.root(token, ip)
            listing = self.mounts.describe()
            return json_response(200, {**listing, **envelope_document(data=listing)})
        if path.startswith("sys/auth/"):
            return self._sys_auth(operation, path[len("sys/auth/") :], token, data, ip)
        if path.startswith("auth/token/"):
            note_mount("token/")
            return self._tokens.handle(path[len("auth/token/") :], operation, token, data, ip)
        if path.startswith("auth/"):
            return self._auth_method(operation, path[len("auth/") :], token, data, ip)
        raise NotFoundError(f'no handler for route "{path}". route entry not found.')

    def _metrics_response(self, request: HTTPRequest) -> HTTPResponse:
        """``sys/metrics`` as Vault answers it: ``format=prometheus`` (or an OpenMetrics
        ``Accept`` header) gives the exposition text; other formats are refused (Vault's
        JSON summary, the default, is not served)."""
        accept = request.headers.get("accept", "")
        formats = parse_qs(request.query).get("format") or [""]
        wanted = formats[0]
        if not wanted and "application/openmetrics-text" in accept:
            wanted = "prometheus"
        if wanted != "prometheus":
            raise InvalidRequestError(
                f"metric response format {go_quote(wanted[:32])} unknown: use format=prometheus"
            )
        if self._exposition is None:
            raise InvalidRequestError("prometheus is not enabled")
        body, content_type = self._exposition.exposition(accept)
        headers = (("Content-Type", content_type), ("Cache-Control", "no-store"))
        return HTTPResponse(status=200, headers=headers, body=body)

    def _health(self, operation: str, head: bool) -> HTTPResponse:
        only(operation, "read")
        try:
            # A load balancer takes this server out of service if this read fails.
            uncached(self._store).read(CLUSTER_KEY)
            if self.cache is not None:
                self.cache.ping()
        except BackendError as exc:
            _log.warning("health check failed: %s", exc.message)
            failed = error_response(503, [exc.message])
            return HTTPResponse(status=503, headers=failed.headers) if head else failed
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
        self,
        operation: str,
        mount: str,
        token: str | None,
        data: dict[str, Any],
        ip: str | None,
    ) -> HTTPResponse:
        if mount.endswith("/tune") and mount != "/tune":  # sys/auth/<path>/tune, as Vault routes
            if operation not in ("read", "update"):
                raise UnsupportedOperationError()
            self._auth.root(token, ip)
            if operation == "read":
                tuning = self.mounts.tuning(mount[: -len("/tune")])
                return json_response(200, {**tuning, **envelope_document(data=tuning)})
            warnings = self.mounts.tune(mount[: -len("/tune")], data)
            return envelope(warnings=warnings)
        if operation not in ("update", "delete"):
            raise UnsupportedOperationError()
        self._auth.root(token, ip)
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
        note_mount(backend.settings.mount)
        if not is_open(relative.strip("/"), operation):
            self._auth.root(token, ip)
        if self._auditor is not None and backend.audit is not self._auditor.sink:
            raise InternalError("backend_factory must pass audit= on to Backend")
        response = backend.handle_request(
            Request(
                operation,
                relative,
                data,
                client_token=token,
                remote_addr=ip,
                request_id=REQUEST_ID.get(),
            )
        )
        if response_status(operation, response) == 404:  # empty list, or read of nothing
            raise NotFoundError("")
        return envelope(data=response.data, auth=response.auth, warnings=response.warnings)


__all__ = ["VaultAPI"]
