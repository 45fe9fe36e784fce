"""HTTP framing checks both adapters (ASGI and WSGI) make before the API sees a request."""

from __future__ import annotations

import re

import attrs

from aws_iam_backend.server.api import MAX_BODY

_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() also takes "²", which int() refuses


@attrs.frozen
class Refusal:
    """Why the adapter refuses a request before the API sees it."""

    status: int
    message: str


TOO_LARGE = Refusal(413, "request body too large")
BAD_LENGTH = Refusal(400, "invalid Content-Length header")
LENGTH_MISMATCH = Refusal(400, "request body does not match Content-Length")
AMBIGUOUS_LENGTH = Refusal(400, "request has both Content-Length and Transfer-Encoding")
DISCONNECTED = Refusal(400, "client disconnected")


def declared_length(headers: dict[str, str]) -> int | Refusal | None:
    """The ``Content-Length`` (None when absent), or why it is refused."""
    declared = headers.get("content-length")
    if declared is None:
        return None
    if "transfer-encoding" in headers:
        return AMBIGUOUS_LENGTH
    declared = declared.strip()
    if not _DIGITS.fullmatch(declared):
        return BAD_LENGTH
    significant = declared.lstrip("0")
    if len(significant) > len(str(MAX_BODY)):  # int() of thousands of digits would raise
        return TOO_LARGE
    length = int(significant or "0")
    return TOO_LARGE if length > MAX_BODY else length
