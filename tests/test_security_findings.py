"""Security review findings 4-6: endpoint URLs redacted in messages and audit records,
root token strength and guessing throttle, ``X-Vault-Token`` normalisation."""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aws_iam_backend import BackendSettings
from aws_iam_backend.cli import _parser, _server_config
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer
from aws_iam_backend.drivers.audit import MemoryAuditSink
from aws_iam_backend.errors import InvalidRequestError, PermissionDeniedError, RateLimitedError
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.server._sync.authenticator import Authenticator
from aws_iam_backend.server.auth import request_token, root_token_weakness
from aws_iam_backend.server.config import ConfigError, config_from_document
from aws_iam_backend.server.guessing import KEY_BYTES, FailedCheckThrottle
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.vault.config import redact_url, validate_endpoint, write_client_config
from aws_iam_backend.vault.tokens import TokenRecord
from tests.support.drivers import Backend, VaultAPI, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response, token_spec

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
ROOT = "root-" + "Zq7vK2mXw9LpR4tN8bYc3HdF"
ARN = "arn:aws:iam::123456789012:user/alice"
SOURCE = "10.1.2.3"


class FixedClock:
    def now(self) -> datetime:
        return NOW


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_api(sink: MemoryAuditSink | None = None) -> VaultAPI:
    factory = functools.partial(
        Backend,
        transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
        iam=FakeIam(),
        clock=FixedClock(),
    )
    return VaultAPI(
        storage=MemoryStorage(),
        root_token=ROOT,
        backend_factory=factory,
        clock=FixedClock(),
        settings=BackendSettings(),
        audit=sink,
    )


def send(
    api: VaultAPI,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    remote_addr: str = SOURCE,
) -> HTTPResponse:
    raw = b"" if body is None else json.dumps(body).encode()
    return api.handle(HTTPRequest(method, path, "", headers or {}, raw, remote_addr=remote_addr))


def status_of(api: VaultAPI, token: str, *, remote_addr: str = SOURCE) -> int:
    """The status of ``auth/token/lookup-self`` with ``X-Vault-Token: token``."""
    headers = {"x-vault-token": token}
    return send(
        api, "GET", "/v1/auth/token/lookup-self", headers=headers, remote_addr=remote_addr
    ).status


def issue(issuer: StoreTokenIssuer, **changes: Any) -> str:
    token = issuer.issue(token_spec(issued_at=NOW, **changes)).client_token
    assert token
    return token


class CountingIssuer:
    """The API's issuer, counting lookups (to show a request never reached one)."""

    def __init__(self, inner: StoreTokenIssuer) -> None:
        self.inner = inner
        self.lookups = 0

    def lookup(self, token: str) -> TokenRecord | None:
        self.lookups += 1
        return self.inner.lookup(token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def count_lookups(api: VaultAPI, monkeypatch: pytest.MonkeyPatch) -> CountingIssuer:
    counting = CountingIssuer(api.issuer)
    monkeypatch.setattr(api._auth, "issuer", counting)
    return counting


# ------------------------------------------------ 4. endpoint URLs are never quoted whole

LEAKY_URL = "https://AKIAEXAMPLE:s3cr3tvalue@sts.example.com/?X-Amz-Credential=zzz"
LEAKS = ("s3cr3tvalue", "AKIAEXAMPLE", "zzz")


@pytest.mark.parametrize("field", ["endpoint", "iam_endpoint", "sts_endpoint"])
def test_endpoint_with_credentials_is_refused_without_quoting_them(field: str) -> None:
    # Old code: the message (and so the audit record's "error") quoted the URL whole.
    sink = MemoryAuditSink()
    api = make_api(sink)
    root = {"x-vault-token": ROOT}
    assert send(api, "POST", "/v1/sys/auth/aws", {"type": "aws"}, headers=root).status == 204
    response = send(api, "POST", "/v1/auth/aws/config/client", {field: LEAKY_URL}, headers=root)
    assert response.status == 400
    errors = json.loads(response.body)["errors"]
    assert errors == [
        f'invalid {field} "https://***@sts.example.com/?***": a query or fragment is not allowed'
    ]
    record = sink.records[-1]
    assert record["path"] == "auth/aws/config/client"
    assert record["status"] == 400
    assert record["error"] == errors[0]
    text = response.body.decode() + json.dumps(sink.records)
    for secret in LEAKS:
        assert secret not in text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://AKIAEXAMPLE:s3cr3tvalue@sts.example.com", "userinfo is not allowed"),
        ("https://AKIAEXAMPLE:s3cr3tvalue@sts.example.com/x", "userinfo is not allowed"),
        ("http://AKIAEXAMPLE:s3cr3tvalue@sts.example.com", "userinfo is not allowed"),
        ("AKIAEXAMPLE:s3cr3tvalue@sts.example.com", "must be an https URL"),
        ("https://AKIAEXAMPLE:s3cr/3tvalue@sts.example.com", "not a valid URL"),
        ("https://AKIAEXAMPLE:s3cr3tvalue@sts.example.com:99999", "not a valid URL"),
        ("https://AKIAEXAMPLE:s3cr3tvalue@sts.example.com#zzz", "query or fragment"),
        ("https://AKIAEXAMPLE:s3cr3tvalue\u00e9@sts.example.com", "printable ASCII"),
        ("ftp://AKIAEXAMPLE:s3cr3tvalue@sts.example.com?zzz", "query or fragment"),
    ],
)
def test_every_endpoint_refusal_redacts(value: str, reason: str) -> None:
    # Old code quoted each of these whole, credentials included.
    for field in ("endpoint", "iam_endpoint", "sts_endpoint"):
        with pytest.raises(InvalidRequestError) as error:
            write_client_config(None, {field: value}, validate_headers=tuple)
        message = error.value.message
        assert message.startswith(f'invalid {field} "')
        assert reason in message
        for secret in LEAKS:
            assert secret not in message
        assert "***" in message


def test_redact_url_forms() -> None:
    assert redact_url(LEAKY_URL) == "https://***@sts.example.com/?***"
    assert redact_url("https://sts.amazonaws.com/") == "https://sts.amazonaws.com/"
    assert redact_url("https://h/#frag") == "https://h/?***"
    assert redact_url("https://u:p@ss@h/a") == "https://***@h/a"
    assert redact_url("u:p@h://x@host") == "***@host"  # not a scheme: redacted from the start
    assert redact_url("user:pw@host") == "***@host"
    assert redact_url("") == ""
    # What validate_endpoint accepts comes back unchanged.
    assert validate_endpoint("sts_endpoint", "https://[::1]:8443") == "https://[::1]:8443"


# --------------------------------------------------------- 5a. production root token rules

BASE: dict[str, Any] = {"listener": {"tls_disable": True}, "root_token": {"env": "ROOT_TOKEN"}}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("x", "shorter than 24 characters"),
        ("s3cret-but-short", "shorter than 24 characters"),
        ("a" * 64, "fewer than 8 distinct characters"),
        ("changeme" * 3, "fewer than 8 distinct characters"),
        ("abcdefgh" + "a" * 16, "estimated entropy of 41 bits, under 64"),
        ("Zq7vK2mXw9Lp R4tN8bYc3HdF", "other than visible ASCII"),
        ("Zq7vK2mXw9Lp\u00e9R4tN8bYc3HdF", "other than visible ASCII"),
    ],
)
def test_production_config_refuses_weak_root_tokens(token: str, reason: str) -> None:
    # Old code accepted every non-empty token, even one character.
    with pytest.raises(ConfigError) as error:
        config_from_document(BASE, {"ROOT_TOKEN": token})
    message = str(error.value)
    assert message.startswith("root_token: the token in environment variable ROOT_TOKEN ")
    assert reason in message
    assert token not in message


def test_weak_root_token_file_is_named_not_quoted(tmp_path: Path) -> None:
    path = tmp_path / "root-token"
    path.write_text("from-file\n")
    with pytest.raises(ConfigError) as error:
        config_from_document({**BASE, "root_token": {"file": str(path)}}, {})
    message = str(error.value)
    assert f"the token in file {path} is shorter than 24 characters" in message
    assert "from-file" not in message


@pytest.mark.parametrize(
    "token",
    [
        secrets.token_urlsafe(18),
        secrets.token_urlsafe(32),
        secrets.token_hex(16),
        str(uuid.uuid4()),
        "hvs." + secrets.token_urlsafe(24),
        "/p7Qm+Zk2VbN0xR9cT4wYhL8sJ3fD6gA1eU5iO=",  # openssl rand -base64 30
    ],
)
def test_random_root_tokens_are_accepted_but_not_shortened(token: str) -> None:
    # Old code also accepted the token cut to 23 characters (or to 1).
    assert root_token_weakness(token) is None
    assert config_from_document(BASE, {"ROOT_TOKEN": token}).root_token == token
    with pytest.raises(ConfigError, match="shorter than 24 characters"):
        config_from_document(BASE, {"ROOT_TOKEN": token[:23]})


def test_dev_mode_root_token_stays_free() -> None:
    # The production rule (which old code lacked) is not applied to --dev-root-token-id.
    parser = _parser()
    args = parser.parse_args(["server", "--dev", "--dev-root-token-id", "root"])
    assert _server_config(args, parser).root_token == "root"
    with pytest.raises(ConfigError, match="shorter than 24"):
        config_from_document(BASE, {"ROOT_TOKEN": "root"})


# ------------------------------------------------------ 5b. failed token checks throttled


def test_failed_token_checks_are_throttled_per_source() -> None:
    # Old code answered every wrong guess with a 403, as fast as they came.
    api = make_api()
    for n in range(10):
        assert status_of(api, f"hvs.guess-{n}") == 403
    throttled = send(
        api, "GET", "/v1/auth/token/lookup-self", headers={"x-vault-token": "hvs.guess-10"}
    )
    assert throttled.status == 429
    assert ("Retry-After", "1") in throttled.headers
    assert json.loads(throttled.body) == {
        "errors": ["too many failed token checks from this address; retry later"]
    }
    assert status_of(api, "hvs.guess-11", remote_addr="10.1.2.4") == 403  # another source


def test_a_throttled_source_learns_nothing_about_any_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Once throttled, even the root token gets the 429: the token is not looked at, so the
    # answer says nothing about it (old code: no throttle at all, so the 11th is a 403).
    api = make_api()
    login = issue(api.issuer)
    for n in range(10):
        assert status_of(api, f"hvs.guess-{n}") == 403
    counting = count_lookups(api, monkeypatch)
    assert status_of(api, ROOT) == 429
    assert status_of(api, login) == 429
    assert status_of(api, "hvs.guess-10") == 429
    assert counting.lookups == 0
    assert status_of(api, ROOT, remote_addr="10.9.9.9") == 200


def test_successful_checks_never_count() -> None:
    # Old code: no throttle, so the 11th failure below was a 403 too.
    api = make_api()
    login = issue(api.issuer)
    for _ in range(50):
        assert status_of(api, ROOT) == 200
        assert status_of(api, login) == 200
    assert len(api._auth.throttle) == 0  # successes leave no entry
    for n in range(10):
        assert status_of(api, login) == 200
        assert status_of(api, f"hvs.guess-{n}") == 403
    assert status_of(api, "hvs.guess-10") == 429


def test_retrying_one_dead_token_is_not_guessing() -> None:
    # A client retrying with its revoked token costs its address one failed check, not one
    # per retry; guessing (different tokens) is what is throttled. Old code: no throttle.
    api = make_api()
    dead = issue(api.issuer)
    api.issuer.revoke(dead)
    for _ in range(100):
        assert status_of(api, dead) == 403
    for n in range(9):
        assert status_of(api, f"hvs.guess-{n}") == 403
    assert status_of(api, "hvs.guess-9") == 429
    # Only the last few distinct failures are remembered: cycling through more is guessing.
    clock = FakeMonotonic()
    auth, _ = make_authenticator(clock)
    cycle = [f"hvs.cycle-{n}" for n in range(5)]
    for token in cycle + cycle:
        with pytest.raises(PermissionDeniedError):
            auth.caller(token, SOURCE)
    with pytest.raises(RateLimitedError):
        auth.caller(cycle[0], SOURCE)


def test_ipv6_sources_are_grouped_by_64() -> None:
    # Old code: no throttle, so the 11th guess from the same /64 was a 403.
    api = make_api()
    for n in range(10):
        assert status_of(api, f"hvs.guess-{n}", remote_addr=f"2001:db8:1:2::{n + 1:x}") == 403
    assert status_of(api, "hvs.guess-10", remote_addr="2001:db8:1:2:ffff::1") == 429
    assert status_of(api, "hvs.guess-11", remote_addr="2001:db8:1:3::1") == 403
    assert status_of(api, "hvs.guess-12", remote_addr="::ffff:10.1.2.3") == 403
    assert status_of(api, "hvs.guess-13", remote_addr=SOURCE) == 403  # same as ::ffff:10.1.2.3


def make_authenticator(
    clock: FakeMonotonic, **throttle: Any
) -> tuple[Authenticator, StoreTokenIssuer]:
    issuer = StoreTokenIssuer(MemoryStorage(), clock=FixedClock())
    return Authenticator(
        ROOT, issuer, throttle=FailedCheckThrottle(clock=clock, **throttle)
    ), issuer


def test_throttle_refills_one_per_second() -> None:
    clock = FakeMonotonic()
    auth, _ = make_authenticator(clock)
    for n in range(10):
        with pytest.raises(PermissionDeniedError):
            auth.caller(f"hvs.guess-{n}", SOURCE)
    with pytest.raises(RateLimitedError) as error:
        auth.caller("hvs.guess-10", SOURCE)
    assert error.value.retry_after == 1
    clock.now += 0.5
    with pytest.raises(RateLimitedError):
        auth.caller("hvs.guess-11", SOURCE)
    clock.now += 0.5
    with pytest.raises(PermissionDeniedError):
        auth.caller("hvs.guess-12", SOURCE)  # one more after a second
    with pytest.raises(RateLimitedError):
        auth.caller("hvs.guess-13", SOURCE)
    clock.now += 10
    assert auth.caller(ROOT, SOURCE).is_root
    assert len(auth.throttle) == 0  # full again: the entry is gone


def test_root_only_checks_count_guesses_but_not_live_tokens() -> None:
    # Old code: root() took no address and never throttled.
    clock = FakeMonotonic()
    auth, issuer = make_authenticator(clock)
    login = issue(issuer)
    for _ in range(20):
        with pytest.raises(PermissionDeniedError):
            auth.root(login, SOURCE)  # a live token, just not root: no guess
    for n in range(10):
        with pytest.raises(PermissionDeniedError):
            auth.root(f"guess-{n}", SOURCE)
    with pytest.raises(RateLimitedError):
        auth.root(ROOT, SOURCE)
    assert auth.root(ROOT).is_root  # without an address: not throttled
    assert auth.root(ROOT, "10.1.2.4").is_root


def test_throttle_table_is_bounded_and_keyed_by_digest() -> None:
    clock = FakeMonotonic()
    auth, _ = make_authenticator(clock, max_sources=3)
    for n in range(50):
        with pytest.raises(PermissionDeniedError):
            auth.caller("hvs.guess", f"10.0.0.{n}")
    assert len(auth.throttle) == 3
    for address in ("10.0.0.1", "x" * 100_000, "2001:db8::1%" + "e" * 500):
        assert len(FailedCheckThrottle.key(address)) == KEY_BYTES


def test_root_token_comparison_is_by_fixed_size_digest() -> None:
    # Constant time in content and length: both sides are HMAC-SHA-256 digests (old code
    # compared the raw bytes, whose length compare_digest's timing shows).
    auth, _ = make_authenticator(FakeMonotonic())
    assert len(auth._root) == 32
    assert auth.is_root(ROOT)
    assert not auth.is_root(ROOT + "x")
    assert not auth.is_root(ROOT[:-1])
    assert not auth.is_root("")


# ---------------------------------------------------------- 6. X-Vault-Token normalisation


@pytest.mark.parametrize(
    "space", ["\u00a0", "\u0085", "\x1c", "\x1d", "\x1e", "\x1f", "\u2028", "\u3000", "\x0b"]
)
@pytest.mark.parametrize("where", ["before", "after", "both"])
def test_only_http_whitespace_is_stripped(
    space: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Old code: str.strip() removed each of these, so the root token was accepted (200).
    api = make_api()
    counting = count_lookups(api, monkeypatch)
    token = {"before": space + ROOT, "after": ROOT + space, "both": space + ROOT + space}[where]
    assert status_of(api, token) == 403
    bearer = {"authorization": f"Bearer {token}"}
    assert send(api, "GET", "/v1/sys/auth", headers=bearer).status == 403
    assert request_token({"x-vault-token": token}) is None
    assert counting.lookups == 0  # refused before any lookup
    # HTTP whitespace (spaces and tabs) around the token is still dropped.
    assert status_of(api, f" {ROOT}\t") == 200
    assert status_of(api, f"\t {ROOT}  ") == 200
    bearer = {"authorization": f"Bearer  {ROOT}\t"}
    assert send(api, "GET", "/v1/sys/auth", headers=bearer).status == 200
    assert request_token({"x-vault-token": " \t", "authorization": f"Bearer {ROOT}"}) == ROOT


@pytest.mark.parametrize(
    "token", ["hvs.\u00e9t\u00e9", "hvs.\u00ff" + "a" * 30, "hvs.a\x00b", "hvs.\ud800"]
)
def test_non_ascii_token_reaches_no_lookup(token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Old code looked each of these up in the token store.
    api = make_api()
    counting = count_lookups(api, monkeypatch)
    assert status_of(api, token) == 403
    assert counting.lookups == 0
    assert request_token({"x-vault-token": token}) is None
    # Not a guess either: it does not spend the source's allowance of failed checks.
    assert len(api._auth.throttle) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/sys/auth"), ("POST", "/v1/sys/auth/x"), ("GET", "/v1/auth/aws/role/dev")],
)
def test_guessing_the_root_token_on_admin_paths_is_throttled(method: str, path: str) -> None:
    api = VaultAPI(storage=MemoryStorage(), root_token="r" * 8 + "Zq7vK2mXw9LpR4tN8bYc")
    api.mounts.ensure("aws/")
    statuses = []
    for guess in range(15):
        headers = {"x-vault-token": f"hvs.guess-{guess:04d}"}
        body = b'{"type": "aws"}' if method == "POST" else b""
        reply = api.handle(HTTPRequest(method, path, "", headers, body, remote_addr="192.0.2.9"))
        statuses.append(reply.status)
    assert statuses[:10] == [403] * 10
    assert set(statuses[10:]) == {429}
