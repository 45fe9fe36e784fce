"""Login payload decoding: Vault's field validation, ec2/iam dispatch and request-shape
checks (spec 2.1 and 2.2, Vault >= 1.15 texts), before any configuration is read."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import attrs

from aws_iam_backend.errors import InvalidRequestError, RequestTooLargeError
from aws_iam_backend.login.headers import HeaderMap, decode_headers, short_quote
from aws_iam_backend.vault.gocompat import Base64Error, QueryError, b64decode_std, parse_query

MAX_LOGIN_BYTES = 65536

F_METHOD = "iam_http_request_method"
F_URL = "iam_request_url"
F_BODY = "iam_request_body"
F_HEADERS = "iam_request_headers"
F_ROLE = "role"
IAM_FIELDS = (F_METHOD, F_URL, F_BODY, F_HEADERS)
EC2_FIELDS = ("pkcs7", "identity", "signature")
KNOWN_LOGIN_FIELDS: frozenset[str] = frozenset((F_ROLE, *IAM_FIELDS, *EC2_FIELDS, "nonce"))
_STRING_FIELDS = (F_ROLE, F_METHOD, F_URL, F_BODY, *EC2_FIELDS, "nonce")
ALLOWED_METHODS = ("GET", "POST")
GET_CALLER_IDENTITY = "GetCallerIdentity"


@attrs.frozen
class LoginPayload:
    """A decoded IAM login request that passed Vault's request-shape checks."""

    method: str
    url: str
    body: bytes
    headers: HeaderMap
    role: str = ""


@attrs.frozen
class Ec2LoginPayload:
    """A decoded ``ec2`` login request: a PKCS#7 blob, or the document and its signature.

    ``nonce`` is None when the client sent none (Vault then generates one); ``""``
    when sent empty (the client asks that reauthentication be disabled). Only ``role``
    is in the repr.
    """

    pkcs7: str = attrs.field(repr=False)
    identity: bytes = attrs.field(repr=False)
    signature: bytes = attrs.field(repr=False)
    role: str = ""
    nonce: str | None = attrs.field(default=None, repr=False)


def _field_error(field: str, detail: str) -> InvalidRequestError:
    return InvalidRequestError(
        f'Field validation failed: error converting input for field "{field}": {detail}'
    )


def echo(text: str, limit: int = 64) -> str:
    """``text`` for an error message: as-is when short printable ASCII, else quoted and cut."""
    if len(text) <= limit and text.isascii() and text.isprintable():
        return text
    return short_quote(text, limit)


_SIZED_FIELDS = (*IAM_FIELDS, F_ROLE, *EC2_FIELDS, "nonce")


def _payload_size(data: Mapping[str, object]) -> int:
    """Bytes in the login fields, counting at most a little past the limit (no recursion)."""
    total = 0
    stack: list[object] = [data[f] for f in _SIZED_FIELDS if f in data]
    while stack and total <= MAX_LOGIN_BYTES:
        item = stack.pop()
        if isinstance(item, str):
            total += (
                len(item)  # ASCII (an O(1) test) is one byte per character
                if item.isascii() or len(item) > MAX_LOGIN_BYTES
                else len(item.encode("utf-8", "surrogatepass"))  # JSON allows lone surrogates
            )
        elif isinstance(item, (list, tuple)):  # before Mapping: an ABC check is slow
            total += 1 + len(item)
            stack.extend(item)
        elif isinstance(item, Mapping):
            total += 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif item is not None:
            total += 8
    return total


def _string_field(data: Mapping[str, object], field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _field_error(field, f"expected a string, got {type(value).__name__}")
    return value


def _lenient_query(raw: str) -> list[tuple[str, str]]:
    """Go's ``URL.Query()``: like ``ParseQuery`` but silently dropping bad segments."""
    pairs: list[tuple[str, str]] = []
    for segment in raw.split("&"):
        try:
            pairs.extend(parse_query(segment))
        except QueryError:
            continue
    return pairs


_HEX = frozenset("0123456789abcdefABCDEF")


def _bad_escape(text: str) -> bool:
    i = text.find("%")
    while i != -1:
        if i + 2 >= len(text) or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
            return True
        i = text.find("%", i + 3)
    return False


def _check_url_text(url: str) -> str:
    """Reject URL text Go's ``url.Parse`` would reject, or that Python would read differently.

    Returns the raw query (text after the first ``?``, before any ``#``).
    """
    # isascii + isprintable: every character in 0x20..0x7E; then no space (0x21..0x7E).
    if not (url.isascii() and url.isprintable()) or " " in url:
        raise InvalidRequestError(
            "error parsing iam_request_url: URL contains whitespace, control or non-ASCII "
            "characters"
        )
    rest, _, _fragment = url.partition("#")
    before_query, _, query = rest.partition("?")
    if _bad_escape(before_query) or _bad_escape(_fragment):
        raise InvalidRequestError("error parsing iam_request_url")
    return query


_FORM_CACHE_MAX_BYTES = 256


@functools.lru_cache(maxsize=32)
def _cached_form(body: bytes) -> tuple[tuple[str, str], ...]:
    return tuple(parse_query(body.decode("utf-8", "surrogateescape")))


def parse_form(body: bytes) -> tuple[tuple[str, str], ...]:
    """The login body's pairs, parsed like Go's ``url.ParseQuery`` (:class:`QueryError`).

    Nearly every client sends the same short body, and a login reads it twice (here and
    in :mod:`~aws_iam_backend.login.rebuild`): short bodies' parses are kept in a small
    cache (errors are not cached).
    """
    if len(body) <= _FORM_CACHE_MAX_BYTES:
        return _cached_form(body)
    return tuple(parse_query(body.decode("utf-8", "surrogateescape")))


def _check_body(body: bytes) -> None:
    try:
        pairs = parse_form(body)
    except QueryError as exc:
        raise InvalidRequestError(str(exc)) from None
    actions = [v for k, v in pairs if k == "Action"]
    for key, _ in pairs:
        if key not in ("Action", "Version"):
            raise InvalidRequestError("iam request body is invalid")
    if actions and (len(actions) != 1 or actions[0] != GET_CALLER_IDENTITY):
        raise InvalidRequestError("iam request body is invalid")


def decode_login(data: Mapping[str, object]) -> LoginPayload:
    """Decode and shape-check an IAM login request (Vault's field validation, dispatch and
    spec 2.2 steps 1-10, in order). ``data`` is the decoded JSON body of the login call.

    An ``ec2`` payload is refused here (:func:`decode_any_login` takes both types)."""
    payload = decode_any_login(data)
    if isinstance(payload, Ec2LoginPayload):
        raise InvalidRequestError("this is an ec2 login; it cannot be verified as an iam login")
    return payload


def decode_any_login(data: Mapping[str, object]) -> LoginPayload | Ec2LoginPayload:
    """Decode a login of either type, dispatched as Vault does (spec 2.1): the IAM
    checks of :func:`decode_login`, or the ``ec2`` field checks (base64 of ``identity``
    and ``signature``; ``pkcs7`` or the pair, not both)."""
    if _payload_size(data) > MAX_LOGIN_BYTES:
        raise RequestTooLargeError(f"login request exceeds {MAX_LOGIN_BYTES} bytes")

    # Field validation (the framework's step, before the handler runs).
    strings: dict[str, str] = {}
    for field in _STRING_FIELDS:
        value = data.get(field)
        strings[field] = value if type(value) is str else _string_field(data, field)
    headers = decode_headers(data.get(F_HEADERS)) if F_HEADERS in data else HeaderMap()

    # Dispatch (spec 2.1, Vault >= 1.15).
    method = strings[F_METHOD]
    keys = data.keys()
    ec2_any = not keys.isdisjoint(EC2_FIELDS)
    ec2_all = "pkcs7" in data or ("identity" in data and "signature" in data)
    iam_any = not keys.isdisjoint(IAM_FIELDS)
    iam_all = (
        F_METHOD in data
        and F_URL in data
        and F_HEADERS in data
        and (F_BODY in data or method == "GET")
    )
    if ec2_any and iam_any:
        raise InvalidRequestError("supplied auth values for both ec2 and iam auth types")
    if ec2_any and not ec2_all:
        raise InvalidRequestError(
            "supplied some of the auth values for the ec2 auth type but not all"
        )
    if ec2_any:
        return _decode_ec2(data, strings)
    if iam_any and not iam_all:
        raise InvalidRequestError(
            "supplied some of the auth values for the iam auth type but not all"
        )
    if not iam_any:
        raise InvalidRequestError("didn't supply required authentication values")

    # Request shape (spec 2.2).
    if method == "":
        raise InvalidRequestError("missing iam_http_request_method")
    if method not in ALLOWED_METHODS:
        raise InvalidRequestError(
            "invalid iam_http_request_method; currently only 'GET' and 'POST' are supported"
        )
    url_b64 = strings[F_URL]
    if url_b64 == "":
        raise InvalidRequestError("missing iam_request_url")
    try:
        url_bytes = b64decode_std(url_b64)
    except Base64Error:
        raise InvalidRequestError("failed to base64 decode iam_request_url") from None
    try:
        url = url_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequestError(
            "error parsing iam_request_url: URL contains whitespace, control or non-ASCII "
            "characters"
        ) from None
    raw_query = _check_url_text(url)
    if method == "POST":
        if raw_query != "":
            raise InvalidRequestError("invalid request")
    else:
        actions = [v for k, v in _lenient_query(raw_query) if k == "Action"]
        if not actions:
            raise InvalidRequestError("no action found in request")
        if len(actions) != 1:
            raise InvalidRequestError("found multiple actions")
        if actions[0] != GET_CALLER_IDENTITY:
            raise InvalidRequestError(f"unexpected action parameter, {echo(actions[0])}")
    body_b64 = strings[F_BODY]
    if body_b64 == "" and method != "GET":
        raise InvalidRequestError("missing iam_request_body which is required for POST requests")
    try:
        body = b64decode_std(body_b64)
    except Base64Error:
        raise InvalidRequestError("failed to base64 decode iam_request_body") from None
    _check_body(body)
    if len(headers) == 0:
        raise InvalidRequestError("missing iam_request_headers")
    return LoginPayload(method=method, url=url, body=body, headers=headers, role=strings[F_ROLE])


def _decode_ec2(data: Mapping[str, object], strings: Mapping[str, str]) -> Ec2LoginPayload:
    """Vault's ``pathLoginEc2GetRoleNameAndIdentityDoc`` field checks, in its order."""
    identity = b""
    if strings["identity"]:
        try:
            identity = b64decode_std(strings["identity"])
        except Base64Error:
            identity = b""
        if not identity:
            raise InvalidRequestError("failed to base64 decode the instance identity document")
    signature = b""
    if strings["signature"]:
        try:
            signature = b64decode_std(strings["signature"])
        except Base64Error:
            raise InvalidRequestError(
                "failed to base64 decode the SHA256 RSA signature of the instance identity "
                "document"
            ) from None
    pkcs7 = strings["pkcs7"]
    pair = "a tuple containing the instance identity document and its SHA256 RSA signature"
    if pkcs7 == "" and not identity and not signature:
        raise InvalidRequestError(f"either pkcs7 or {pair} needs to be provided")
    if pkcs7 != "" and identity and signature:
        raise InvalidRequestError(f"both pkcs7 and {pair} is supplied; provide only one")
    return Ec2LoginPayload(
        pkcs7=pkcs7,
        identity=identity,
        signature=signature,
        role=strings[F_ROLE],
        nonce=strings["nonce"] if "nonce" in data else None,
    )
