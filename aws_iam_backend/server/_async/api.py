"""Vault's HTTP API for any number of AWS auth mounts: :class:`AsyncVaultAPI`.

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

from aws_iam_backend.drivers._async.backend import AsyncBackend
from aws_iam_backend.drivers._async.claims import AsyncStorageReplayCache
from aws_iam_backend.drivers._async.keys import stored_key
from aws_iam_backend.drivers._async.tokens import AsyncStoreTokenIssuer
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
from aws_iam_backend.io.concurrency import AsyncResult
from aws_iam_backend.io.protocols import AsyncStorage
from aws_iam_backend.io.storage._async import ops
from aws_iam_backend.io.storage._async.cached import AsyncCachedStorage, uncached
from aws_iam_backend.io.storage._async.metered import AsyncMeteredStorage
from aws_iam_backend.io.storage._async.prefixed import AsyncPrefixedStorage
from aws_iam_backend.server._async.authenticator import AsyncAuthenticator
from aws_iam_backend.server._async.mount_table import AsyncBackendFactory, AsyncMountTable
from aws_iam_backend.server._async.token_endpoints import AsyncTokenEndpoints
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
from aws_iam_backend.server.mounts import AsyncSharedCache
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


class AsyncVaultAPI:
    """Vault's HTTP API for any number of AWS auth mounts over one storage.

    Storage layout: ``sys/mounts`` (mount table), ``sys/token/`` (tokens of every
    mount), ``auth/<mount uuid>/`` (each mount's roles and config). ``backend_factory``
    is called with ``storage=``, ``issuer=`` and ``settings=`` keywords for each
    mount (default :class:`AsyncBackend`). ``trusted_proxies`` are addresses or CIDRs whose
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
        storage: AsyncStorage,
        root_token: str,
        settings: BackendSettings | None = None,
        trusted_proxies: Sequence[str] = (),
        backend_factory: AsyncBackendFactory | None = None,
        clock: Clock | None = None,
        audit: AuditSink | None = None,
        cache: AsyncSharedCache | None = None,
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
        metered = storage if metrics is None else AsyncMeteredStorage(storage, metrics)
        self._store = AsyncCachedStorage(metered, cacheable=cacheable, interval=coherence_interval)
        token_storage = AsyncPrefixedStorage(self._store, TOKEN_STORAGE_PREFIX)
        issuer = AsyncStoreTokenIssuer(token_storage, clock=self._clock, metrics=self.metrics)
        self.issuer = issuer
        self._auth = AsyncAuthenticator(root_token, issuer)
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
        self.mounts = AsyncMountTable(
            storage=self._store,
            issuer=issuer,
            settings=settings,
            backend_factory=backend_factory or AsyncBackend,
            backend_options=options,
            cache=cache,
            clock=self._clock,
        )
        self._tokens = AsyncTokenEndpoints(self._auth, self.mounts, self._clock)
        self._cluster_id = ""
        self._version = package_version()

    async def start(self) -> None:
        """Read (or create) what the API keeps in storage: the cluster ID and, with an audit
        sink, the audit HMAC key. Done on the first request if not done before; a host
        that does it at startup finds a storage problem there."""
        if self._cluster_id:
            return
        if not self._hasher.keyed:
            self._hasher.set_key(await stored_key(self.storage, HMAC_KEY_PATH))
        await ops.create(self._store, CLUSTER_KEY, {"id": str(uuid.uuid4())})
        doc = await ops.get(self._store, CLUSTER_KEY) or {}
        self._cluster_id = str(doc.get("id", ""))

    async def lookup_token(
        self, token: str, *, remote_addr: str | None, forwarded_for: str | None = None
    ) -> TokenRecord:
        """The live login token ``token`` as seen from ``remote_addr`` (and ``X-Forwarded-For``
        per ``trusted_proxies``), spending one use of a limited-use token.

        :class:`PermissionDeniedError` if it is unknown, expired, used up, bound to other
        CIDRs, or the root token (which has no record); for framework integrations.
        """
        ip = client_ip(remote_addr, forwarded_for, self._trusted)
        record = (await self._auth.caller(token, ip)).record
        if record is None:
            raise PermissionDeniedError()
        return record

    async def handle(self, request: HTTPRequest) -> HTTPResponse:
        """Serve one request and write its one audit record (unless a mount's backend wrote
        it, or the path is ``sys/health``).

        Never raises: an unexpected exception anywhere, in serving or in describing the
        request for the audit trail, is logged and answered ``500 internal error`` (still
        audited when the sink works).
        """
        return await self._guarded(request, self._serve)

    async def refuse(self, request: HTTPRequest, status: int, message: str) -> HTTPResponse:
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

        async def answer(_: HTTPRequest) -> tuple[HTTPResponse, str]:
            note_error("refused")
            return error_response(status, [message]), message

        return await self._guarded(refused, answer)

    async def _guarded(
        self, request: HTTPRequest, serve: Callable[[HTTPRequest], AsyncResult[_Answer]]
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
                await self.start()
                response, error = await serve(request)
                response = await self._audit(request, response, error)
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

    async def _serve(self, request: HTTPRequest) -> tuple[HTTPResponse, str]:
        try:
            return await self._dispatch(request), ""
        except BackendError as exc:
            note_error(type(exc).__name__)
            return backend_error_response(exc), exc.message
        except Exception as exc:
            _log.exception("internal error serving %s", describe(request))
            note_error(type(exc).__name__)
            return error_response(500, ["internal error"]), "internal error"

    async def _audit(
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
            entry = await self._audit_entry(request, path)
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

    async def _audit_entry(self, request: HTTPRequest, path: str) -> AuditEntry:
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
            mount=await self._audit_mount(path),
            remote_address=ip,
            client_token=request_token(request.headers),
        )
        try:
            data = loads_strict(request.body) if operation == "update" else {}
        except BackendError:
            data = {}
        describe_request(entry, path, data)
        return entry

    async def _audit_mount(self, path: str) -> str:
        if path.startswith("auth/token/"):
            return "token/"
        if path.startswith("auth/"):
            note = NOTE.get()
            if note is not None and note.mount != "-":  # resolved while serving it
                return note.mount
            resolved = await self.mounts.resolve(path[len("auth/") :])
            return resolved[0].settings.mount if resolved else ""
        return "sys/" if path.startswith("sys/") else ""

    async def tidy(self) -> int:
        """Remove expired tokens and signature/nonce claims (by expiry index, in batches),
        then each mount's expired identity access list entries and deny-listed role tags
        (Vault's periodic tidy, with each mount's ``config/tidy/*`` settings).

        Safe to run from every process at once; the reference server runs it every
        minute off the request path. Returns how many entries went. A mount whose tidy
        fails is logged and skipped (the others still run); tokens and claims failing
        raise.
        """
        removed = await self.issuer.tidy()
        replay = self.mounts.replay_cache
        if isinstance(replay, AsyncStorageReplayCache):
            removed += await replay.tidy()
        for path, backend in (await self.mounts.backends()).items():
            try:
                removed += await backend.ec2_admin.tidy()
            except BackendError as exc:
                _log.warning("tidy of mount %s failed: %s", path, exc.message)
        return removed

    async def audit_hash(self, value: str) -> str:
        """The HMAC this server's audit records show for ``value`` (``sys/audit-hash``)."""
        await self.start()
        return self._hasher.hash(value)

    async def _dispatch(self, request: HTTPRequest) -> HTTPResponse:
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
            return await self._health(operation, head)
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
            await self._auth.root(token, ip)
            value = data.get("input")
            if not isinstance(value, str):
                raise InvalidRequestError("missing input")
            hashed = {"hash": await self.audit_hash(value)}
            return json_response(200, {**hashed, **envelope_document(data=hashed)})
        if path == "sys/metrics":
            only(operation, "read")
            if not self._open_metrics:
                await self._auth.root(token, ip)
            return self._metrics_response(request)
        if path == "sys/auth":
            only(operation, "read")
            await self._auth.root(token, ip)
            listing = await self.mounts.describe()
            return json_response(200, {**listing, **envelope_document(data=listing)})
        if path.startswith("sys/auth/"):
            return await self._sys_auth(operation, path[len("sys/auth/") :], token, data, ip)
        if path.startswith("auth/token/"):
            note_mount("token/")
            return await self._tokens.handle(path[len("auth/token/") :], operation, token, data, ip)
        if path.startswith("auth/"):
            return await self._auth_method(operation, path[len("auth/") :], token, data, ip)
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

    async def _health(self, operation: str, head: bool) -> HTTPResponse:
        only(operation, "read")
        try:
            # A load balancer takes this server out of service if this read fails.
            await uncached(self._store).read(CLUSTER_KEY)
            if self.cache is not None:
                await self.cache.ping()
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

    async def _sys_auth(
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
            await self._auth.root(token, ip)
            if operation == "read":
                tuning = await self.mounts.tuning(mount[: -len("/tune")])
                return json_response(200, {**tuning, **envelope_document(data=tuning)})
            warnings = await self.mounts.tune(mount[: -len("/tune")], data)
            return envelope(warnings=warnings)
        if operation not in ("update", "delete"):
            raise UnsupportedOperationError()
        await self._auth.root(token, ip)
        if operation == "update":
            await self.mounts.enable(mount, data)
        else:
            await self.mounts.disable(mount)
        return envelope()

    async def _auth_method(
        self,
        operation: str,
        rest: str,
        token: str | None,
        data: dict[str, Any],
        ip: str | None,
    ) -> HTTPResponse:
        resolved = await self.mounts.resolve(rest)
        if resolved is None:
            raise NotFoundError(f'no handler for route "auth/{rest}". route entry not found.')
        backend, relative = resolved
        note_mount(backend.settings.mount)
        if not is_open(relative.strip("/"), operation):
            await self._auth.root(token, ip)
        if self._auditor is not None and backend.audit is not self._auditor.sink:
            raise InternalError("backend_factory must pass audit= on to Backend")
        response = await backend.handle_request(
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


__all__ = ["AsyncVaultAPI"]
