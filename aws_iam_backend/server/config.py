"""The production server's TOML configuration: :class:`ServerConfig` and :func:`load_config`.

Example::

    log_level = "info"                  # critical, error, warning, info, debug
    log_format = "standard"             # or "json": one JSON object per line
    trusted_proxies = ["10.0.0.0/8"]    # peers whose X-Forwarded-For is believed
    default_ttl = "768h"
    max_ttl = "768h"

    [listener]
    address = "0.0.0.0:8200"
    workers = 2                         # processes sharing the socket (needs SQLite storage)
    tls_cert_file = "/etc/aws-iam-backend/tls.crt"
    tls_key_file = "/etc/aws-iam-backend/tls.key"
    # tls_disable = true                # plain HTTP must be asked for
    header_read_timeout = "10s"         # a request head must arrive within this
    request_timeout = "30s"             # a request body must arrive within this
    idle_timeout = "5m"                 # a kept-alive connection may wait this long
    max_connections = 4096              # open connections per process; 0 = no cap

    [listener.telemetry]
    unauthenticated_metrics_access = false  # true: GET /v1/sys/metrics needs no token

    [storage]
    url = "sqlite:////var/lib/aws-iam-backend/state.db"   # or postgresql://user@host/db

    [cache]                             # optional: replay claims, nonces, rate limits
    url = "redis://127.0.0.1:6379/0"    # shared by every server process
    # prefix = "aws-iam-backend:"       # key prefix (several services on one Redis)

    [seal]                              # required with postgresql, optional with sqlite
    key_file = "/etc/aws-iam-backend/seal.key"  # base64 32-byte keys, first line active
    # key_env = "AWS_IAM_BACKEND_SEAL_KEY"

    [root_token]
    file = "/etc/aws-iam-backend/root-token"   # or: env = "AWS_IAM_BACKEND_ROOT_TOKEN"

    [audit]
    file = "/var/log/aws-iam-backend/audit.log" # one JSON record per request
    required = true                     # a failing audit write fails the request

    [limits]                            # per mount and per process; 0 disables a limit
    per_source_rate = 20.0              # logins/s per client address, after the burst
    per_source_burst = 500
    per_role_rate = 200.0               # logins/s per requested role, after the burst
    per_role_burst = 2000
    max_concurrent_sts_calls = 64       # outbound GetCallerIdentity calls in flight
    sts_timeout = 10.0                  # overall deadline of one STS call, seconds
    challenge_ttl = 60                  # seconds a server challenge nonce stays valid
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

import attrs

from aws_iam_backend.drivers.ratelimit import RateLimits
from aws_iam_backend.drivers.shapes import DEFAULT_TTL
from aws_iam_backend.io.storage import POSTGRES_SCHEMES
from aws_iam_backend.login.challenge import DEFAULT_CHALLENGE_TTL
from aws_iam_backend.server.asgi import DEFAULT_REQUEST_TIMEOUT
from aws_iam_backend.server.auth import root_token_weakness
from aws_iam_backend.server.client_ip import parse_networks
from aws_iam_backend.server.logs import LOG_FORMATS
from aws_iam_backend.server.serve import (
    DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
)
from aws_iam_backend.vault.fields import to_duration

MAX_CONNECTIONS_LIMIT = 1_000_000
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_SECTIONS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "log_level",
            "log_format",
            "trusted_proxies",
            "default_ttl",
            "max_ttl",
            "listener",
            "storage",
            "root_token",
            "audit",
            "limits",
            "cache",
            "seal",
        }
    ),
    "listener": frozenset(
        {
            "address",
            "tls_cert_file",
            "tls_key_file",
            "tls_disable",
            "workers",
            "header_read_timeout",
            "request_timeout",
            "idle_timeout",
            "max_connections",
            "telemetry",
        }
    ),
    "listener.telemetry": frozenset({"unauthenticated_metrics_access"}),
    "storage": frozenset({"url"}),
    "cache": frozenset({"url", "prefix"}),
    "seal": frozenset({"key_file", "key_env"}),
    "root_token": frozenset({"file", "env"}),
    "audit": frozenset({"file", "required"}),
    "limits": frozenset(
        {
            "per_source_rate",
            "per_source_burst",
            "per_role_rate",
            "per_role_burst",
            "max_concurrent_sts_calls",
            "sts_timeout",
            "challenge_ttl",
        }
    ),
}


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


@attrs.frozen
class ServerConfig:
    """Everything the production server needs, validated."""

    host: str
    port: int
    root_token: str = attrs.field(repr=False)
    storage_url: str = "memory://"
    cache_url: str | None = attrs.field(default=None, repr=False)
    cache_prefix: str = "aws-iam-backend:"
    seal_key_file: str | None = None
    seal_key_env: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    default_ttl: int = DEFAULT_TTL
    max_ttl: int = DEFAULT_TTL
    trusted_proxies: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "standard"
    unauthenticated_metrics_access: bool = False
    audit_file: str | None = None
    audit_required: bool = True
    rate_limits: RateLimits = attrs.field(factory=RateLimits)
    workers: int = 1
    sts_timeout: float = 10.0
    challenge_ttl: int = DEFAULT_CHALLENGE_TTL
    header_read_timeout: int = DEFAULT_HEADER_READ_TIMEOUT
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8200`` for IPv6) as a pair; :class:`ValueError` if malformed."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _table(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    unknown = sorted(set(value) - _SECTIONS[name])
    if unknown:
        raise ConfigError(f"[{name}]: unknown key {unknown[0]!r}")
    return value


def _unauthenticated_metrics(listener: Mapping[str, Any]) -> bool:
    """``[listener.telemetry]``'s ``unauthenticated_metrics_access`` (Vault's name)."""
    telemetry = listener.get("telemetry", {})
    if not isinstance(telemetry, dict):
        raise ConfigError("[listener.telemetry] must be a table")
    unknown = sorted(set(telemetry) - _SECTIONS["listener.telemetry"])
    if unknown:
        raise ConfigError(f"[listener.telemetry]: unknown key {unknown[0]!r}")
    value = telemetry.get("unauthenticated_metrics_access", False)
    if not isinstance(value, bool):
        raise ConfigError(
            "listener.telemetry.unauthenticated_metrics_access: expected true or false"
        )
    return value


def _string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{where}{key}: expected a non-empty string")
    return value


def _duration(table: Mapping[str, Any], key: str, default: int, where: str = "") -> int:
    """A positive Vault duration (or whole seconds) at ``table[key]``, else ``default``."""
    if key not in table:
        return default
    try:
        seconds = to_duration(table[key])
    except ValueError as exc:
        raise ConfigError(f"{where}{key}: {exc}") from None
    if seconds <= 0:
        raise ConfigError(f"{where}{key}: must be positive")
    return seconds


def _max_connections(table: Mapping[str, Any]) -> int:
    value = table.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError("listener.max_connections: expected an integer from 0 to 1000000")
    if not 0 <= value <= MAX_CONNECTIONS_LIMIT:
        raise ConfigError("listener.max_connections: expected an integer from 0 to 1000000")
    return value


def _root_token(table: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    path, env = _string(table, "file", "root_token."), _string(table, "env", "root_token.")
    if (path is None) == (env is None):
        raise ConfigError("[root_token]: set exactly one of 'file' or 'env'")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except (OSError, UnicodeError) as exc:
            raise ConfigError(f"root_token.file: cannot read {path}: {exc}") from None
        source = f"file {path}"
    else:
        token = environ.get(str(env), "").strip()
        source = f"environment variable {env}"
    if not token:
        raise ConfigError(f"root_token: {source} is empty or unset")
    weakness = root_token_weakness(token)
    if weakness is not None:
        raise ConfigError(
            f"root_token: the token in {source} {weakness}; use a long random one, such as "
            "the output of: openssl rand -base64 32"
        )
    return token


def _number(table: Mapping[str, Any], key: str, default: float, *, integer: bool) -> float:
    value = table.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
        expected = "a non-negative integer" if integer else "a non-negative number"
        raise ConfigError(f"limits.{key}: expected {expected}")
    return float(value)


def _limits(table: Mapping[str, Any]) -> tuple[RateLimits, float, int]:
    base = RateLimits()
    limits = RateLimits(
        per_source_rate=_number(table, "per_source_rate", base.per_source_rate, integer=False),
        per_source_burst=int(
            _number(table, "per_source_burst", base.per_source_burst, integer=True)
        ),
        per_role_rate=_number(table, "per_role_rate", base.per_role_rate, integer=False),
        per_role_burst=int(_number(table, "per_role_burst", base.per_role_burst, integer=True)),
        max_concurrent_sts_calls=int(
            _number(table, "max_concurrent_sts_calls", base.max_concurrent_sts_calls, integer=True)
        ),
    )
    sts_timeout = _number(table, "sts_timeout", 10.0, integer=False)
    challenge_ttl = int(_number(table, "challenge_ttl", DEFAULT_CHALLENGE_TTL, integer=True))
    if sts_timeout <= 0 or challenge_ttl <= 0:
        raise ConfigError("[limits]: sts_timeout and challenge_ttl must be positive")
    return limits, sts_timeout, challenge_ttl


def config_from_document(doc: Mapping[str, Any], environ: Mapping[str, str]) -> ServerConfig:
    """Validate a parsed TOML document; ``environ`` supplies ``root_token.env``."""
    unknown = sorted(set(doc) - _SECTIONS[""])
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}")
    listener, storage = _table(doc, "listener"), _table(doc, "storage")
    try:
        host, port = parse_listen(_string(listener, "address", "listener.") or "127.0.0.1:8200")
    except ValueError as exc:
        raise ConfigError(f"listener.address: {exc}") from None
    cert = _string(listener, "tls_cert_file", "listener.")
    key = _string(listener, "tls_key_file", "listener.")
    tls_disable = listener.get("tls_disable", False)
    if not isinstance(tls_disable, bool):
        raise ConfigError("listener.tls_disable: expected true or false")
    if (cert is None) != (key is None):
        raise ConfigError("[listener]: set both tls_cert_file and tls_key_file")
    if cert is None and not tls_disable:
        raise ConfigError("[listener]: set tls_cert_file and tls_key_file, or tls_disable = true")
    if cert is not None and tls_disable:
        raise ConfigError("[listener]: tls_disable = true conflicts with tls_cert_file")
    workers = listener.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise ConfigError("listener.workers: expected an integer from 1 to 64")
    header_read_timeout = _duration(
        listener, "header_read_timeout", DEFAULT_HEADER_READ_TIMEOUT, "listener."
    )
    request_timeout = _duration(listener, "request_timeout", DEFAULT_REQUEST_TIMEOUT, "listener.")
    idle_timeout = _duration(listener, "idle_timeout", DEFAULT_IDLE_TIMEOUT, "listener.")
    max_connections = _max_connections(listener)
    storage_url = _string(storage, "url", "storage.") or "memory://"
    if workers > 1 and storage_url.startswith("memory:"):
        raise ConfigError(
            "listener.workers: several workers need shared storage (sqlite:/// or postgresql://)"
        )
    cache = _table(doc, "cache")
    cache_url = _string(cache, "url", "cache.")
    cache_prefix = _string(cache, "prefix", "cache.") or "aws-iam-backend:"
    seal = _table(doc, "seal")
    seal_file, seal_env = _string(seal, "key_file", "seal."), _string(seal, "key_env", "seal.")
    if "seal" in doc and (seal_file is None) == (seal_env is None):
        raise ConfigError("[seal]: set exactly one of 'key_file' or 'key_env'")
    if storage_url.startswith(POSTGRES_SCHEMES) and "seal" not in doc:
        raise ConfigError("[seal]: required with postgresql storage (see docs/seal.md)")
    proxies = doc.get("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise ConfigError("trusted_proxies: expected a list of addresses or CIDRs")
    try:
        parse_networks(proxies)
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies: {exc}") from None
    log_level = doc.get("log_level", "info")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level: expected one of {', '.join(LOG_LEVELS)}")
    log_format = doc.get("log_format", "standard")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format: expected one of {', '.join(LOG_FORMATS)}")
    default_ttl, max_ttl = (
        _duration(doc, "default_ttl", DEFAULT_TTL),
        _duration(doc, "max_ttl", DEFAULT_TTL),
    )
    if default_ttl > max_ttl:
        raise ConfigError("default_ttl: must not exceed max_ttl")
    rate_limits, sts_timeout, challenge_ttl = _limits(_table(doc, "limits"))
    audit = _table(doc, "audit")
    audit_required = audit.get("required", True)
    if not isinstance(audit_required, bool):
        raise ConfigError("audit.required: expected true or false")
    return ServerConfig(
        host=host,
        port=port,
        root_token=_root_token(_table(doc, "root_token"), environ),
        storage_url=storage_url,
        cache_url=cache_url,
        cache_prefix=cache_prefix,
        seal_key_file=seal_file,
        seal_key_env=seal_env,
        tls_cert_file=cert,
        tls_key_file=key,
        default_ttl=default_ttl,
        max_ttl=max_ttl,
        trusted_proxies=tuple(proxies),
        log_level=log_level,
        log_format=log_format,
        unauthenticated_metrics_access=_unauthenticated_metrics(listener),
        audit_file=_string(audit, "file", "audit."),
        audit_required=audit_required,
        rate_limits=rate_limits,
        workers=workers,
        sts_timeout=sts_timeout,
        challenge_ttl=challenge_ttl,
        header_read_timeout=header_read_timeout,
        request_timeout=request_timeout,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
    )


def load_config(path: str, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read and validate the TOML file at ``path``; :class:`ConfigError` says what is wrong."""
    try:
        with open(path, "rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    try:
        return config_from_document(doc, os.environ if environ is None else environ)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
