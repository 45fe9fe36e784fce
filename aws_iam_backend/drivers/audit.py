"""Audit trail: one JSON record per request, secrets replaced by keyed HMACs.

- :class:`AuditSink`: where records go (:class:`JsonLinesAuditSink`, :class:`MemoryAuditSink`).
- :class:`AuditHasher`: ``hmac-sha256:<hex>`` of a secret, like Vault's audit devices; its
  key lives in storage at ``sys/audit-hmac-key`` so hashes correlate across restarts
  (``audit_hasher(storage)`` in the drivers reads or creates it).
- :class:`Auditor`: builds and writes records; a failing sink raises
  :class:`AuditFailedError` (500) unless ``required`` is off.

Records never hold a secret in clear: the client token, an issued token, ``secret_key``,
SigV4 signatures and session tokens appear only as HMACs; request bodies are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from aws_iam_backend.errors import InternalError
from aws_iam_backend.io.clock import Clock, SystemClock
from aws_iam_backend.login.headers import decode_headers
from aws_iam_backend.login.messages import CallerIdentity
from aws_iam_backend.vault.gocompat import QueryError, parse_query
from aws_iam_backend.vault.tokens import rfc3339

HMAC_KEY_PATH = "sys/audit-hmac-key"
HMAC_PREFIX = "hmac-sha256:"
FAILED_MESSAGE = "audit logging failed"
SECRET_FIELDS = ("secret_key", "token", "input")  # hashed when a request writes them
_MAX_ECHO = 256  # longest client-chosen string copied into a record
_log = logging.getLogger(__name__)
_SIGNATURE = re.compile(r"Signature=([^,\s]+)")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]*)/[^/,\s]*/([^/,\s]*)/")


class AuditSink(Protocol):
    """Receives one finished record per request. Raise on failure; never drop silently."""

    def write(self, record: Mapping[str, object]) -> None: ...


class MemoryAuditSink:
    """Keeps records in ``records`` (tests and embedding)."""

    def __init__(self) -> None:
        self.records: list[dict[str, object]] = []
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, object]) -> None:
        with self._lock:
            self.records.append(dict(record))


class JsonLinesAuditSink:
    """Appends one JSON object per line to ``path`` (created ``0600``), flushed per record;
    ``fsync`` also syncs each record to disk. Thread-safe."""

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._fsync = fsync
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, object]) -> None:
        line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file; later writes raise."""
        with self._lock:
            self._file.close()


class AuditHasher:
    """HMAC-SHA256 of secrets with a server key (at least 32 bytes).

    Made without a key, it is keyed later by :meth:`set_key` (a server shares one hasher
    with every mount before it has read the key from storage); hashing before that is an
    :class:`~aws_iam_backend.errors.InternalError`.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key: bytes | None = None
        if key is not None:
            self.set_key(key)

    def set_key(self, key: bytes) -> None:
        """Key the hasher."""
        if len(key) < 32:
            raise ValueError("the audit HMAC key must be at least 32 bytes")
        self._key = key

    @property
    def keyed(self) -> bool:
        """Whether :meth:`set_key` was called (or a key given)."""
        return self._key is not None

    def hash(self, value: str) -> str:
        """``hmac-sha256:<hex>`` of ``value``."""
        if self._key is None:
            raise InternalError("audit HMAC key not loaded")
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return HMAC_PREFIX + digest.hexdigest()


class AuditFailedError(InternalError):
    """The audit record could not be written, so the request fails (HTTP 500)."""

    def __init__(self) -> None:
        super().__init__(FAILED_MESSAGE)


@attrs.define
class AuditEntry:
    """What is known about a request before it is served. ``secrets`` are hashed on write."""

    request_id: str
    operation: str
    path: str  # the full Vault path: ``auth/aws/login``
    mount: str = ""
    remote_address: str | None = None
    client_token: str | None = attrs.field(default=None, repr=False)
    role: str | None = None
    details: dict[str, object] = attrs.field(factory=dict)
    secrets: dict[str, str] = attrs.field(factory=dict, repr=False)


class Auditor:
    """Builds records and writes them to ``sink``; a sink error raises
    :class:`AuditFailedError` when ``required`` (else it is logged and the request served)."""

    def __init__(
        self,
        sink: AuditSink,
        hasher: AuditHasher,
        *,
        required: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.sink = sink
        self.hasher = hasher
        self.required = required
        self._clock = clock or SystemClock()

    def write(
        self,
        entry: AuditEntry,
        *,
        status: int,
        error: str = "",
        auth: Mapping[str, Any] | None = None,
        principal: CallerIdentity | None = None,
    ) -> None:
        """Write the one record of ``entry``'s request, with its outcome."""
        record = self.record(entry, status=status, error=error, auth=auth, principal=principal)
        try:
            self.sink.write(record)
        except Exception as exc:
            _log.error("audit sink failed: %s", type(exc).__name__)
            if self.required:
                raise AuditFailedError() from None

    def record(
        self,
        entry: AuditEntry,
        *,
        status: int,
        error: str = "",
        auth: Mapping[str, Any] | None = None,
        principal: CallerIdentity | None = None,
    ) -> dict[str, object]:
        """The record as written (secrets hashed)."""
        hashed = self.hasher.hash
        record: dict[str, object] = {
            "time": rfc3339(self._clock.now()),
            "type": "request",
            "request_id": entry.request_id,
            "remote_address": entry.remote_address,
            "mount": entry.mount,
            "path": entry.path,
            "operation": entry.operation,
            "role": entry.role,
            "outcome": "success" if status < 400 else "error",
            "status": status,
            "error": error,
            "client_token": hashed(entry.client_token) if entry.client_token else None,
            **entry.details,
        }
        if entry.secrets:
            record["secrets"] = {k: hashed(v) for k, v in sorted(entry.secrets.items())}
        if principal is not None:
            record["principal_arn"] = principal.arn
            record["account_id"] = principal.account
        if auth:
            record["accessor"] = auth.get("accessor") or None
            token = auth.get("client_token")
            record["auth_client_token"] = (
                hashed(token) if isinstance(token, str) and token else None
            )
        return record


def describe_request(entry: AuditEntry, path: str, data: Mapping[str, Any]) -> None:
    """Add what ``data`` safely says to ``entry``: written field names, hashed secrets, and
    for logins the role, access key ID, signed region, signature and session token."""
    if entry.operation not in ("create", "update") or not data:
        return
    if path.strip("/") != "login":
        entry.details["fields"] = sorted(str(k)[:_MAX_ECHO] for k in data)[:64]
        for name in SECRET_FIELDS:
            value = data.get(name)
            if isinstance(value, str) and value:
                entry.secrets[name] = value
        return
    role = data.get("role")
    if isinstance(role, str) and role:
        entry.role = role[:_MAX_ECHO]
    try:
        _describe_login(entry, data)
    except Exception:  # best effort: the login itself reports what is malformed
        return


def _describe_login(entry: AuditEntry, data: Mapping[str, Any]) -> None:
    found: dict[str, str] = {}
    raw_headers = data.get("iam_request_headers")
    if raw_headers:
        headers = decode_headers(raw_headers)
        authorization = headers.get("Authorization") or ""
        if match := _SIGNATURE.search(authorization):
            found["signature"] = match[1]
        if match := _CREDENTIAL.search(authorization):
            found["access_key_id"], found["region"] = match[1], match[2]
        found["security_token"] = headers.get("X-Amz-Security-Token") or ""
    url = data.get("iam_request_url")
    if isinstance(url, str) and url:
        query = base64.b64decode(url).decode("utf-8", "replace").partition("?")[2]
        try:
            params = {k.lower(): v for k, v in parse_query(query.partition("#")[0])}
        except QueryError:
            params = {}
        if "x-amz-signature" in params:
            found["signature"] = params["x-amz-signature"]
        if "x-amz-security-token" in params:
            found["security_token"] = params["x-amz-security-token"]
        if match := _CREDENTIAL.search("Credential=" + params.get("x-amz-credential", "")):
            found["access_key_id"], found["region"] = match[1], match[2]
    for name in ("access_key_id", "region"):
        if found.get(name):
            entry.details[name] = found[name][:_MAX_ECHO]
    for name in ("signature", "security_token"):
        if found.get(name):
            entry.secrets[name] = found[name]


__all__ = [
    "AuditEntry",
    "AuditFailedError",
    "AuditHasher",
    "AuditSink",
    "Auditor",
    "JsonLinesAuditSink",
    "MemoryAuditSink",
    "describe_request",
]
