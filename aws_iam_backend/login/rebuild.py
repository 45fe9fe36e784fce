"""Validate a decoded login payload against the configuration and rebuild the STS request.

:func:`build_outbound` runs Vault's configuration-dependent checks (spec 2.3) in Vault's
order, always (an absent ``config/client`` is ``ClientConfig()``), each followed by our
stricter rules on the same subject (rules 1-6 and 12 of "Rules stricter than Vault" in
``docs/security.md``). Nothing here
performs I/O; the clock is the ``now`` argument.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import attrs

from aws_iam_backend.errors import InternalError, InvalidRequestError
from aws_iam_backend.login.decode import GET_CALLER_IDENTITY, LoginPayload, echo, parse_form
from aws_iam_backend.login.endpoints import (
    StsHost,
    is_listed_region,
    lookup_sts_host,
    partition_of_host,
    partition_of_region,
    regional_sts_host,
)
from aws_iam_backend.login.headers import HeaderMap, short_quote
from aws_iam_backend.login.messages import OutboundRequest, SigV4Info
from aws_iam_backend.login.sigv4 import (
    AuthorizationParts,
    PresignedParts,
    check_freshness,
    check_scope_date,
    header_sigv4_info,
    parse_amz_date,
    parse_authorization_header,
    parse_presigned_query,
    parse_signed_headers,
    presigned_sigv4_info,
)
from aws_iam_backend.vault.config import ClientConfig
from aws_iam_backend.vault.gocompat import QueryError, canonical_header_key, is_token, parse_query

SERVER_ID_HEADER = "X-Vault-AWS-IAM-Server-ID"
STS_VERSION = "2011-06-15"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_MAX_WINDOW = timedelta(minutes=15)

DEFAULT_ALLOWED_HEADERS: tuple[str, ...] = (
    "Authorization",
    "Content-Type",
    "Content-Length",
    "Host",
    "User-Agent",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
    "X-Amz-User-Agent",
    "Amz-Sdk-Invocation-Id",
    "Amz-Sdk-Request",
    "X-Vault-Aws-Iam-Server-Id",
    "X-Aws-Iam-Backend-Nonce",  # ours: the server challenge (aws_iam_backend.login.challenge)
    "Accept",
    "Accept-Encoding",
)
ACCEPT_VALUES = frozenset({"*/*", "text/xml", "application/xml"})
ACCEPT_ENCODING_VALUES = frozenset({"identity"})

FORBIDDEN_EXTRA_HEADERS: frozenset[str] = frozenset(
    {
        # framing, hop-by-hop and format-changing headers
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Expect",
        "Upgrade",
        "Te",
        "Trailer",
        "Content-Encoding",
        "X-Amz-Target",
        "Cookie",
        "Forwarded",
        "X-Http-Method-Override",
        "X-Http-Method",
        "X-Method-Override",
        # headers with fixed handling that a config may not re-open
        "Host",
        "Authorization",
        "Content-Length",
        "Accept",
        "Accept-Encoding",
    }
)
FORBIDDEN_EXTRA_PREFIXES: tuple[str, ...] = ("Proxy-", "X-Forwarded-")

PRESIGN_QUERY_KEYS: tuple[str, ...] = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
)
ALLOWED_QUERY_KEYS: frozenset[str] = frozenset({"Action", "Version", *PRESIGN_QUERY_KEYS})


def _not_over_window(_: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if not timedelta(0) < value <= _MAX_WINDOW:
        raise ValueError(f"{attribute.name} must be greater than 0 and at most 15 minutes")


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be positive")


@attrs.frozen
class RequestPolicy:
    """Our own limits on the client's signed request (never wider than AWS's)."""

    max_age: timedelta = attrs.field(default=timedelta(minutes=15), validator=_not_over_window)
    max_future_skew: timedelta = attrs.field(
        default=timedelta(minutes=5), validator=_not_over_window
    )
    max_header_value_bytes: int = attrs.field(default=8192, validator=_positive)
    max_headers: int = attrs.field(default=32, validator=_positive)


def _is_forbidden_extra(name: str) -> bool:
    return name in FORBIDDEN_EXTRA_HEADERS or name.startswith(FORBIDDEN_EXTRA_PREFIXES)


def validate_allowed_header_names(names: Iterable[str]) -> tuple[str, ...]:
    """Check ``allowed_sts_header_values`` for a config write; canonical, de-duplicated names.

    Raises :class:`InvalidRequestError` for a non-token name or a forbidden one.
    """
    result: list[str] = []
    for raw in names:
        name = raw.strip()
        if name == "":
            continue
        if not is_token(name):
            raise InvalidRequestError(
                f"invalid header name in allowed_sts_header_values: {short_quote(name)}"
            )
        canonical = canonical_header_key(name)
        if _is_forbidden_extra(canonical):
            raise InvalidRequestError(
                f"header {canonical} may not be added to allowed_sts_header_values"
            )
        if canonical not in result:
            result.append(canonical)
    return tuple(result)


# --------------------------------------------------------------------------- URL


@attrs.frozen
class _ClientUrl:
    host: str
    raw_query: str
    entry: StsHost | None  # None when the host is the configured endpoint's host


@attrs.frozen
class _Endpoint:
    scheme: str
    netloc: str
    host: str


def _configured_endpoint(config: ClientConfig) -> _Endpoint | None:
    if config.sts_endpoint == "":
        return None
    scheme, sep, rest = config.sts_endpoint.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    netloc = netloc.rpartition("@")[2]
    if sep == "" or scheme.lower() not in ("http", "https") or netloc == "":
        raise InternalError("invalid sts_endpoint in configuration")
    host = netloc[: netloc.find("]") + 1] if netloc.startswith("[") else netloc.partition(":")[0]
    return _Endpoint(scheme.lower(), netloc, host)


def _url_error(detail: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid iam_request_url: {detail}")


def _check_client_url(payload: LoginPayload, configured: _Endpoint | None) -> _ClientUrl:
    url = payload.url
    prefix = "https://"
    if not url.startswith(prefix):
        raise _url_error("scheme must be https")
    rest = url[len(prefix) :]
    cut = len(rest)
    for mark in "/?#":
        pos = rest.find(mark)
        if pos != -1:
            cut = min(cut, pos)
    authority, rest = rest[:cut], rest[cut:]
    if "#" in rest:
        raise _url_error("fragment not allowed")
    path, question, raw_query = rest.partition("?")
    if "@" in authority:
        raise _url_error("userinfo not allowed")
    if ":" in authority or "[" in authority or "]" in authority:
        raise _url_error("explicit port or IP literal not allowed")
    if authority == "":
        raise _url_error("missing host")
    if path not in ("", "/"):
        raise _url_error("path must be /")
    if payload.method == "POST" and question:
        raise _url_error("POST request must not have a query string")
    if payload.method == "GET" and not question:
        raise _url_error("GET request must have a query string")
    host = authority
    entry = lookup_sts_host(host)
    if entry is None and (configured is None or host != configured.host):
        raise _url_error(f"host {short_quote(host)} is not an allowed STS endpoint")
    if configured is not None and entry is not None:
        pinned = partition_of_host(configured.host)
        if pinned is not None and pinned != entry.partition:
            raise _url_error("host is not in the partition of the configured STS endpoint")
    return _ClientUrl(host=host, raw_query=raw_query, entry=entry)


def _query_pairs(client: _ClientUrl, method: str) -> list[tuple[str, str]]:
    if method != "GET":
        return []
    try:
        return parse_query(client.raw_query)
    except QueryError as exc:
        raise _url_error(str(exc)) from None


# --------------------------------------------------------------------------- body


def _check_body(payload: LoginPayload) -> None:
    if payload.method == "GET":
        if payload.body != b"":
            raise InvalidRequestError("iam_request_body must be empty for GET requests")
        return
    try:
        pairs = parse_form(payload.body)
    except QueryError as exc:  # pragma: no cover - decode_login already rejected it
        raise InvalidRequestError(str(exc)) from None
    actions = [value for key, value in pairs if key == "Action"]
    versions = [value for key, value in pairs if key == "Version"]
    if actions != [GET_CALLER_IDENTITY]:
        raise InvalidRequestError("iam request body must contain Action=GetCallerIdentity once")
    if len(versions) > 1 or any(v != STS_VERSION for v in versions):
        raise InvalidRequestError(f"iam request body may only contain Version={STS_VERSION}")
    if len(pairs) != 1 + len(versions):  # pragma: no cover - decode_login already rejected it
        raise InvalidRequestError("iam request body is invalid")


# --------------------------------------------------------------------------- signing mode


def _is_presigned(pairs: Sequence[tuple[str, str]]) -> bool:
    keys = {canonical_header_key(key) for key, _ in pairs}
    return any(canonical_header_key(k) in keys for k in PRESIGN_QUERY_KEYS)


def _authorization(headers: HeaderMap) -> AuthorizationParts | None:
    values = headers.values("Authorization")
    if not values:
        return None
    if len(values) != 1 or len(headers.spellings("Authorization")) != 1:
        raise InvalidRequestError("invalid request header: Authorization")
    return parse_authorization_header(values[0])


def _first_query_value(pairs: Sequence[tuple[str, str]], key: str) -> str:
    for k, v in pairs:
        if k == key:
            return v
    return ""


# --------------------------------------------------------------------------- Vault 2.3.1


def _check_server_id(
    payload: LoginPayload, config: ClientConfig, pairs: Sequence[tuple[str, str]]
) -> None:
    expected = config.iam_server_id_header_value
    if expected == "":
        return

    def fail(reason: str) -> InvalidRequestError:
        return InvalidRequestError(f"error validating {SERVER_ID_HEADER} header: {reason}")

    provided = ",".join(payload.headers.values(SERVER_ID_HEADER))
    if provided == "":
        raise fail(f'missing header "{SERVER_ID_HEADER}"')
    if provided != expected:
        raise fail(f'expected "{expected}" but got {_quoted_echo(provided)}')
    if payload.method == "GET" and _is_presigned(pairs):
        signed_text = _first_query_value(pairs, "X-Amz-SignedHeaders")
        signed = parse_signed_headers(signed_text) if signed_text else ()
    else:
        if not payload.headers.values("Authorization"):
            raise fail("missing Authorization header")
        parts = _authorization(payload.headers)
        signed = parts.signed_headers if parts is not None else ()
    if SERVER_ID_HEADER.lower() not in signed:
        raise fail("vault header wasn't signed")


def _quoted_echo(text: str, limit: int = 64) -> str:
    if len(text) <= limit and text.isascii() and text.isprintable() and '"' not in text:
        return f'"{text}"'
    return short_quote(text, limit)


# --------------------------------------------------------------------------- Vault 2.3.2


_DEFAULT_ALLOWED = frozenset(DEFAULT_ALLOWED_HEADERS)


def _allowed_headers(config: ClientConfig) -> frozenset[str]:
    if not config.allowed_sts_header_values:
        return _DEFAULT_ALLOWED
    return _allowed_with(tuple(config.allowed_sts_header_values))


@functools.lru_cache(maxsize=64)  # keyed by the configuration's (admin-written) names
def _allowed_with(names: tuple[str, ...]) -> frozenset[str]:
    extra = set()
    for name in names:
        canonical = canonical_header_key(name.strip())
        if is_token(canonical) and not _is_forbidden_extra(canonical):
            extra.add(canonical)
    return _DEFAULT_ALLOWED | extra


def _header_error(name: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid request header: {echo(name)}")


def _valid_value(value: str, limit: int) -> bool:
    return (
        len(value) <= limit
        and value.isascii()
        and value.isprintable()  # with isascii: every character in 0x20..0x7E
        and value == value.strip(" ")
    )


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip(" ").lower()


def _check_headers(
    payload: LoginPayload, config: ClientConfig, policy: RequestPolicy, client: _ClientUrl
) -> dict[str, str]:
    headers = payload.headers
    if len(headers) > policy.max_headers:
        raise InvalidRequestError(f"too many request headers (at most {policy.max_headers})")
    allowed = _allowed_headers(config)
    # A name can be repeated (in any letter case) only if some entry came from more than
    # one raw name; otherwise only non-token names could be, and those are refused first.
    entries = headers.entries
    repeated = set(headers.repeated_names()) if len(headers.raw_names) != len(entries) else set()
    limit = policy.max_header_value_bytes
    single: dict[str, str] = {}
    for name, values in entries:
        if name not in allowed:  # every allowed name is a token
            if not is_token(name):
                raise InvalidRequestError(f"invalid request header: {short_quote(name)}")
            raise _header_error(name)
        if name in repeated or len(values) != 1:
            raise _header_error(name)
        value = values[0]
        if not _valid_value(value, limit):
            raise InvalidRequestError(f"invalid value for request header: {name}")
        single[name] = value
    if "Accept" in single and single["Accept"] not in ACCEPT_VALUES:
        raise InvalidRequestError("invalid value for request header: Accept")
    if "Accept-Encoding" in single and single["Accept-Encoding"] not in ACCEPT_ENCODING_VALUES:
        raise InvalidRequestError("invalid value for request header: Accept-Encoding")
    if "Host" in single and single["Host"] != client.host:
        raise InvalidRequestError("Host header does not match the iam_request_url host")
    if "Content-Length" in single and single["Content-Length"] != str(len(payload.body)):
        raise InvalidRequestError("Content-Length header does not match the body length")
    content_type = single.get("Content-Type")
    if content_type is not None and _media_type(content_type) != FORM_MEDIA_TYPE:
        raise InvalidRequestError(f"Content-Type must be {FORM_MEDIA_TYPE}")
    if payload.method == "POST" and content_type is None:
        raise InvalidRequestError(f"missing Content-Type header ({FORM_MEDIA_TYPE} required)")
    return single


# --------------------------------------------------------------------------- Vault 2.3.3


def _check_query(pairs: Sequence[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for key, value in pairs:
        folded = key.lower()
        if folded in seen or key not in ALLOWED_QUERY_KEYS:
            raise InvalidRequestError(f"invalid request query param: {echo(key)}")
        seen.add(folded)
        if key == "Version" and value != STS_VERSION:
            raise InvalidRequestError(f"query param Version must be {STS_VERSION}")


# --------------------------------------------------------------------------- SigV4


def _check_signature(
    payload: LoginPayload,
    single: dict[str, str],
    pairs: Sequence[tuple[str, str]],
    now: datetime,
    policy: RequestPolicy,
) -> SigV4Info:
    presigned = payload.method == "GET" and _is_presigned(pairs)
    if presigned:
        if "Authorization" in single or "X-Amz-Date" in single:
            raise InvalidRequestError(
                "request must be signed either in the Authorization header or in the query "
                "string, not both"
            )
        parts: PresignedParts = parse_presigned_query(pairs)
        info = presigned_sigv4_info(parts)
    else:
        # _check_headers left one value per name, none repeated in any letter case, so
        # the Authorization value (if any) is the one _authorization would find.
        authorization = single.get("Authorization")
        header_parts = None if authorization is None else parse_authorization_header(authorization)
        if header_parts is None:
            raise InvalidRequestError("request is not signed: missing Authorization header")
        if "X-Amz-Date" not in single:
            raise InvalidRequestError("missing X-Amz-Date header")
        if "x-amz-date" not in header_parts.signed_headers:
            raise InvalidRequestError("invalid SigV4 SignedHeaders: x-amz-date must be signed")
        info = header_sigv4_info(header_parts, parse_amz_date(single["X-Amz-Date"]))
    present = {name.lower() for name in single}
    for name in info.signed_headers:
        if name == "host" or (name == "content-length" and name not in present):
            continue
        if name not in present:
            raise InvalidRequestError(
                f"signed header missing from iam_request_headers: {echo(name)}"
            )
    check_scope_date(info.scope_date, info.request_time)
    check_freshness(
        info.request_time,
        now,
        max_age=policy.max_age,
        max_future=policy.max_future_skew,
        expires=info.expires,
    )
    return info


# --------------------------------------------------------------------------- Vault 2.3.6


def _client_region(payload: LoginPayload, pairs: Sequence[tuple[str, str]]) -> str:
    if payload.method == "GET" and _is_presigned(pairs):
        return parse_presigned_query(pairs).region
    parts = _authorization(payload.headers)
    if parts is None:
        raise InvalidRequestError("region missing from Authorization header")
    return parts.region


def _check_region(
    info: SigV4Info,
    client: _ClientUrl,
    configured: _Endpoint | None,
    config: ClientConfig,
) -> None:
    region = info.region
    if not is_listed_region(region):
        raise InvalidRequestError(f"credential scope region {echo(region)} is not a known region")
    region_partition = partition_of_region(region)
    entry = client.entry
    if entry is not None and not entry.is_global and entry.region != region:
        raise InvalidRequestError("credential scope region does not match the iam_request_url host")
    if entry is not None and entry.is_global and region_partition != entry.partition:
        raise InvalidRequestError(
            "credential scope region is not in the partition of the iam_request_url host"
        )
    if config.use_sts_region_from_client:
        return
    if configured is not None:
        destination = partition_of_host(configured.host)
    else:
        destination = entry.partition if entry is not None else None
    if destination is not None and destination != region_partition:
        raise InvalidRequestError(
            "credential scope region is not valid for the STS endpoint's partition"
        )


# --------------------------------------------------------------------------- build


def _outbound_headers(headers: HeaderMap) -> tuple[tuple[str, str], ...]:
    dropped = {"Host", "Content-Length", "Accept-Encoding"}
    kept = [(name, values[0]) for name, values in headers if name not in dropped]
    kept.append(("Accept-Encoding", "identity"))
    return tuple(kept)


def build_outbound(
    payload: LoginPayload,
    config: ClientConfig,
    *,
    now: datetime,
    policy: RequestPolicy = RequestPolicy(),
) -> OutboundRequest:
    """Validate ``payload`` against ``config`` and rebuild the GetCallerIdentity request.

    Order: our URL and body rules (after Vault's URL/body checks in ``decode_login``);
    Vault's server-ID check; Vault's header allowlist then ours; Vault's GET query
    allowlist then ours; ``use_sts_region_from_client``; SigV4 shape, signed headers,
    dates and freshness; scope region against host and partition; destination.
    """
    configured = _configured_endpoint(config)
    client = _check_client_url(payload, configured)
    pairs = _query_pairs(client, payload.method)
    _check_body(payload)
    _check_server_id(payload, config, pairs)
    single = _check_headers(payload, config, policy, client)
    _check_query(pairs)

    destination: str | None = None
    if config.use_sts_region_from_client:
        region = _client_region(payload, pairs)
        regional = regional_sts_host(region)
        if regional is None:
            raise InvalidRequestError(
                f"unable to get regional STS endpoint for region: {echo(region)}"
            )
        destination = f"https://{regional}"

    info = _check_signature(payload, single, pairs, now, policy)
    _check_region(info, client, configured, config)

    if destination is None:
        if configured is not None:
            destination = f"{configured.scheme}://{configured.netloc}"
        elif (
            client.entry is not None
            and client.entry.is_global
            and (info.region != client.entry.region)
        ):
            destination = f"https://{regional_sts_host(info.region)}"
        else:
            destination = f"https://{client.host}"
    url = destination + "/"
    if payload.method == "GET":
        url += "?" + client.raw_query
    return OutboundRequest(
        method=payload.method,
        url=url,
        host=client.host,
        headers=_outbound_headers(payload.headers),
        body=payload.body,
        sigv4=info,
    )
