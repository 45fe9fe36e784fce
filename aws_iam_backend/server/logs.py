"""The server's logs: one line per HTTP request (:func:`log_request`, logger
``aws_iam_backend.server.requests``) and the two output formats (:func:`configure_logging`).

A request line carries the method, the path (its first 256 characters), the status, the
duration, the request ID (the audit record's), the auth mount, the login's role (``-``
unless the role exists), the error class (``-`` for none) and the peer's address. Never a
token, signature, nonce, key, query string or body. Lines are INFO, a 5xx WARNING, and a
successful ``sys/health`` probe DEBUG (load balancers call it every few seconds); set the
logger's level to WARNING to keep only the failures.

``log_format = "standard"``: ``LEVEL: message``, the request fields as ``key=value``
pairs (a value with a space, quote, ``=`` or anything but printable ASCII is JSON-quoted,
so a client's path cannot forge a line). ``"json"``: one JSON object per line in Vault's
(hclog's) shape, ``@timestamp``, ``@level``, ``@module`` (the logger) and ``@message``,
with a request's fields as keys of their own (``"@message": "request"``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from aws_iam_backend.server.api import RequestNote
from aws_iam_backend.server.messages import HTTPRequest

REQUEST_LOGGER = "aws_iam_backend.server.requests"
LOG_FORMATS = ("standard", "json")
STANDARD_FORMAT = "%(levelname)s: %(message)s"
MAX_LOGGED_PATH = 256
_requests = logging.getLogger(REQUEST_LOGGER)
# What a key=value pair shows unquoted: printable ASCII but space, '"', '=' and '\\'.
_PLAIN = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('"=\\')


def _value(value: object) -> str:
    text = str(value)
    if text and _PLAIN.issuperset(text):
        return text
    return json.dumps(text)


class _Line:
    """``key=value ...`` of the request fields, built only if the record is formatted."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, object]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{key}={_value(value)}" for key, value in self.fields.items())


def log_request(
    request: HTTPRequest, status: int, seconds: float, request_id: str, note: RequestNote
) -> None:
    """Log the one line of a request answered ``status`` (0: the client went away, logged
    as 499) after ``seconds``."""
    if status >= 500:
        level = logging.WARNING
    elif status < 400 and status and request.path == "/v1/sys/health":
        level = logging.DEBUG
    else:
        level = logging.INFO
    if not _requests.isEnabledFor(level):
        return
    error = note.error
    if not status:
        status, error = 499, "cancelled"
    fields: dict[str, object] = {
        "method": request.method[:16],
        "path": request.path[:MAX_LOGGED_PATH],
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "request_id": request_id,
        "mount": note.mount,
        "role": note.role,
        "error": error,
        "remote_address": request.remote_addr or "-",
    }
    _requests.log(level, "request %s", _Line(fields), extra={"request_fields": fields})


_LEVELS = {"WARNING": "warn", "CRITICAL": "error"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, as Vault's ``log_format = "json"`` writes them."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        document: dict[str, Any] = {
            "@timestamp": created.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "@level": _LEVELS.get(record.levelname, record.levelname.lower()),
            "@module": record.name,
        }
        fields = getattr(record, "request_fields", None)
        if isinstance(fields, dict):
            document["@message"] = "request"
            document.update(fields)
        else:
            document["@message"] = record.getMessage()
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, separators=(",", ":"), default=str)


def log_formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``log_format`` (``standard`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "standard":
        return logging.Formatter(STANDARD_FORMAT)
    raise ValueError(f"log format: expected one of {', '.join(LOG_FORMATS)}")


# Their DEBUG records can carry signed AWS request headers (session tokens): never shown.
_NEVER_DEBUG = ("botocore", "boto3", "urllib3")


def configure_logging(level: str, log_format: str = "standard") -> None:
    """Send every log record at ``level`` (``info``, ...) and above to stderr, formatted as
    ``log_format`` says; like :func:`logging.basicConfig`, nothing changes if the root
    logger has handlers already. botocore, boto3 and urllib3 log at INFO at most verbose
    (their DEBUG records may hold signed request headers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if level.upper() == "DEBUG":
        for name in _NEVER_DEBUG:
            logging.getLogger(name).setLevel(logging.INFO)


__all__ = [
    "LOG_FORMATS",
    "REQUEST_LOGGER",
    "JsonFormatter",
    "configure_logging",
    "log_formatter",
    "log_request",
]
