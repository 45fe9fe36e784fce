"""Vault's response envelopes as :class:`HTTPResponse` values."""

from __future__ import annotations

import json
import uuid
from contextvars import ContextVar
from typing import Any

from aws_iam_backend.errors import BackendError
from aws_iam_backend.server.messages import HTTPResponse

JSON_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))
# The request being served (set by VaultAPI.handle), so envelopes match the audit record.
REQUEST_ID: ContextVar[str] = ContextVar("aws_iam_backend_request_id", default="")


def json_response(status: int, document: object) -> HTTPResponse:
    """``document`` as compact JSON with ``Content-Type: application/json`` exactly."""
    body = json.dumps(document, separators=(",", ":")).encode()
    return HTTPResponse(status=status, headers=JSON_HEADERS, body=body)


def error_response(status: int, errors: list[str]) -> HTTPResponse:
    """Vault's error body: ``{"errors": [...]}``."""
    return json_response(status, {"errors": errors})


def backend_error_response(exc: BackendError) -> HTTPResponse:
    """The error envelope for ``exc``; an empty message gives ``{"errors": []}`` as Vault does.

    Errors with a ``retry_after`` (rate limiting, STS throttling) add ``Retry-After``.
    """
    response = error_response(exc.status, [exc.message] if exc.message else [])
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int) and not isinstance(retry_after, bool):
        return HTTPResponse(
            status=response.status,
            headers=(*response.headers, ("Retry-After", str(retry_after))),
            body=response.body,
        )
    return response


def no_content() -> HTTPResponse:
    """204 with an empty body: a write with neither data nor warnings."""
    return HTTPResponse(status=204, headers=(("Cache-Control", "no-store"),))


def envelope(
    *,
    data: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    warnings: tuple[str, ...] | list[str] = (),
) -> HTTPResponse:
    """Vault's success envelope, or 204 when there is nothing to say."""
    if data is None and auth is None and not warnings:
        return no_content()
    return json_response(200, envelope_document(data=data, auth=auth, warnings=warnings))


def envelope_document(
    *,
    data: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    warnings: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """The fields of Vault's success envelope."""
    return {
        "request_id": REQUEST_ID.get() or str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": list(warnings) or None,
        "auth": auth,
    }
