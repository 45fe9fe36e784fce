"""Metrics: the core's events (a recording :class:`Metrics`), the Prometheus exposition at
``GET /v1/sys/metrics`` scraped with prometheus-client's own parser, its access rules, label
bounds, and multiprocess mode under pre-forked workers."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from aws_iam_backend import MemoryStorage, RateLimits
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer
from aws_iam_backend.drivers.ratelimit import AsyncConcurrencyLimiter, ConcurrencyLimiter
from aws_iam_backend.drivers.shapes import BackendSettings
from aws_iam_backend.errors import (
    InvalidRequestError,
    RateLimitedError,
    StorageUnavailableError,
)
from aws_iam_backend.io.clock import SystemClock
from aws_iam_backend.io.protocols import Put
from aws_iam_backend.io.storage._sync.metered import MeteredStorage
from aws_iam_backend.login.messages import STSResponse
from aws_iam_backend.server.config import ConfigError, config_from_document
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.server.metrics import PrometheusMetrics
from tests.support.drivers import Backend, VaultAPI, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response, token_spec
from tests.support.moto_server import Keys, free_port
from tests.support.payloads import botocore_payload
from tests.support.server import wait_healthy

ROOT = "root-token"
ARN = "arn:aws:iam::123456789012:user/alice"
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "secret")
THROTTLED = STSResponse(
    400,
    (("content-type", "text/xml"),),
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    b"<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"</ErrorResponse>",
)
LOGINS = "aws_iam_backend_logins_total"
ONCE = pytest.mark.parametrize("driver", ["sync"], indirect=True)
"""For tests that build no backend or API: one run is enough."""


class Recorder:
    """A :class:`~aws_iam_backend.drivers.metrics.Metrics` that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def login(self, mount: str, role: str, outcome: str) -> None:
        self.events.append(("login", mount, role, outcome))

    def sts_call(self, seconds: float, outcome: str) -> None:
        assert seconds >= 0
        self.events.append(("sts", outcome))

    def outbound(self, delta: int) -> None:
        self.events.append(("outbound", delta))

    def refused(self, kind: str) -> None:
        self.events.append(("refused", kind))

    def token(self, event: str) -> None:
        self.events.append(("token", event))

    def storage(self, op: str, seconds: float, error: str) -> None:
        assert seconds >= 0
        self.events.append(("storage", op, error))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


# ------------------------------------------------------------------ the core's events


def make_backend(recorder: Recorder, responder: Any = None, **settings: Any) -> Any:
    backend = Backend(
        storage=MemoryStorage(),
        transport=RecordingTransport(responder or (lambda _r: ok_response(ARN, "AIDAALICE"))),
        iam=FakeIam(),
        settings=BackendSettings(**settings),
        metrics=recorder,
    )
    backend.write_role("alice", {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False})
    return backend


def test_a_login_reports_its_sts_call_slot_token_and_outcome() -> None:
    recorder = Recorder()
    backend = make_backend(recorder)
    backend.login(botocore_payload(KEYS, role="Alice"))
    assert recorder.events == [
        ("outbound", 1),
        ("sts", "success"),
        ("outbound", -1),
        ("token", "issued"),
        ("login", "aws/", "alice", "success"),
    ]


def test_failed_logins_label_only_roles_that_exist() -> None:
    recorder = Recorder()
    backend = make_backend(recorder, responder=lambda _r: ok_response(ARN + "x", "AIDAX"))
    for role in ("nobody", "x" * 5000, "Alice", ""):
        with pytest.raises(InvalidRequestError):
            backend.login(botocore_payload(KEYS, role=role) if role else {"role": 5})
    assert recorder.of("login") == [
        ("login", "aws/", "-", "InvalidRequestError"),  # no such role
        ("login", "aws/", "-", "InvalidRequestError"),  # no such role, never a label
        ("login", "aws/", "alice", "InvalidRequestError"),  # exists: not bound to that ARN
        ("login", "aws/", "-", "InvalidRequestError"),  # malformed payload
    ]


def test_refusals_are_counted_by_kind() -> None:
    recorder = Recorder()
    backend = make_backend(
        recorder, rate_limits=RateLimits(per_source_rate=0.01, per_source_burst=2)
    )
    backend.write_client_config({"replay_protection": True})
    payload = botocore_payload(KEYS, role="alice")
    backend.login(payload, remote_addr="10.0.0.1")
    with pytest.raises(Exception, match="replay"):
        backend.login(payload, remote_addr="10.0.0.1")
    with pytest.raises(RateLimitedError):
        backend.login(botocore_payload(KEYS, role="alice"), remote_addr="10.0.0.1")
    assert recorder.of("refused") == [("refused", "replay"), ("refused", "rate_limit")]
    assert [e[3] for e in recorder.of("login")] == [
        "success", "InvalidRequestError", "RateLimitedError",
    ]  # fmt: skip


def test_challenge_refusals_are_counted() -> None:
    recorder = Recorder()
    backend = make_backend(recorder)
    backend.write_client_config({"require_challenge": True})
    with pytest.raises(Exception, match="missing challenge nonce"):
        backend.login(botocore_payload(KEYS, role="alice"))
    assert recorder.of("refused") == [("refused", "challenge")]


def test_throttled_sts_is_its_own_outcome() -> None:
    recorder = Recorder()
    backend = make_backend(recorder, responder=lambda _r: THROTTLED)
    with pytest.raises(Exception, match="throttling"):
        backend.login(botocore_payload(KEYS, role="alice"))
    assert recorder.of("sts") == [("sts", "UpstreamThrottledError")]
    assert recorder.of("login") == [("login", "aws/", "alice", "UpstreamThrottledError")]
    assert recorder.of("outbound") == [("outbound", 1), ("outbound", -1)]


@ONCE
def test_sync_concurrency_limiter_reports_slots_and_refusals() -> None:
    recorder = Recorder()
    limiter = ConcurrencyLimiter(1, wait=0.01, metrics=recorder)
    with limiter.slot(), pytest.raises(RateLimitedError), limiter.slot():
        pass
    with ConcurrencyLimiter(0, metrics=recorder).slot():
        pass
    assert recorder.events == [
        ("outbound", 1), ("refused", "concurrency"), ("outbound", -1),
        ("outbound", 1), ("outbound", -1),
    ]  # fmt: skip


@ONCE
def test_async_concurrency_limiter_reports_slots_and_refusals() -> None:
    recorder = Recorder()
    limiter = AsyncConcurrencyLimiter(1, wait=0.01, metrics=recorder)

    async def run() -> None:
        async with limiter.slot():
            with pytest.raises(RateLimitedError):
                async with limiter.slot():
                    pass

    asyncio.run(run())
    assert recorder.events == [("outbound", 1), ("refused", "concurrency"), ("outbound", -1)]


@ONCE
def test_token_events() -> None:
    recorder = Recorder()
    clock = SystemClock()
    issuer = StoreTokenIssuer(MemoryStorage(), clock=clock, metrics=recorder)
    renewable = issuer.issue(token_spec(ttl=60, max_ttl=3600))
    assert renewable.client_token is not None
    issuer.extend(renewable.client_token, ttl=120, now=clock.now())
    issuer.revoke(renewable.client_token)
    issuer.revoke(renewable.client_token)  # gone already: nothing happened
    once = issuer.issue(token_spec(num_uses=1))
    assert once.client_token is not None
    issuer.use(once.client_token)
    issuer.issue(token_spec(ttl=1))
    issuer.tidy(now=clock.now().replace(year=clock.now().year + 1))
    assert [e[1] for e in recorder.of("token")] == [
        "issued", "renewed", "revoked", "issued", "revoked", "issued", "expired",
    ]  # fmt: skip


@ONCE
def test_metered_storage_reports_each_call_and_its_error() -> None:
    recorder = Recorder()
    store = MeteredStorage(MemoryStorage(), recorder)
    store.commit([Put("a", {"x": 1}, expires_at=1.0)])
    assert store.read("a") is not None
    assert store.list("") == ["a"]
    assert [d.key for d in store.expired("", 2.0, 10)] == ["a"]

    class Down(MemoryStorage):
        def read(self, key: str) -> Any:
            raise StorageUnavailableError("storage unavailable")

    failing = MeteredStorage(Down(), recorder)
    with pytest.raises(StorageUnavailableError):
        failing.read("a")
    assert recorder.of("storage") == [
        ("storage", "commit", ""), ("storage", "read", ""), ("storage", "list", ""),
        ("storage", "expired", ""), ("storage", "read", "StorageUnavailableError"),
    ]  # fmt: skip


# ------------------------------------------------------------------ the HTTP endpoint


def make_api(
    metrics: Any = None, responder: Any = None, **options: Any
) -> tuple[VaultAPI, RecordingTransport]:
    transport = RecordingTransport(responder or (lambda _r: ok_response(ARN, "AIDAALICE")))
    api = VaultAPI(
        storage=MemoryStorage(),
        root_token=ROOT,
        backend_factory=functools.partial(Backend, transport=transport, iam=FakeIam()),
        metrics=PrometheusMetrics() if metrics is None else metrics,
        **options,
    )
    api.mounts.ensure("aws")
    return api, transport


def call(
    api: VaultAPI,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["x-vault-token"] = token
    data = b"" if body is None else json.dumps(body).encode()
    response: HTTPResponse = api.handle(
        HTTPRequest(method, path, query, all_headers, data, remote_addr="127.0.0.1")
    )
    return response


def add_role(api: VaultAPI) -> None:
    role = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}
    assert call(api, "POST", "/v1/auth/aws/role/alice", role, token=ROOT).status == 204


def login(api: VaultAPI, role: str = "alice") -> HTTPResponse:
    return call(api, "POST", "/v1/auth/aws/login", botocore_payload(KEYS, role=role))


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, parsed by prometheus-client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(api: VaultAPI, token: str | None = ROOT) -> Samples:
    reply = call(api, "GET", "/v1/sys/metrics", token=token, query="format=prometheus")
    assert reply.status == 200, reply.body
    assert dict(reply.headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(reply.body.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_endpoint_is_scraped_and_login_counters_move() -> None:
    api, _ = make_api()
    add_role(api)
    before = scrape(api)
    assert value(before, LOGINS, mount="aws/", role="alice", outcome="success") == 0
    assert value(before, "aws_iam_backend_login_refusals_total", kind="replay") == 0
    assert login(api).status == 200
    assert login(api).status == 200
    assert login(api, role="nobody").status == 400
    after = scrape(api)
    assert value(after, LOGINS, mount="aws/", role="alice", outcome="success") == 2
    assert value(after, LOGINS, mount="aws/", role="-", outcome="InvalidRequestError") == 1
    assert value(after, "aws_iam_backend_tokens_total", event="issued") == 2
    sts = "aws_iam_backend_sts_request_duration_seconds"
    assert value(after, sts + "_count", outcome="success") == 3
    assert value(after, sts + "_bucket", outcome="success", le="+Inf") == 3
    assert value(after, "aws_iam_backend_outbound_requests_in_flight") == 0
    storage = "aws_iam_backend_storage_operation_duration_seconds_count"
    assert value(after, storage, op="read") > value(before, storage, op="read")
    assert value(after, storage, op="commit") > value(before, storage, op="commit")
    labels = {dict(key[1]).get("role") for key in after if key[0] == LOGINS}
    assert labels == {"alice", "-"}


def test_token_endpoints_move_the_token_counters() -> None:
    api, _ = make_api()
    add_role(api)
    token = json.loads(login(api).body)["auth"]["client_token"]
    assert call(api, "POST", "/v1/auth/token/renew-self", {}, token=token).status == 200
    assert call(api, "POST", "/v1/auth/token/revoke-self", token=token).status == 204
    samples = scrape(api)
    for event in ("issued", "renewed", "revoked"):
        assert value(samples, "aws_iam_backend_tokens_total", event=event) == 1, event


def test_throttling_and_refusals_show_in_the_scrape() -> None:
    api, _ = make_api(responder=lambda _r: THROTTLED)
    add_role(api)
    assert login(api).status == 503
    samples = scrape(api)
    sts = "aws_iam_backend_sts_request_duration_seconds_count"
    assert value(samples, sts, outcome="UpstreamThrottledError") == 1
    assert value(samples, LOGINS, mount="aws/", role="alice", outcome="UpstreamThrottledError")


def test_metrics_need_the_root_token() -> None:
    api, _ = make_api()
    add_role(api)
    token = json.loads(login(api).body)["auth"]["client_token"]
    for caller in (None, token, "wrong"):
        reply = call(api, "GET", "/v1/sys/metrics", token=caller, query="format=prometheus")
        assert reply.status == 403
    assert call(api, "POST", "/v1/sys/metrics", {}, token=ROOT).status == 405


def test_unauthenticated_metrics_access() -> None:
    api, _ = make_api(unauthenticated_metrics_access=True)
    add_role(api)
    assert login(api).status == 200
    samples = scrape(api, token=None)
    assert value(samples, LOGINS, mount="aws/", role="alice", outcome="success") == 1


def test_metrics_formats() -> None:
    api, _ = make_api()
    for query in ("", "format=json", "format="):
        reply = call(api, "GET", "/v1/sys/metrics", token=ROOT, query=query)
        assert reply.status == 400
        assert "unknown: use format=prometheus" in json.loads(reply.body)["errors"][0]
    accept = {"accept": "application/openmetrics-text; version=1.0.0"}
    reply = call(api, "GET", "/v1/sys/metrics", token=ROOT, headers=accept)
    assert reply.status == 200
    assert dict(reply.headers)["Content-Type"].startswith("application/openmetrics-text")
    assert reply.body.endswith(b"# EOF\n")


def test_no_metrics_configured_is_refused_as_vault_does() -> None:
    transport = RecordingTransport()
    api = VaultAPI(
        storage=MemoryStorage(),
        root_token=ROOT,
        backend_factory=functools.partial(Backend, transport=transport, iam=FakeIam()),
    )
    reply = call(api, "GET", "/v1/sys/metrics", token=ROOT, query="format=prometheus")
    assert reply.status == 400
    assert json.loads(reply.body) == {"errors": ["prometheus is not enabled"]}


def test_login_labels_stay_bounded_under_random_role_names() -> None:
    api, _ = make_api()
    add_role(api)
    for index in range(40):
        assert login(api, role=f"attacker-{index}").status == 400
    samples = scrape(api)
    roles = {dict(key[1])["role"] for key in samples if key[0] == LOGINS}
    assert roles == {"-"}
    assert value(samples, LOGINS, mount="aws/", role="-", outcome="InvalidRequestError") == 40


def test_storage_errors_are_counted_by_class() -> None:
    class Flaky(MemoryStorage):
        fail = False

        def list(self, prefix: str) -> list[str]:
            if self.fail:
                raise StorageUnavailableError("storage unavailable")
            return super().list(prefix)

    storage = Flaky()
    metrics = PrometheusMetrics()
    api = VaultAPI(
        storage=storage, root_token=ROOT, metrics=metrics,
        backend_factory=functools.partial(Backend, transport=RecordingTransport(), iam=FakeIam()),
    )  # fmt: skip
    api.mounts.ensure("aws")
    Flaky.fail = True
    try:
        assert call(api, "LIST", "/v1/auth/aws/role", token=ROOT).status == 503
    finally:
        Flaky.fail = False
    samples = scrape(api)
    errors = "aws_iam_backend_storage_errors_total"
    assert value(samples, errors, op="list", error="StorageUnavailableError") == 1


# ------------------------------------------------------------------ configuration


@ONCE
def test_listener_telemetry_config() -> None:
    base: dict[str, Any] = {
        "listener": {"tls_disable": True},
        "root_token": {"env": "T"},
    }
    environ = {"T": "a-long-random-root-token-Zq7vK2mXw9LpR4tN8bYc"}
    assert not config_from_document(base, environ).unauthenticated_metrics_access
    opened = {**base, "listener": {**base["listener"], "telemetry": {
        "unauthenticated_metrics_access": True}}}  # fmt: skip
    assert config_from_document(opened, environ).unauthenticated_metrics_access
    for telemetry, message in (
        ({"unauthenticated_metrics_access": "yes"}, "expected true or false"),
        ({"prometheus_retention_time": "24h"}, "unknown key"),
        ("on", "must be a table"),
    ):
        bad = {**base, "listener": {**base["listener"], "telemetry": telemetry}}
        with pytest.raises(ConfigError, match=message):
            config_from_document(bad, environ)


# ------------------------------------------------------------------ pre-forked workers


@ONCE
def test_worker_processes_report_one_set_of_metrics(tmp_path: Path) -> None:
    """Two workers share the socket: every scrape, whichever worker answers it, shows the
    logins of both (prometheus-client's multiprocess mode), and the metrics directory the
    server made is gone when it stops."""
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        f"""
log_level = "warning"
[listener]
address = "127.0.0.1:{port}"
tls_disable = true
workers = 2
[storage]
url = "sqlite:///{tmp_path / "s.db"}"
[root_token]
env = "TEST_ROOT_TOKEN"
"""
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    root = "prod-root-Zq7vK2mXw9LpR4tN8bYc"
    env = {**os.environ, "TEST_ROOT_TOKEN": root, "TMPDIR": str(scratch)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "aws_iam_backend", "server", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    headers = {"X-Vault-Token": root, "Connection": "close"}
    try:
        wait_healthy(address, process)
        assert next(p.name for p in scratch.iterdir()).startswith("aws-iam-backend-metrics-")
        enabled = requests.post(
            f"{address}/v1/sys/auth/aws", json={"type": "aws"}, headers=headers, timeout=10
        )
        assert enabled.status_code == 204
        for _ in range(20):  # fresh connections: spread over both workers
            refused = requests.post(
                f"{address}/v1/auth/aws/login", json={"role": "x"}, headers=headers, timeout=10
            )
            assert refused.status_code == 400
        seen = set()
        for _ in range(10):
            scraped = requests.get(
                f"{address}/v1/sys/metrics?format=prometheus", headers=headers, timeout=10
            )
            assert scraped.status_code == 200
            samples = parse(scraped.text)
            seen.add(value(samples, LOGINS, mount="aws/", role="-", outcome="InvalidRequestError"))
        assert seen == {20.0}
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 5
    while list(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(scratch.iterdir()) == []
