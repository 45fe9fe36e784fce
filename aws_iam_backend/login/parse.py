"""Turn STS's answer to GetCallerIdentity into a :class:`~.messages.CallerIdentity`.

Pure: no I/O. The response is hostile until proven otherwise: status 200, media type
``text/xml``, one namespaced ``GetCallerIdentityResponse`` holding one result with one
non-empty ``Arn``, ``UserId`` and ``Account`` each, parsed without DTDs or entities, and
the three fields consistent with each other. STS error documents are summarised as
``<Code>: <Message>``; the raw body is never echoed.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import xml.etree.ElementTree as ET
from pyexpat import ExpatError, ParserCreate

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from aws_iam_backend.errors import InvalidRequestError, UpstreamError, UpstreamThrottledError
from aws_iam_backend.login import arn as arn_module
from aws_iam_backend.login.messages import CallerIdentity, STSResponse

__all__ = ["parse_sts_response"]

logger = logging.getLogger(__name__)

_NS = "https://sts.amazonaws.com/doc/2011-06-15/}"  # expat's "<uri>}<local>" tag form
_PREFIX = "error making upstream request: "
_PARSE_ERROR = _PREFIX + "error parsing STS response"
_INVALID_BODY = _PREFIX + "body of GetCallerIdentity is invalid"

_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+", re.ASCII)
_MAX_CODE = 64
_MAX_MESSAGE = 200
_XML_ERRORS = (ET.ParseError, DefusedXmlException, ValueError, LookupError)
_HARDENED_ERRORS = (ExpatError, ValueError, LookupError)
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})


class _Rejected(Exception):
    """Internal: why a 200 body was refused (logged, never shown)."""


def parse_sts_response(
    response: STSResponse, expected_partition: str | None = None
) -> CallerIdentity:
    """Validate an STS response and return the identity it vouches for.

    ``expected_partition`` is the partition of the STS endpoint we called; the ARN must
    be in it. An ARN that does not parse is returned as is: reporting it (with Vault's
    text) is the caller's job.

    Raises :class:`~aws_iam_backend.errors.InvalidRequestError` for STS 4xx answers (the
    client's signature or credentials), :class:`~aws_iam_backend.errors.UpstreamError` for
    everything else.
    """
    if response.status != 200:
        raise _status_error(response)
    if _media_type(response.header("content-type")) != "text/xml":
        logger.debug("STS response rejected: media type is not text/xml")
        raise UpstreamError(_INVALID_BODY)
    try:
        return _identity(response.body, expected_partition)
    except _Rejected as exc:
        logger.debug("STS response rejected: %s", exc)
        raise UpstreamError(_PARSE_ERROR) from None


def _media_type(content_type: str | None) -> str:
    """The lower-cased media type of a ``Content-Type`` value, parameters dropped."""
    if content_type is None:
        return ""
    return content_type.split(";", 1)[0].strip(" \t").lower()


def _status_error(response: STSResponse) -> UpstreamError | InvalidRequestError:
    """The error for a non-200 answer: 4xx (not 429) is the client's fault, the rest is ours.

    Throttling (429, or 400/503 with a throttling error code) is
    :class:`UpstreamThrottledError` (503), whatever the status.
    """
    summary = _error_summary(response.body)
    if response.status == 429 or (
        response.status in (400, 503) and summary.split(":", 1)[0] in THROTTLING_CODES
    ):
        retry_after = (response.header("retry-after") or "").strip()
        return UpstreamThrottledError(
            retry_after=min(int(retry_after), 60) if retry_after.isdecimal() else 1
        )
    message = f"{_PREFIX}received error code {response.status} from STS"
    if summary:
        message = f"{message}: {summary}"
    if 400 <= response.status < 500 and response.status != 429:
        return InvalidRequestError(message)
    return UpstreamError(message)


def _error_summary(body: bytes) -> str:
    """``<Code>: <Message>`` from an STS ``ErrorResponse`` (any namespace), or ``""``."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except _XML_ERRORS:
        return ""
    if _local(root.tag) != "ErrorResponse":
        return ""
    error = _first(root, "Error")
    if error is None:  # moto: ErrorResponse/Errors/Error
        errors = _first(root, "Errors")
        error = _first(errors, "Error") if errors is not None else None
    if error is None:
        return ""
    code_element = _first(error, "Code")
    code = _clean(code_element.text if code_element is not None else None, _MAX_CODE)
    if not code:
        return ""
    message_element = _first(error, "Message")
    message = _clean(message_element.text if message_element is not None else None, _MAX_MESSAGE)
    return f"{code}: {message}" if message else code


def _local(tag: object) -> str:
    """An element's tag without its ``{namespace}``; ``""`` for comments and the like."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _first(parent: ET.Element, name: str) -> ET.Element | None:
    """The first child of ``parent`` whose local name is ``name``."""
    return next((child for child in parent if _local(child.tag) == name), None)


def _clean(text: str | None, limit: int) -> str:
    """The first line of ``text``, without control or format characters, capped at ``limit``.

    STS's ``SignatureDoesNotMatch`` message continues, after a newline, with the canonical
    request; only the first line is kept.
    """
    if not text:
        return ""
    first_line = re.split(r"[\r\n\x0b\x0c\x85\u2028\u2029]", text.strip(), maxsplit=1)[0]
    kept = "".join(c for c in first_line if unicodedata.category(c) not in ("Cc", "Cf"))
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[: limit - 3] + "..."


class _Forbidden(ValueError):
    """Internal: the body declares a DTD or an entity, or references an external one."""


def _forbid_doctype(*_: object) -> None:
    raise _Forbidden("DTD forbidden")


def _forbid_entity(*_: object) -> None:
    raise _Forbidden("entities forbidden")


def _forbid_external(*_: object) -> int:
    raise _Forbidden("external references forbidden")


class _Node:
    """An element of a 200 body: its ``uri}local`` tag, its text pieces and child elements.

    Only what :func:`_identity` reads is kept (no attributes, no tails): the checks need
    an element's children and, for leaves, their text.
    """

    __slots__ = ("children", "tag", "text")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.text: list[str] = []
        self.children: list[_Node] = []


class _Tree:
    """Expat handlers building :class:`_Node` objects (no recursion; expat checks nesting)."""

    __slots__ = ("root", "stack")

    def __init__(self) -> None:
        self.root: _Node | None = None
        self.stack: list[_Node] = []

    def start(self, tag: str, _attributes: object) -> None:
        node = _Node(tag)
        stack = self.stack
        if stack:
            stack[-1].children.append(node)
        else:
            self.root = node
        stack.append(node)

    def end(self, _tag: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text.append(text)


def _parse_hardened(body: bytes) -> _Node:
    """Parse ``body`` with expat as defusedxml's ``fromstring(forbid_dtd=True)`` does.

    The same protections, installed on a bare expat parser: any ``<!DOCTYPE`` (hence any
    internal or external subset, entity declaration or parameter entity) is refused
    when it starts, entity declarations and external references are refused as well,
    and an undefined entity is expat's own error. Namespaces are resolved as in
    ElementTree (``uri}local``); comments and processing instructions are skipped and
    the text around them joined, as ElementTree's default tree builder does.
    """
    tree = _Tree()
    parser = ParserCreate(None, "}")
    parser.StartDoctypeDeclHandler = _forbid_doctype
    parser.EntityDeclHandler = _forbid_entity
    parser.UnparsedEntityDeclHandler = _forbid_entity
    parser.ExternalEntityRefHandler = _forbid_external
    parser.StartElementHandler = tree.start
    parser.EndElementHandler = tree.end
    parser.CharacterDataHandler = tree.data
    parser.buffer_text = True
    parser.ordered_attributes = True
    parser.Parse(body, True)
    if tree.root is None or tree.stack:  # pragma: no cover - expat refuses both
        raise ValueError("no single complete root element")
    return tree.root


def _identity(body: bytes, expected_partition: str | None) -> CallerIdentity:
    """Parse and cross-check a 200 body; raise :class:`_Rejected` with the reason."""
    try:
        root = _parse_hardened(body)
    except _HARDENED_ERRORS as exc:
        raise _Rejected(f"not a single well-formed XML document ({type(exc).__name__})") from None
    if root.tag != _NS + "GetCallerIdentityResponse":
        raise _Rejected("unexpected root element")
    result = _one(root, "GetCallerIdentityResult")
    arn_text = _field(result, "Arn")
    user_id = _field(result, "UserId")
    account = _field(result, "Account")
    request_id = ""
    metadata = _optional(root, "ResponseMetadata")
    if metadata is not None and _optional(metadata, "RequestId") is not None:
        request_id = _field(metadata, "RequestId")

    if _ACCOUNT.fullmatch(account) is None:
        raise _Rejected("Account is not 12 digits")
    try:
        entity = arn_module.parse_iam_arn(arn_text)
    except arn_module.ArnError:
        entity = None  # the caller reports it with Vault's text
    if entity is not None:
        if entity.account_id != account:
            raise _Rejected("ARN account differs from Account")
        if entity.type == "assumed-role":
            _, colon, session = user_id.partition(":")
            if not colon or session != entity.session_info:
                raise _Rejected("UserId session differs from the ARN's session")
        if expected_partition is not None and entity.partition != expected_partition:
            raise _Rejected("ARN partition differs from the endpoint's partition")
    return CallerIdentity(arn=arn_text, user_id=user_id, account=account, request_id=request_id)


def _optional(parent: _Node, name: str) -> _Node | None:
    """The child ``<sts namespace>}name`` of ``parent`` if there is one; refuse two."""
    tag = _NS + name
    found = None
    for child in parent.children:
        if child.tag == tag:
            if found is not None:
                raise _Rejected(f"more than one {name}")
            found = child
    return found


def _one(parent: _Node, name: str) -> _Node:
    """The single child ``<sts namespace>}name`` of ``parent``."""
    element = _optional(parent, name)
    if element is None:
        raise _Rejected(f"no {name}")
    return element


def _field(parent: _Node, name: str) -> str:
    """The text of the single, non-empty, text-only child ``name`` (visible ASCII only)."""
    element = _one(parent, name)
    text = "".join(element.text)
    if element.children or _VISIBLE_ASCII.fullmatch(text) is None:
        raise _Rejected(f"{name} is empty or not plain visible ASCII text")
    return text
