"""Fuzzing the HTTP layer of a real dev server on loopback: nothing may produce a 5xx
(but 502, the API's answer when AWS cannot be reached, as it cannot here).

- A raw-socket fuzzer (always on, seeded, 300 requests): odd methods (``LIST`` too), paths,
  header names and values, ``Content-Length`` mismatches, chunked bodies, huge numbers,
  invalid UTF-8, lone surrogates, duplicate keys and deep nesting in JSON. Every answer is
  JSON (``errors`` or a valid envelope), every request the app answered has its audit record
  (and no request has two), and the server is healthy afterwards.
- Schemathesis against the OpenAPI document served at ``/v1/sys/openapi`` (positive and
  negative examples of every operation, root token, mount ``aws``; bounded, derandomized;
  skipped when schemathesis, from the ``test`` extra, is not installed):
  ``not_a_server_error``, and every body is JSON (but ``sys/metrics``'s exposition text).

``HTTP_FUZZ_CASES``, ``HTTP_FUZZ_EXAMPLES`` and ``HTTP_FUZZ_SEED`` make either run longer
or different.
"""

from __future__ import annotations

import json
import os
import random
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import pytest

from aws_iam_backend.server.api import MAX_BODY
from aws_iam_backend.server.serve import MALFORMED_MESSAGE
from tests.support.server import ROOT, DevServer
from tests.test_http_errors import RawReply, exchange

# Bounded for every run; raise them for a deeper local hunt.
CASES = int(os.environ.get("HTTP_FUZZ_CASES", "300"))
EXAMPLES = int(os.environ.get("HTTP_FUZZ_EXAMPLES", "5"))  # per operation and mode
SEED = int(os.environ.get("HTTP_FUZZ_SEED", "20261201"))
ENVELOPE_KEYS = {
    "request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings",
    "auth",
}  # fmt: skip
UPSTREAM_FAILED = 502
HEALTH_KEYS = {"initialized", "sealed", "version", "cluster_id"}


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, Path]]:
    """A dev server with an audit file and no AWS credentials (so no request can reach AWS:
    an IAM lookup a role write asks for fails at once with 502)."""
    directory = tmp_path_factory.mktemp("http-fuzz")
    audit = directory / "audit.log"
    with pytest.MonkeyPatch.context() as env:
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        server = DevServer(None, "--audit-file", str(audit), log_dir=directory)
    try:
        yield server, audit
    finally:
        server.stop()
    err = (directory / f"server-{server.port}.err").read_text()
    assert "Traceback" not in err
    assert "Exception in" not in err  # ASGI application / callback
    assert "internal error" not in err


# ------------------------------------------------------------------ the raw-socket fuzzer

PATHS = [
    "/v1/sys/health", "/v1/sys/auth", "/v1/sys/auth/fz", "/v1/sys/auth/fz2", "/v1/sys/openapi",
    "/v1/sys/audit-hash", "/v1/sys/audit-hash/file", "/v1/auth/aws/login", "/v1/auth/aws/role",
    "/v1/auth/aws/roles", "/v1/auth/aws/role/fz", "/v1/auth/aws/role/FZ",
    "/v1/auth/aws/config/client", "/v1/auth/aws/config/identity", "/v1/auth/aws/config/sts",
    "/v1/auth/aws/config/sts/123456789012",
    "/v1/auth/aws/challenge", "/v1/auth/aws/role/fz/tag", "/v1/auth/aws/config/certificates",
    "/v1/auth/aws/config/certificate/fz", "/v1/auth/aws/identity-accesslist",
    "/v1/auth/aws/identity-accesslist/i-0123456789abcdef0", "/v1/auth/aws/identity-whitelist/x",
    "/v1/auth/aws/roletag-denylist", "/v1/auth/aws/roletag-denylist/v1:n:r=fz:d=false:m=false:h",
    "/v1/auth/aws/roletag-blacklist/djE6bjpyPWZ6", "/v1/auth/aws/config/tidy/identity-accesslist",
    "/v1/auth/aws/config/tidy/roletag-blacklist", "/v1/auth/aws/tidy/identity-whitelist",
    "/v1/auth/aws/tidy/roletag-denylist", "/v1/auth/fz/role/x", "/v1/auth/token/lookup-self",
    "/v1/auth/token/lookup", "/v1/auth/token/renew-self", "/v1/auth/token/revoke-self",
    "/v1/auth/token/revoke-accessor", "/v1/auth/token/create", "/v1/nowhere", "/", "/v1", "/v1/",
    "*",
]  # fmt: skip
PATH_JUNK = [
    "%00", "%ff", "%2e%2e/", "../", "//", "%2F", "%25", "%e2%80%ae", "\u00e9", ";x", "%0d%0a",
    "x" * 2000, "%", "%zz", "?list=true", "?list=%ff", "?list=1&list=0", "?=&&", "#frag",
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE", "LIST", "HEAD", "PATCH", "OPTIONS", "TRACE", "get",
           "list", "FZZ", "CONNECT", "G(T", ""]  # fmt: skip
FIELDS = [
    "role", "type", "config", "description", "input", "token", "accessor", "increment",
    "iam_http_request_method", "iam_request_url", "iam_request_body", "iam_request_headers",
    "bound_iam_principal_arn", "auth_type", "token_ttl", "token_max_ttl", "token_num_uses",
    "token_bound_cidrs", "token_policies", "resolve_aws_unique_ids", "max_ttl", "ttl",
    "access_key", "secret_key", "sts_endpoint", "iam_alias", "sts_role", "nonce",
    "default_lease_ttl", "max_lease_ttl", "period", "policies", "pkcs7", "identity",
    "signature", "safety_buffer", "disable_periodic_tidy", "aws_public_cert", "role_tag",
    "instance_id", "allow_instance_migration", "disallow_reauthentication", "bound_ami_id",
]  # fmt: skip
RAW_VALUES = [
    "1" * 5000, "-" + "9" * 4400, "1e400", "-1e999", "1." + "1" * 5000, "NaN", "Infinity",
    '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', "[" * 3000 + "]" * 3000, "null", "true",
    "0", "-0", "9223372036854775808", "18446744073709551616", "1e308", "0.0000001", '"1h"',
    '"-1"', '"99999999999999999999999999d"', '"1h2562047h"', '"a,b,,c"', "[]", "{}",
    '{"a": {"b": []}}', '["x", 1, null]', '"\u2028"', '"' + "x" * 3000 + '"',
    '"0.0.0.0/0"', '"10.0.0.0/33"', '"arn:aws:iam::123456789012:*"', '"*"',
    '"YWJj"', '"!!notbase64"', '"eyJhIjpbMV19"', '{"Authorization": ["x"]}',
]  # fmt: skip


ODD_LENGTHS = [b"abc", b"-1", b"1e3", b"0x10", b" 5", b"9" * 30, b"9" * 5000, b"2, 3", b"\xb2"]

SANE_VALUES = [
    '"aws"', '"iam"', '"ec2"', '"fz"', '"arn:aws:iam::123456789012:user/fz"', '"default"',
    "3600", '"1h"', '"30m"', "true", "false", "1", '"10.0.0.0/8"', '["a", "b"]', '"unique_id"',
    '"full_arn"', '"http://127.0.0.1:9"', '"POST"', '"QWN0aW9uPUdldENhbGxlcklkZW50aXR5"',
    '{"type": "aws"}', '{"default_lease_ttl": "1h", "max_lease_ttl": "2h"}', '"root"',
]  # fmt: skip


@attrs.frozen
class FuzzCase:
    """One generated request: its bytes, and what the fuzzer knows about it."""

    raw: bytes
    method: str
    target: str
    head: bool
    incomplete: bool  # the declared Content-Length is more than what is sent


def _json_body(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.08:
        return rng.randbytes(rng.randint(1, 64))  # not JSON, maybe not UTF-8
    if kind < 0.14:
        return rng.choice(
            [b"[1]", b'"x"', b"null", b"{", b"{}}", b'{"a":1,"a":2}', b"\xef\xbb\xbf{}"]
        )
    items = []
    for _ in range(rng.randint(0, 6)):
        key = (
            rng.choice(FIELDS)
            if rng.random() < 0.85
            else rng.choice(["\\ud800", "", "\u00e9", "x" * 300])
        )
        pick = rng.random()
        if pick < 0.9:
            value = rng.choice(RAW_VALUES if pick < 0.5 else SANE_VALUES)
        else:
            value = json.dumps(rng.choice(FIELDS))
        items.append(f'"{key}": {value}')
    if rng.random() < 0.1 and items:
        items.append(items[0])  # a duplicate key
    text = "{" + ", ".join(items) + "}"
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:
        data = data[:-1] + b'"\xff\xfe"}'  # invalid UTF-8 inside
    return data


def _target(rng: random.Random) -> str:
    path = rng.choice(PATHS)
    if rng.random() < 0.3:
        path += rng.choice(PATH_JUNK)
    if rng.random() < 0.1:
        path = path.replace("/", "//", 1)
    return path


def _headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    if rng.random() < 0.97:
        headers.append((b"Host", b"127.0.0.1"))
    token = rng.random()
    if token < 0.6:
        headers.append((b"X-Vault-Token", ROOT.encode()))
    elif token < 0.7:
        headers.append(
            (b"X-Vault-Token", rng.choice([b"", b" ", b"\xff\xfe", b"hvs." + b"A" * 500]))
        )
    elif token < 0.8:
        headers.append(
            (b"Authorization", rng.choice([b"Bearer " + ROOT.encode(), b"Bearer", b"Basic x"]))
        )
    if rng.random() < 0.3:
        headers.append(
            (b"X-Forwarded-For", rng.choice([b"10.0.0.1", b"x, y", b"::1, 999.1.1.1", b""]))
        )
    if rng.random() < 0.3:
        headers.append((b"Content-Type", rng.choice([b"application/json", b"text/plain", b"\xff"])))
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(
            [b"X-Fz", b"x-fz-" + str(rng.randint(0, 9)).encode(), b"Expect", b"Connection"]
        )
        value = rng.choice(
            [b"1", b"\xe9\xff", b" padded ", b"close", b"keep-alive", b"100-continue", b"a" * 3000]
        )
        headers.append((name, value))
    if rng.random() < 0.05:
        headers.append(
            rng.choice([(b"Bad Name", b"x"), (b"X-Nul", b"a\x00b"), (b"", b"x"), (b"X:Y", b"z")])
        )
    return headers


def generate(rng: random.Random) -> FuzzCase:
    method = (
        rng.choice(METHODS) if rng.random() < 0.5 else rng.choice(["POST", "PUT", "LIST", "GET"])
    )
    target = _target(rng)
    body = _json_body(rng) if method.upper() in ("POST", "PUT") or rng.random() < 0.2 else b""
    headers = _headers(rng)
    framing = rng.random()
    incomplete = False
    extra = b""
    if framing < 0.72:
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing < 0.8:
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = (
            b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]) if part)
            + b"0\r\n\r\n"
        )
    elif framing < 0.84:  # Content-Length too short: the rest must not parse as a request
        headers.append((b"Content-Length", str(max(len(body) - 3, 0)).encode()))
        extra = b"{junk\r\n\r\n"
    elif framing < 0.87 and body:
        headers.append((b"Content-Length", str(len(body) + 5).encode()))
        incomplete = True
    elif framing < 0.93:
        declared = rng.choice(ODD_LENGTHS)
        headers.append((b"Content-Length", declared))
        number = declared.strip()
        incomplete = number.isdigit() and len(number) < 9 and len(body) < int(number) <= MAX_BODY
    elif framing < 0.96:
        headers += [(b"Content-Length", str(len(body)).encode()), (b"Content-Length", b"7")]
    else:
        headers += [
            (b"Content-Length", str(len(body)).encode()),
            (b"Transfer-Encoding", b"chunked"),
        ]
    version = (
        b"HTTP/1.1"
        if rng.random() < 0.95
        else rng.choice([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 x", b""])
    )
    line = method.encode() + b" " + target.encode("utf-8") + b" " + version
    raw = (
        line
        + b"\r\n"
        + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
        + b"\r\n"
        + body
        + extra
    )
    return FuzzCase(raw, method, target, method == "HEAD", incomplete)


# Vault answers 500 when a role tag given to the deny list does not parse or verify
# (``pathRoletagDenyListUpdate`` returns parseAndVerifyRoleTagValue's error as is); so do
# we, with Vault's texts (aws_iam_backend.ec2.roletag). Only these 500s are let through.
_ROLE_TAG_PATH = re.compile(r"/?(v1/)?auth/[^/]+/roletag-(denylist|blacklist)/.+", re.DOTALL)
_ROLE_TAG_500 = re.compile(
    r"invalid tag|invalid role tag version|missing role name|missing nonce"
    r"|role tag signature verification failed|unrecognized item \".*\" in tag"
    r"|entry not found for \".*\"|strconv\.ParseBool: parsing \".*\": invalid syntax"
    r"|time: .*",
    re.DOTALL,
)


def vault_role_tag_500(operation: str, path: str, status: int, error: object) -> bool:
    """A deny-list write (``path`` percent-decoded) refused with 500 and one of Vault's
    role tag errors (``error``: the text, or the ``errors`` list of the body)."""
    if isinstance(error, list):
        error = error[0] if len(error) == 1 else None
    return (
        status == 500
        and operation.lower() in ("post", "put", "update")
        and _ROLE_TAG_PATH.fullmatch(path.partition("?")[0]) is not None
        and isinstance(error, str)
        and _ROLE_TAG_500.fullmatch(error) is not None
    )


def _audit_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _wait_for_lines(path: Path, count: int, timeout: float = 5.0) -> int:
    import time

    deadline = time.monotonic() + timeout
    while (lines := _audit_lines(path)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return lines


def _check_reply(case: FuzzCase, reply: RawReply) -> bool:
    """Asserts the answer is well formed; returns whether it came from the app (not the
    HTTP parser).

    No 5xx, but for 502 (an upstream call failed: a role write's IAM lookup, with no AWS
    credentials here), which is the API's documented answer, not a server error."""
    if reply.body == b"" and (case.head or reply.status == 204):
        return True
    document = reply.json()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not vault_role_tag_500(case.method, unquote(case.target), reply.status, errors):
        assert reply.status < 500 or reply.status == UPSTREAM_FAILED, (case, reply)
    assert isinstance(document, dict), (case, reply)
    if reply.status >= 400:
        assert isinstance(document["errors"], list), (case, reply)
        assert all(isinstance(e, str) for e in document["errors"]), (case, reply)
        return document != {"errors": [MALFORMED_MESSAGE]}
    assert (
        document.keys() >= ENVELOPE_KEYS or document.keys() >= HEALTH_KEYS or "openapi" in document
    ), (case, reply)
    return True


def _is_health(target: str) -> bool:
    return unquote(target.partition("?")[0]) == "/v1/sys/health"


def test_raw_socket_fuzzer_finds_no_server_error(dev_server: tuple[DevServer, Path]) -> None:
    """Audit records: one per request the app answered (written before the answer goes
    out), one per request whose client left mid-body (written when the app sees it go), and
    at most one per parser refusal (none if the parser refused the head; one if it refused a broken
    body of a request the app had started on)."""
    server, audit = dev_server
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    first = _audit_lines(audit)
    certain = uncertain = resets = 0
    for number in range(CASES):
        case = generate(rng)
        before = _audit_lines(audit)
        timeout = 0.5 if case.incomplete else 10.0
        audited = not _is_health(case.target)
        try:
            reply = exchange(server.port, case.raw, timeout=timeout, head=case.head)
        except ConnectionResetError:  # it refused and closed with our bytes unread
            uncertain += audited
            resets += 1
            continue
        if reply is None:
            # only a request whose body never came in full may go unanswered
            assert case.incomplete, (number, case)
            certain += audited
            continue
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        if _check_reply(case, reply):
            certain += audited
            if audited:  # written before the answer
                assert _audit_lines(audit) > before, (number, case, reply)
        else:
            uncertain += audited
    lines = _wait_for_lines(audit, first + certain) - first
    assert certain <= lines <= certain + uncertain, (certain, uncertain, lines)
    assert resets <= CASES * 0.05
    assert sum(statuses.values()) >= CASES * 0.9
    assert len(statuses) >= 5  # the fuzzer reaches more than one kind of answer
    with urllib.request.urlopen(server.address + "/v1/sys/health", timeout=5) as response:
        assert response.status == 200
    assert server.process.poll() is None
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert all(
        r["status"] < 500
        or r["status"] == UPSTREAM_FAILED
        or vault_role_tag_500(r["operation"], r["path"], r["status"], r["error"])
        for r in records
    )


# ------------------------------------------------------------------ schemathesis


def test_schemathesis_finds_no_server_error(dev_server: tuple[DevServer, Path]) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error

    server, _audit = dev_server
    schema = schemathesis.openapi.from_url(server.address + "/v1/sys/openapi")
    failures: list[str] = []
    operations = examples = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            path_parameters = {"mount": "aws"} if "{mount}" in operation.path else None
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            run = _schemathesis_runner(server, failures, not_a_server_error)
            test = settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=strategy)(run))
            try:
                test()
            except Unsatisfiable:  # nothing to make invalid (negative mode): nothing to send
                continue
            examples += 1
    assert operations >= 20
    assert examples >= operations
    assert failures == []


def _schemathesis_runner(
    server: DevServer, failures: list[str], check: Any
) -> Callable[[Any], None]:
    import requests

    def run(case: Any) -> None:
        try:
            response = case.call(
                base_url=server.address, headers={"X-Vault-Token": ROOT}, timeout=10
            )
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL):
            return  # the client would not send it: nothing reached the server
        if case.path == "/v1/sys/metrics" and response.status_code == 200:
            assert response.headers["content-type"][0].startswith("text/plain")
            return  # the metrics exposition is text, not JSON
        if response.content and vault_role_tag_500(
            case.method, unquote(case.formatted_path), response.status_code,
            json.loads(response.content).get("errors"),
        ):  # fmt: skip
            return
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
            )
        try:
            case.validate_response(response, checks=[check])
        except Exception as exc:  # a check failure: record it, keep fuzzing the rest
            failures.append(f"{case.method} {case.formatted_path}: {exc}"[:500])
        if response.content:
            assert response.headers["content-type"] == ["application/json"]
            json.loads(response.content)

    return run
