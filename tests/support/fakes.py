"""Fakes for fault injection: record outbound calls, answer with canned responses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_iam_backend.io.protocols import AwsAccess
from aws_iam_backend.login.arn import IamEntity
from aws_iam_backend.login.messages import OutboundRequest, STSResponse
from aws_iam_backend.vault.tokens import TokenSpec

NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def gci_body(arn: str, user_id: str, account: str) -> bytes:
    return (
        f'<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult>'
        f"<Arn>{arn}</Arn><UserId>{user_id}</UserId><Account>{account}</Account>"
        "</GetCallerIdentityResult><ResponseMetadata><RequestId>r-1</RequestId>"
        "</ResponseMetadata></GetCallerIdentityResponse>"
    ).encode()


def ok_response(arn: str, user_id: str, account: str = "123456789012") -> STSResponse:
    return STSResponse(200, (("content-type", "text/xml"),), gci_body(arn, user_id, account))


class RecordingTransport:
    """Records every request; answers with ``responder(request)``."""

    def __init__(self, responder: Callable[[OutboundRequest], STSResponse] | None = None) -> None:
        self.requests: list[OutboundRequest] = []
        self.responder = responder
        self._lock = threading.Lock()

    def send(self, request: OutboundRequest, *, timeout: float, max_retries: int) -> STSResponse:
        with self._lock:
            self.requests.append(request)
        if self.responder is None:
            raise AssertionError("no outbound request was expected")
        return self.responder(request)


class FakeIam:
    """IAM lookups from a table; records calls."""

    def __init__(
        self, unique_ids: dict[str, str] | None = None, full_arns: dict[str, str] | None = None
    ) -> None:
        self.unique_ids = unique_ids or {}
        self.full_arns = full_arns or {}
        self.calls: list[tuple[str, str]] = []

    def unique_id(self, entity: IamEntity, access: AwsAccess) -> str:
        self.calls.append(("unique_id", entity.canonical_arn))
        return self.unique_ids[entity.canonical_arn]

    def full_arn(self, entity: IamEntity, access: AwsAccess) -> str:
        self.calls.append(("full_arn", entity.canonical_arn))
        return self.full_arns[entity.canonical_arn]


def token_spec(**changes: Any) -> TokenSpec:
    """A service token for ``alice`` at mount ``aws/``, 600 s (max 3600 s), issued now."""
    fields: dict[str, Any] = {
        "policies": ("default",),
        "token_policies": ("default",),
        "metadata": {},
        "internal_data": {},
        "display_name": "aws-alice",
        "ttl": 600,
        "max_ttl": 3600,
        "explicit_max_ttl": 0,
        "period": 0,
        "num_uses": 0,
        "bound_cidrs": (),
        "token_type": "service",
        "entity_id": "e-1",
        "mount": "aws/",
        "role_name": "alice",
        "issued_at": datetime.now(UTC),
    }
    fields.update(changes)
    return TokenSpec(**fields)
