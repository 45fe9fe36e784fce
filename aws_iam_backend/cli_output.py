"""Vault's CLI output of a response (a "secret"): ``table`` (Vault's key/value columns),
``json`` (the whole response) and one ``-field`` printed raw, as ``vault`` prints them."""

from __future__ import annotations

import json
import sys
from typing import Any

from aws_iam_backend.vault.tokenutil import human_duration

_AUTH_FIELDS = {
    "token": "client_token",
    "token_accessor": "accessor",
    "token_duration": "lease_duration",
    "token_renewable": "renewable",
    "token_policies": "token_policies",
    "identity_policies": "identity_policies",
    "policies": "policies",
}
_LIST_FIELDS = {"token_policies", "identity_policies", "policies"}
_SECRET_FIELDS = {
    "refresh_interval": "lease_duration",
    "lease_id": "lease_id",
    "lease_renewable": "renewable",
    "request_id": "request_id",
    "warnings": "warnings",
}


def go_value(value: object) -> str:
    """Go's ``%v`` of a decoded JSON value: ``<nil>``, ``true``, ``[a b]``, ``map[k:v]``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "map[" + " ".join(f"{key}:{go_value(item)}" for key, item in items) + "]"
    return str(value)


def _looks_like_duration(key: str) -> bool:
    return key in ("period", "ttl") or key.endswith(("_period", "_ttl", "_timeout"))


def _go_quoted(values: object) -> str:
    """Go's ``%q`` of a string list: ``["default" "dev"]``."""
    items = values if isinstance(values, list) else []
    return "[" + " ".join(json.dumps(str(item), ensure_ascii=False) for item in items) + "]"


def _seconds(value: object) -> int | None:
    """``value`` if it is an integer (a JSON number of seconds), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def secret_rows(secret: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of Vault's table for ``secret``: lease, then auth, then sorted data."""
    rows: list[tuple[str, str]] = []
    lease = _seconds(secret.get("lease_duration"))
    if lease is not None and lease > 0:
        if secret.get("lease_id"):
            rows += [
                ("lease_id", str(secret["lease_id"])),
                ("lease_duration", human_duration(lease)),
                ("lease_renewable", go_value(bool(secret.get("renewable")))),
            ]
        else:
            rows.append(("refresh_interval", human_duration(lease)))
    auth = secret.get("auth")
    if isinstance(auth, dict):
        duration = _seconds(auth.get("lease_duration"))
        rows += [
            ("token", str(auth.get("client_token") or "")),
            ("token_accessor", str(auth.get("accessor") or "")),
            ("token_duration", human_duration(duration) if duration else "∞"),
            ("token_renewable", go_value(bool(auth.get("renewable")))),
            ("token_policies", _go_quoted(auth.get("token_policies"))),
            ("identity_policies", _go_quoted(auth.get("identity_policies"))),
            ("policies", _go_quoted(auth.get("policies"))),
        ]
        metadata = auth.get("metadata")
        if isinstance(metadata, dict):
            rows += [(f"token_meta_{k}", go_value(v)) for k, v in sorted(metadata.items())]
    data = secret.get("data")
    if isinstance(data, dict):
        for key, value in sorted(data.items()):
            seconds = _seconds(value) if _looks_like_duration(key) else None
            rows.append((key, go_value(value) if seconds is None else human_duration(seconds)))
    return rows


def table(rows: list[tuple[str, str]]) -> str:
    """Vault's ``Key``/``Value`` columns (4 spaces apart; an empty cell is ``n/a``)."""
    rows = [("Key", "Value"), ("---", "-----"), *rows]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{(key or 'n/a').ljust(width)}    {value or 'n/a'}" for key, value in rows)


def raw_field(secret: dict[str, Any], field: str) -> object:
    """Vault's ``RawField``: the value ``-field=NAME`` prints, None when absent."""
    data = secret.get("data")
    auth = secret.get("auth")
    if isinstance(auth, dict):
        if field in _AUTH_FIELDS:
            value = auth.get(_AUTH_FIELDS[field])
            return [] if value is None and field in _LIST_FIELDS else value
        metadata = auth.get("metadata")
        if field.startswith("token_meta_") and isinstance(metadata, dict):
            return metadata.get(field.removeprefix("token_meta_"))
    elif field in _SECRET_FIELDS:
        return secret.get(_SECRET_FIELDS[field])
    return data.get(field) if isinstance(data, dict) else None


def print_raw(text: str) -> None:
    """Print a raw value as Vault does: a newline only on a terminal (so ``$(...)``, files
    and pipes get the bare value)."""
    sys.stdout.write(text + ("\n" if sys.stdout.isatty() else ""))
    sys.stdout.flush()


def print_secret(secret: dict[str, Any], output_format: str, field: str | None) -> int:
    """Print ``secret`` in ``table`` or ``json``, or only ``field``; the exit code."""
    if field:
        value = raw_field(secret, field)
        if value is None:
            print(f'Field "{field}" not present in secret', file=sys.stderr)
            return 1
        print_raw(json.dumps(value, indent=2) if output_format == "json" else go_value(value))
        return 0
    if output_format == "json":
        print(json.dumps(secret, indent=2))
        return 0
    warnings = secret.get("warnings")
    if isinstance(warnings, list) and warnings:
        print("WARNING! The following warnings were returned from the server:", file=sys.stderr)
        for warning in warnings:
            print(f"  * {warning}", file=sys.stderr)
    rows = secret_rows(secret)
    if rows:
        print(table(rows))
    return 0
