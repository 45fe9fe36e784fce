"""The reference server's metrics: :class:`PrometheusMetrics`, the core's
:class:`~aws_iam_backend.drivers.metrics.Metrics` on prometheus-client, served at
``GET /v1/sys/metrics?format=prometheus``.

Metrics (every label bounded, see :mod:`aws_iam_backend.drivers.metrics`):

- ``aws_iam_backend_logins_total{mount, role, outcome}``: logins (iam and ec2) by mount,
  role (``-`` unless the role exists) and outcome (``success`` or the error class).
- ``aws_iam_backend_login_refusals_total{kind}``: logins refused by a rate limit
  (``rate_limit``), for want of an outbound slot (``concurrency``), as a replayed signed
  request (``replay``), or for their challenge nonce (``challenge``).
- ``aws_iam_backend_sts_request_duration_seconds{outcome}``: GetCallerIdentity calls,
  retries included, by outcome (``success``, ``UpstreamThrottledError`` when STS
  throttles, ``UpstreamTimeoutError``, ``UpstreamError``, ``InvalidRequestError`` when
  STS refused the signed request, ...); its ``_count`` counts the outcomes.
- ``aws_iam_backend_outbound_requests_in_flight``: AWS calls (STS, IAM, EC2) holding an
  outbound slot now.
- ``aws_iam_backend_tokens_total{event}``: tokens ``issued``, ``renewed``, ``revoked``
  and ``expired`` (removed by tidy).
- ``aws_iam_backend_storage_operation_duration_seconds{op}`` and
  ``aws_iam_backend_storage_errors_total{op, error}``: calls that reach the store (not
  the per-process cache) by method (``read``, ``commit``, ``list``, ``expired``).

Pre-forked workers (``listener.workers`` > 1) share one listening socket, so a scrape is
answered by whichever worker accepts it. Each worker's own registry would make every
counter jump between the workers' values (a ``rate()`` reads those as resets), so the
workers run prometheus-client's multiprocess mode instead: :func:`~aws_iam_backend.server.
serve.serve_workers` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before it
forks, each worker writes its values to memory-mapped files there, and any worker's
scrape sums them all (the in-flight gauge counts live workers only). One process alone
keeps its metrics in memory. prometheus-client is imported only when a
:class:`PrometheusMetrics` is made: ``PROMETHEUS_MULTIPROC_DIR`` must be set before that.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aws_iam_backend.drivers.metrics import (
    CHALLENGE,
    EXPIRED,
    ISSUED,
    NO_METRICS,
    RATE_LIMITED,
    RENEWED,
    REPLAY,
    REVOKED,
    STS_BUSY,
    Metrics,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "aws_iam_backend_"
STORAGE_OPS = ("read", "commit", "list", "expired")
# Seconds. STS: a regional endpoint answers in tens of ms, a retried or throttled call
# takes seconds (sts_timeout defaults to 10 s). Storage: SQLite and a near PostgreSQL
# answer in well under a millisecond to a few.
STS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STORAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_log = logging.getLogger("aws_iam_backend.server")


@runtime_checkable
class MetricsExposition(Protocol):
    """Metrics that can render themselves for a scrape (``sys/metrics``)."""

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The current values and their content type, in the exposition format ``accept``
        (an HTTP ``Accept`` header) asks for: OpenMetrics, else Prometheus text 0.0.4."""
        ...


class PrometheusMetrics:
    """:class:`~aws_iam_backend.drivers.metrics.Metrics` on prometheus-client, in a
    registry of its own (:attr:`registry`), or in multiprocess mode when
    ``PROMETHEUS_MULTIPROC_DIR`` is set (see the module).

    The hot path takes no lock of its own: each label combination's child is looked up
    once and kept in a dict (bounded, as the labels are).
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_dir is not None and values.ValueClass is values.MutexValue:
            # prometheus-client picks its value class when first imported: imported before
            # the variable was set, it must pick again (every metric made from now on).
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._logins = Counter(
            PREFIX + "logins",
            "Logins (iam and ec2) by mount, role ('-' unless it exists) and outcome "
            "('success' or the error class).",
            ("mount", "role", "outcome"),
            registry=registry,
        )
        self._refusals = Counter(
            PREFIX + "login_refusals",
            "Logins refused by kind: rate_limit, concurrency (no outbound slot in time), "
            "replay (a signed request used before), challenge (the server nonce).",
            ("kind",),
            registry=registry,
        )
        self._sts = Histogram(
            PREFIX + "sts_request_duration_seconds",
            "GetCallerIdentity calls (retries included) by outcome ('success' or the error "
            "class: UpstreamThrottledError when STS throttles us).",
            ("outcome",),
            buckets=STS_BUCKETS,
            registry=registry,
        )
        self._in_flight = Gauge(
            PREFIX + "outbound_requests_in_flight",
            "Outbound AWS calls (STS, IAM, EC2) holding an outbound slot.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._tokens = Counter(
            PREFIX + "tokens",
            "Tokens issued, renewed, revoked, and expired (removed by tidy).",
            ("event",),
            registry=registry,
        )
        self._storage = Histogram(
            PREFIX + "storage_operation_duration_seconds",
            "Storage calls that reach the store, by operation.",
            ("op",),
            buckets=STORAGE_BUCKETS,
            registry=registry,
        )
        self._storage_errors = Counter(
            PREFIX + "storage_errors",
            "Storage calls that raised, by operation and error class (ConflictError: a "
            "conditional write that lost a race).",
            ("op", "error"),
            registry=registry,
        )
        # Each metric's children by label values; the fixed ones exist from the start, at 0.
        self._login_children: dict[tuple[str, ...], Any] = {}
        self._sts_children: dict[tuple[str, ...], Any] = {}
        self._storage_error_children: dict[tuple[str, ...], Any] = {}
        kinds = (RATE_LIMITED, STS_BUSY, REPLAY, CHALLENGE)
        self._refusal_children: dict[tuple[str, ...], Any] = {
            (kind,): self._refusals.labels(kind) for kind in kinds
        }
        self._token_children: dict[tuple[str, ...], Any] = {
            (event,): self._tokens.labels(event) for event in (ISSUED, RENEWED, REVOKED, EXPIRED)
        }
        self._storage_children: dict[tuple[str, ...], Any] = {
            (op,): self._storage.labels(op) for op in STORAGE_OPS
        }
        self._scrape_registry = self._make_scrape_registry()

    def _make_scrape_registry(self) -> CollectorRegistry:
        if self.multiprocess_dir is None:
            return self.registry
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        scrape = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(scrape, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return scrape

    def login(self, mount: str, role: str, outcome: str) -> None:
        _child(self._login_children, self._logins, mount, role, outcome).inc()

    def sts_call(self, seconds: float, outcome: str) -> None:
        _child(self._sts_children, self._sts, outcome).observe(seconds)

    def outbound(self, delta: int) -> None:
        self._in_flight.inc(delta)

    def refused(self, kind: str) -> None:
        _child(self._refusal_children, self._refusals, kind).inc()

    def token(self, event: str) -> None:
        _child(self._token_children, self._tokens, event).inc()

    def storage(self, op: str, seconds: float, error: str) -> None:
        _child(self._storage_children, self._storage, op).observe(seconds)
        if error:
            _child(self._storage_error_children, self._storage_errors, op, error).inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        return encoder(self._scrape_registry), content_type


def _child(children: dict[tuple[str, ...], Any], metric: Any, *labels: str) -> Any:
    """``metric``'s child for ``labels``, made once (``labels()`` takes a lock) and kept in
    ``children``."""
    child = children.get(labels)
    if child is None:
        child = children[labels] = metric.labels(*labels)
    return child


def server_metrics() -> Metrics:
    """The metrics of one server process: :class:`PrometheusMetrics`, or (prometheus-client
    not installed) none, with a warning."""
    try:
        return PrometheusMetrics()
    except ImportError:
        _log.warning("metrics disabled: pip install 'aws_iam_backend[server]' for them")
        return NO_METRICS


__all__ = ["MULTIPROC_ENV", "MetricsExposition", "PrometheusMetrics", "server_metrics"]
