"""What the Vault HTTP API's two drivers share: constants, the method-to-operation map, the
open paths of an auth mount and the audit helpers (pure; the API itself is
:class:`~aws_iam_backend.server.AsyncVaultAPI` and its generated twin ``VaultAPI``)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from contextvars import ContextVar
from importlib import metadata
from urllib.parse import parse_qs

from aws_iam_backend.drivers.audit import AuditEntry, AuditSink
from aws_iam_backend.drivers.metrics import Metrics
from aws_iam_backend.errors import UnsupportedOperationError
from aws_iam_backend.server.auth import request_token
from aws_iam_backend.server.messages import HTTPRequest
from aws_iam_backend.server.responses import REQUEST_ID

MAX_BODY = 64 * 1024
TOKEN_STORAGE_PREFIX = "sys/token/"
CLUSTER_KEY = "sys/cluster"
# Documents read on every request and written by administrators: cached per process.
_CACHED = re.compile(r"sys/mounts|sys/cluster|auth/[^/]+/(role|config)/.+")


def cacheable(key: str) -> bool:
    return _CACHED.fullmatch(key) is not None


OPERATIONS = {
    "GET": "read",
    "HEAD": "read",
    "POST": "update",
    "PUT": "update",
    "DELETE": "delete",
    "LIST": "list",
}
TRUE_VALUES = frozenset({"1", "t", "T", "true", "True", "TRUE"})


def list_operation(operation: str, query: str) -> str:
    """``list`` for a read whose query asks for one (``?list=true``), else ``operation``."""
    if operation == "read" and TRUE_VALUES & set(parse_qs(query).get("list", [])):
        return "list"
    return operation


# True once this request's audit record was written (or tried): set by the sink every mount's
# backend is given, so a request a backend audited is not audited twice, nor one it did not
# audit (it raised first) left out.
AUDITED: ContextVar[bool] = ContextVar("aws_iam_backend_audited", default=False)


class RequestNote:
    """What the request log line says beyond the request itself, filled in while serving:
    the auth mount, the login's role (bounded: ``-`` unless it exists) and the error
    class. Never a secret, never the client's text."""

    __slots__ = ("error", "mount", "role")

    def __init__(self) -> None:
        self.mount = "-"
        self.role = "-"
        self.error = "-"


# The note of the request being served (set by the API around each request).
NOTE: ContextVar[RequestNote | None] = ContextVar("aws_iam_backend_request_note", default=None)


def note_mount(mount: str) -> None:
    """Note the mount serving the current request."""
    note = NOTE.get()
    if note is not None:
        note.mount = mount


def note_error(name: str) -> None:
    """Note the error class the current request ended with."""
    note = NOTE.get()
    if note is not None:
        note.error = name


class NotingMetrics:
    """``inner``, and each login's mount and role noted for the request log line (what
    every mount's backend is given)."""

    def __init__(self, inner: Metrics) -> None:
        self.inner = inner

    def login(self, mount: str, role: str, outcome: str) -> None:
        note = NOTE.get()
        if note is not None:
            note.mount = mount
            note.role = role
        self.inner.login(mount, role, outcome)

    def sts_call(self, seconds: float, outcome: str) -> None:
        self.inner.sts_call(seconds, outcome)

    def outbound(self, delta: int) -> None:
        self.inner.outbound(delta)

    def refused(self, kind: str) -> None:
        self.inner.refused(kind)

    def token(self, event: str) -> None:
        self.inner.token(event)

    def storage(self, op: str, seconds: float, error: str) -> None:
        self.inner.storage(op, seconds, error)


def package_version() -> str:
    try:
        return metadata.version("aws_iam_backend")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class MarkingSink:
    """``sink`` that notes in ``AUDITED`` that the current request's record was tried."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink

    def write(self, record: Mapping[str, object]) -> None:
        AUDITED.set(True)
        self.sink.write(record)


def bare_entry(request: HTTPRequest, path: str) -> AuditEntry:
    """What is surely known of a request whose full description failed."""
    entry = AuditEntry(
        request_id=REQUEST_ID.get(),
        operation=OPERATIONS.get(request.method.upper(), request.method.lower()[:16]),
        path=path,
        remote_address=request.remote_addr,
    )
    with contextlib.suppress(Exception):
        entry.client_token = request_token(request.headers)
    return entry


def describe(request: HTTPRequest) -> str:
    """``METHOD /path`` for a log line, cut short (both are the client's choice)."""
    return f"{request.method[:16]} {request.path[:256]}"


def is_open(path: str, operation: str) -> bool:
    """Unauthenticated paths of an auth mount: login, and the server challenge."""
    if path == "login":
        return operation == "update"
    return path == "challenge" and operation in ("update", "read")


def only(operation: str, allowed: str) -> None:
    if operation != allowed:
        raise UnsupportedOperationError()
