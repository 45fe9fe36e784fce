"""VaultAPI, its WSGI and ASGI adapters, and PrefixedStorage: paths, methods, statuses,
auth rules, envelopes, size limits and X-Forwarded-For trust (STS and IAM faked)."""

from __future__ import annotations

import asyncio
import functools
import io
import json
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from aws_iam_backend import MemoryStorage
from aws_iam_backend.drivers.audit import MemoryAuditSink
from aws_iam_backend.errors import ConflictError, PermissionDeniedError
from aws_iam_backend.io.protocols import ABSENT, Check, Delete, Operation, Put, Storage
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage._sync.prefixed import PrefixedStorage
from aws_iam_backend.server.api import MAX_BODY
from aws_iam_backend.server.asgi import Message, make_asgi_app
from aws_iam_backend.server.client_ip import client_ip, parse_networks
from aws_iam_backend.server.messages import HTTPRequest, HTTPResponse
from aws_iam_backend.server.openapi import OPENAPI
from aws_iam_backend.server.wsgi import make_wsgi_app
from tests.support.drivers import (  # noqa: F401
    ASYNC_ONLY,
    Backend,
    VaultAPI,
    asgi_target,
    driver,
    raising_backend,
)
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import Keys
from tests.support.payloads import botocore_payload

ROOT = "root-token"
ARN = "arn:aws:iam::123456789012:user/alice"
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "secret")
ENVELOPE_KEYS = {
    "request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings",
    "auth",
}  # fmt: skip


def make_api(
    storage: Storage | None = None, trusted: Sequence[str] = (), coherence_interval: float = 0.25
) -> VaultAPI:
    factory = functools.partial(
        Backend,
        transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
        iam=FakeIam(),
    )
    api = VaultAPI(
        storage=storage or MemoryStorage(),
        root_token=ROOT,
        trusted_proxies=trusted,
        backend_factory=factory,
        coherence_interval=coherence_interval,
    )
    api.mounts.ensure("aws")
    return api


@pytest.fixture
def api() -> VaultAPI:
    return make_api()


class Reply:
    def __init__(self, response: HTTPResponse) -> None:
        self.status = response.status
        self.headers = dict(response.headers)
        self.raw = response.body
        self.json: Any = json.loads(response.body) if response.body else None

    @property
    def errors(self) -> list[str]:
        assert self.headers["Content-Type"] == "application/json"
        errors: list[str] = self.json["errors"]
        return errors


def call(
    api: VaultAPI,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    remote: str = "127.0.0.1",
    raw: bytes | None = None,
) -> Reply:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["x-vault-token"] = token
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return Reply(
        api.handle(HTTPRequest(method, path, query, all_headers, data, remote_addr=remote))
    )


def add_role(api: VaultAPI, mount: str = "aws", **fields: Any) -> None:
    body = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False, **fields}
    assert call(api, "POST", f"/v1/auth/{mount}/role/alice", body, token=ROOT).status == 204


def login(api: VaultAPI, mount: str = "aws", **kwargs: Any) -> Reply:
    return call(
        api, "POST", f"/v1/auth/{mount}/login", botocore_payload(KEYS, role="alice"), **kwargs
    )


def login_token(api: VaultAPI, mount: str = "aws", **role_fields: Any) -> str:
    add_role(api, mount, **role_fields)
    reply = login(api, mount)
    assert reply.status == 200, reply.json
    token: str = reply.json["auth"]["client_token"]
    return token


# ------------------------------------------------------------------ sys, generic


def test_health(api: VaultAPI) -> None:
    reply = call(api, "GET", "/v1/sys/health")
    assert reply.status == 200
    assert reply.json["initialized"] is True
    assert reply.json["sealed"] is False
    assert reply.json["standby"] is False
    assert {"version", "server_time_utc", "cluster_id", "cluster_name"} <= set(reply.json)
    head = call(api, "HEAD", "/v1/sys/health")
    assert (head.status, head.raw) == (200, b"")
    assert call(api, "POST", "/v1/sys/health").status == 405


def test_openapi_covers_every_path(api: VaultAPI) -> None:
    reply = call(api, "GET", "/v1/sys/openapi")
    assert reply.status == 200
    assert reply.json["openapi"].startswith("3.")
    assert reply.json == OPENAPI
    assert set(OPENAPI["paths"]) == {
        "/v1/sys/health", "/v1/sys/openapi", "/v1/sys/audit-hash", "/v1/sys/auth",
        "/v1/sys/auth/{path}", "/v1/sys/metrics",
        "/v1/auth/token/lookup-self", "/v1/auth/token/renew-self",
        "/v1/auth/token/revoke-self", "/v1/auth/token/lookup",
        "/v1/auth/token/revoke-accessor", "/v1/auth/{mount}/login",
        "/v1/auth/{mount}/challenge",
        "/v1/auth/{mount}/config/client", "/v1/auth/{mount}/config/identity",
        "/v1/auth/{mount}/config/sts", "/v1/auth/{mount}/config/sts/{account_id}",
        "/v1/auth/{mount}/role", "/v1/auth/{mount}/roles", "/v1/auth/{mount}/role/{name}",
        "/v1/auth/{mount}/role/{name}/tag", "/v1/auth/{mount}/config/certificates",
        "/v1/auth/{mount}/config/certificate/{cert_name}",
        *(
            path
            for access, deny in (
                ("identity-accesslist", "roletag-denylist"),
                ("identity-whitelist", "roletag-blacklist"),
            )
            for path in (
                f"/v1/auth/{{mount}}/{access}", f"/v1/auth/{{mount}}/{access}/{{instance_id}}",
                f"/v1/auth/{{mount}}/{deny}", f"/v1/auth/{{mount}}/{deny}/{{role_tag}}",
                f"/v1/auth/{{mount}}/config/tidy/{access}", f"/v1/auth/{{mount}}/tidy/{access}",
                f"/v1/auth/{{mount}}/config/tidy/{deny}", f"/v1/auth/{{mount}}/tidy/{deny}",
            )
        ),
    }  # fmt: skip
    legacy = {p for p in OPENAPI["paths"] if "whitelist" in p or "blacklist" in p}
    for path, item in OPENAPI["paths"].items():
        operations = [v for k, v in item.items() if k != "parameters"]
        assert all(op.get("deprecated", False) == (path in legacy) for op in operations), path
    assert call(api, "POST", "/v1/sys/openapi").status == 405


@pytest.mark.parametrize("path", ["/v1/nope", "/v2/sys/health", "/", "/v1/sys/mounts"])
def test_unknown_paths_are_404(api: VaultAPI, path: str) -> None:
    reply = call(api, "GET", path, token=ROOT)
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json"
    assert isinstance(reply.errors, list)


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "TRACE"])
def test_unknown_methods_are_405(api: VaultAPI, method: str) -> None:
    reply = call(api, method, "/v1/sys/health")
    assert reply.status == 405
    assert reply.errors == ["unsupported operation"]


def test_head_only_for_health(api: VaultAPI) -> None:
    assert call(api, "HEAD", "/v1/sys/auth", token=ROOT).status == 405


def test_body_over_64k_is_413_before_parsing(api: VaultAPI) -> None:
    reply = call(api, "POST", "/v1/auth/aws/login", raw=b"{" * (MAX_BODY + 1))
    assert reply.status == 413
    assert reply.errors == ["request body too large"]
    ok_size = call(api, "POST", "/v1/auth/aws/login", raw=b" " * MAX_BODY)
    assert ok_size.status == 400  # parsed: empty object, then login rejects it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"role": "a", "role": "b"}', "duplicate key in request: role"),
        (b"{not json", "failed to parse JSON input"),
        (b"[1]", "cannot unmarshal array"),
    ],
)
def test_bad_json_is_400(api: VaultAPI, raw: bytes, message: str) -> None:
    reply = call(api, "PUT", "/v1/auth/aws/login", raw=raw)
    assert reply.status == 400
    assert message in reply.errors[0]


def test_internal_errors_are_500_without_details() -> None:
    broken = raising_backend(RuntimeError("secret detail"))
    api = VaultAPI(storage=MemoryStorage(), root_token=ROOT, backend_factory=broken)
    api.mounts.ensure("aws/")
    reply = call(api, "GET", "/v1/auth/aws/role/x", token=ROOT)
    assert (reply.status, reply.errors) == (500, ["internal error"])


def test_paths_outside_v1_are_404(api: VaultAPI) -> None:
    reply = call(api, "GET", "/sys/health")
    assert (reply.status, reply.errors) == (404, ["unsupported path"])


def test_audit_hash_needs_a_string_input(api: VaultAPI) -> None:
    for body in ({}, {"input": 5}):
        reply = call(api, "POST", "/v1/sys/audit-hash", body, token=ROOT)
        assert (reply.status, reply.errors) == (400, ["missing input"])


def test_a_backend_factory_that_drops_the_audit_sink_is_refused() -> None:
    def dropping(**kwargs: Any) -> Backend:
        kwargs.pop("audit")
        kwargs.pop("audit_hasher")
        return Backend(**kwargs, transport=RecordingTransport(), iam=FakeIam())

    api = VaultAPI(
        storage=MemoryStorage(), root_token=ROOT, backend_factory=dropping, audit=MemoryAuditSink()
    )
    api.mounts.ensure("aws")
    reply = call(api, "GET", "/v1/auth/aws/role/x", token=ROOT)
    assert (reply.status, reply.errors) == (
        500, ["backend_factory must pass audit= on to Backend"],
    )  # fmt: skip


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="root token"):
        VaultAPI(storage=MemoryStorage(), root_token="")
    with pytest.raises(ValueError, match="trusted proxy"):
        VaultAPI(storage=MemoryStorage(), root_token=ROOT, trusted_proxies=["nope"])


# ----------------------------------------------------------------------- sys/auth


def test_sys_auth_lists_mounts_for_root_only(api: VaultAPI) -> None:
    reply = call(api, "GET", "/v1/sys/auth", token=ROOT)
    assert reply.status == 200
    assert reply.json["aws/"]["type"] == "aws"
    assert reply.json["token/"]["type"] == "token"
    assert reply.json["data"]["aws/"] == reply.json["aws/"]
    assert call(api, "GET", "/v1/sys/auth").status == 403
    token = login_token(api)
    assert call(api, "GET", "/v1/sys/auth", token=token).status == 403
    assert call(api, "POST", "/v1/sys/auth", {}, token=ROOT).status == 405


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_enable_and_path_in_use(api: VaultAPI, method: str) -> None:
    reply = call(api, method, "/v1/sys/auth/aws2", {"type": "aws"}, token=ROOT)
    assert (reply.status, reply.raw) == (204, b"")
    again = call(api, method, "/v1/sys/auth/aws2/", {"type": "aws"}, token=ROOT)
    assert (again.status, again.errors) == (400, ["path is already in use at aws2/"])
    listing = call(api, "GET", "/v1/sys/auth", token=ROOT).json
    assert set(listing["data"]) == {"aws/", "aws2/", "token/"}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("aws/sub", {"type": "aws"}, "path is already in use at aws/"),
        ("token", {"type": "aws"}, "path is already in use at token/"),
        ("team", {}, "missing type"),
        ("team", {"type": "ldap"}, "plugin not found in the catalog: ldap"),
        ("a/../b", {"type": "aws"}, "invalid mount path"),
        ("a b", {"type": "aws"}, "invalid mount path"),
        ("team", {"type": "aws", "config": "x"}, "config must be an object"),
        ("team", {"type": "aws", "description": 5}, "description must be a string"),
        ("team", {"type": "aws", "config": {"default_lease_ttl": "soon"}}, "error parsing"),
        (
            "team",
            {"type": "aws", "config": {"default_lease_ttl": "2h", "max_lease_ttl": "1h"}},
            "default lease TTL cannot exceed max lease TTL",
        ),
    ],
)
def test_enable_rejections(api: VaultAPI, path: str, body: dict[str, Any], message: str) -> None:
    reply = call(api, "POST", f"/v1/sys/auth/{path}", body, token=ROOT)
    assert reply.status == 400
    assert message in reply.errors[0]


def test_enable_and_disable_need_root(api: VaultAPI) -> None:
    token = login_token(api)
    for who in (None, token, "wrong"):
        assert call(api, "POST", "/v1/sys/auth/x", {"type": "aws"}, token=who).status == 403
        assert call(api, "DELETE", "/v1/sys/auth/aws", token=who).status == 403
    assert call(api, "GET", "/v1/sys/auth/aws", token=ROOT).status == 405


def test_mount_ttls_apply_to_logins(api: VaultAPI) -> None:
    body = {"type": "aws", "description": "short", "config": {"default_lease_ttl": "1h"}}
    assert call(api, "POST", "/v1/sys/auth/short", body, token=ROOT).status == 204
    add_role(api, "short")
    assert login(api, "short").json["auth"]["lease_duration"] == 3600
    listing = call(api, "GET", "/v1/sys/auth", token=ROOT).json
    assert listing["short/"]["description"] == "short"
    assert listing["short/"]["config"]["default_lease_ttl"] == 3600


def test_disable_deletes_data_and_revokes_tokens(api: VaultAPI) -> None:
    assert call(api, "POST", "/v1/sys/auth/aws2", {"type": "aws"}, token=ROOT).status == 204
    token = login_token(api, "aws2")
    kept = login_token(api, "aws")
    assert call(api, "DELETE", "/v1/sys/auth/aws2", token=ROOT).status == 204
    assert call(api, "GET", "/v1/auth/aws2/role/alice", token=ROOT).status == 404
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=token).status == 403
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=kept).status == 200
    assert call(api, "POST", "/v1/sys/auth/aws2", {"type": "aws"}, token=ROOT).status == 204
    assert call(api, "GET", "/v1/auth/aws2/role/alice", token=ROOT).status == 404
    assert call(api, "DELETE", "/v1/sys/auth/never", token=ROOT).status == 204


# ------------------------------------------------------------------ auth/<mount>/


def test_role_crud_and_list_forms(api: VaultAPI) -> None:
    add_role(api)
    body = {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False}
    put = call(api, "PUT", "/v1/auth/aws/role/bob", body, token=ROOT)
    assert (put.status, put.raw) == (204, b"")
    read = call(api, "GET", "/v1/auth/aws/role/alice", token=ROOT)
    assert read.status == 200
    assert set(read.json) == ENVELOPE_KEYS
    assert read.json["data"]["bound_iam_principal_arn"] == [ARN]
    assert read.json["lease_id"] == ""
    assert read.json["wrap_info"] is None
    for method, path, query in [
        ("LIST", "/v1/auth/aws/roles", ""),
        ("LIST", "/v1/auth/aws/role", ""),
        ("GET", "/v1/auth/aws/roles", "list=true"),
        ("GET", "/v1/auth/aws/role/", "list=1"),
    ]:
        listed = call(api, method, path, token=ROOT, query=query)
        assert listed.json["data"]["keys"] == ["alice", "bob"], (method, path)
    assert (call(api, "DELETE", "/v1/auth/aws/role/bob", token=ROOT).status) == 204
    missing = call(api, "GET", "/v1/auth/aws/role/bob", token=ROOT)
    assert (missing.status, missing.errors) == (404, [])


def test_empty_list_is_404(api: VaultAPI) -> None:
    reply = call(api, "LIST", "/v1/auth/aws/roles", token=ROOT)
    assert (reply.status, reply.errors) == (404, [])


def test_config_client_roundtrip(api: VaultAPI) -> None:
    body = {"access_key": "AKIA", "secret_key": "s", "sts_endpoint": "http://127.0.0.1:9"}
    assert call(api, "POST", "/v1/auth/aws/config/client", body, token=ROOT).status == 204
    read = call(api, "GET", "/v1/auth/aws/config/client", token=ROOT).json["data"]
    assert read["sts_endpoint"] == "http://127.0.0.1:9"
    assert "secret_key" not in read
    assert call(api, "DELETE", "/v1/auth/aws/config/client", token=ROOT).status == 204
    assert call(api, "GET", "/v1/auth/aws/config/client", token=ROOT).status == 404
    bad = call(api, "POST", "/v1/auth/aws/config/client", {"sts_endpoint": "ftp://x"}, token=ROOT)
    assert bad.status == 400


def test_mount_endpoints_need_root(api: VaultAPI) -> None:
    token = login_token(api)
    paths = ["/v1/auth/aws/config/client", "/v1/auth/aws/role/alice", "/v1/auth/aws/roles"]
    for who in (None, token, "wrong"):
        for path in paths:
            assert call(api, "GET", path, token=who).status == 403, (path, who)
        assert call(api, "POST", "/v1/auth/aws/role/x", {}, token=who).status == 403
        assert call(api, "POST", "/v1/auth/aws/config/client", {}, token=who).status == 403


def test_mount_routing_errors(api: VaultAPI) -> None:
    unknown = call(api, "GET", "/v1/auth/nope/role/x", token=ROOT)
    assert unknown.status == 404
    assert 'no handler for route "auth/nope/role/x"' in unknown.errors[0]
    assert call(api, "GET", "/v1/auth/aws/nope", token=ROOT).status == 404
    assert call(api, "DELETE", "/v1/auth/aws/login", token=ROOT).status == 405
    assert call(api, "LIST", "/v1/auth/aws/config/client", token=ROOT).status == 405


# -------------------------------------------------------------------------- login


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_login_is_open_and_returns_auth_envelope(api: VaultAPI, method: str) -> None:
    add_role(api, token_policies="dev")
    reply = call(api, method, "/v1/auth/aws/login", botocore_payload(KEYS, role="alice"))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert set(reply.json) == ENVELOPE_KEYS
    assert reply.json["data"] is None
    assert reply.json["warnings"] is None
    auth = reply.json["auth"]
    assert auth["policies"] == ["default", "dev"]
    assert auth["client_token"].startswith("hvs.")
    assert auth["metadata"]["auth_type"] == "iam"


def test_warnings_make_a_200_envelope(api: VaultAPI) -> None:
    add_role(api)
    payload = {**botocore_payload(KEYS, role="alice"), "bogus": 1}
    reply = call(api, "POST", "/v1/auth/aws/login", payload)
    assert reply.status == 200
    assert "bogus" in reply.json["warnings"][0]


def test_login_failures_are_json_errors(api: VaultAPI) -> None:
    reply = call(api, "POST", "/v1/auth/aws/login", botocore_payload(KEYS, role="nobody"))
    assert reply.status == 400
    assert reply.errors == ["entry for role nobody not found"]


# --------------------------------------------------------------------- token/*


def test_lookup_self_get_post_and_bearer(api: VaultAPI) -> None:
    token = login_token(api)
    for method in ("GET", "POST"):
        data = call(api, method, "/v1/auth/token/lookup-self", token=token).json["data"]
        assert data["id"] == token
        assert data["path"] == "auth/aws/login"
    bearer = call(api, "GET", "/v1/auth/token/lookup-self",
                  headers={"authorization": f"Bearer {token}"})  # fmt: skip
    assert bearer.json["data"]["id"] == token
    root = call(api, "GET", "/v1/auth/token/lookup-self", token=ROOT).json["data"]
    assert (root["policies"], root["id"], root["ttl"]) == (["root"], ROOT, 0)


@pytest.mark.parametrize(
    "headers", [{}, {"x-vault-token": "hvs.nope"}, {"authorization": "Basic abc"}]
)
def test_token_endpoints_refuse_missing_or_unknown_tokens(
    api: VaultAPI, headers: dict[str, str]
) -> None:
    for name in ("lookup-self", "renew-self", "revoke-self", "lookup", "revoke-accessor"):
        reply = call(api, "POST", f"/v1/auth/token/{name}", {}, headers=headers)
        assert (reply.status, reply.errors) == (403, ["permission denied"]), name


def test_mount_changes_are_seen_by_another_process_on_the_same_storage() -> None:
    shared = MemoryStorage()
    # no caching interval: each request sees the other process's last change
    first, second = make_api(shared, coherence_interval=0), make_api(shared, coherence_interval=0)
    assert call(first, "POST", "/v1/sys/auth/extra", {"type": "aws"}, token=ROOT).status == 204
    assert "extra/" in call(second, "GET", "/v1/sys/auth", token=ROOT).json["data"]
    assert call(second, "GET", "/v1/auth/extra/roles", query="list=true", token=ROOT).status == 404
    assert call(second, "DELETE", "/v1/sys/auth/extra", token=ROOT).status == 204
    assert "extra/" not in call(first, "GET", "/v1/sys/auth", token=ROOT).json["data"]
    reply = call(first, "POST", "/v1/sys/auth/other", {"type": "aws"}, token=ROOT)
    assert reply.status == 204
    assert set(call(second, "GET", "/v1/sys/auth", token=ROOT).json["data"]) == {
        "aws/", "other/", "token/",
    }  # fmt: skip


def test_a_login_commits_only_on_the_mount_table_it_was_checked_against() -> None:
    """The token's commit requires the mount table this process last adopted. Here that
    table is stale (a long coherence interval): a change elsewhere that keeps the mount
    (another mount enabled) makes the login read the table and commit again; one that
    removes the mount refuses the login with nothing issued."""
    shared = MemoryStorage()
    first = make_api(shared, coherence_interval=3600)
    second = make_api(shared, coherence_interval=0)
    add_role(first)
    assert login(first).status == 200
    assert call(second, "POST", "/v1/sys/auth/extra", {"type": "aws"}, token=ROOT).status == 204
    assert login(first).status == 200  # the table moved, the mount is still there
    tokens = len(shared.list("sys/token/token/"))
    assert tokens == 2
    assert call(second, "DELETE", "/v1/sys/auth/aws", token=ROOT).status == 204
    reply = login(first)  # this process still routes to the mount it cached
    assert reply.status == 404
    assert shared.list("sys/token/token/") == []  # the disable revoked both, none was added


class EverChangingMounts(MemoryStorage):
    """A store whose mount table has always just moved: every commit that checks a
    document's version conflicts."""

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        if any(isinstance(op, Check) for op in operations):
            raise ConflictError("sys/mounts")
        return super().commit(operations)


def test_a_login_gives_up_on_a_mount_table_that_never_settles() -> None:
    storage = EverChangingMounts()
    api = make_api(storage)
    add_role(api)
    reply = login(api)
    assert (reply.status, reply.errors) == (
        500,
        ["storage error: the mount table keeps changing; retry"],
    )
    assert storage.list("sys/token/token/") == []


def test_token_mount_cannot_be_disabled(api: VaultAPI) -> None:
    reply = call(api, "DELETE", "/v1/sys/auth/token", token=ROOT)
    assert (reply.status, reply.errors) == (400, ["cannot disable the token auth method"])


def test_token_routing_errors(api: VaultAPI) -> None:
    assert call(api, "GET", "/v1/auth/token/roles", token=ROOT).status == 404
    assert call(api, "GET", "/v1/auth/token/create", token=ROOT).status == 405
    assert call(api, "GET", "/v1/auth/token/renew-self", token=ROOT).status == 405
    assert call(api, "DELETE", "/v1/auth/token/lookup", token=ROOT).status == 405


def test_renew_self(api: VaultAPI) -> None:
    token = login_token(api)
    reply = call(api, "POST", "/v1/auth/token/renew-self", {"increment": "1h"}, token=token)
    assert reply.status == 200
    assert reply.json["auth"]["lease_duration"] == 3600
    assert reply.json["auth"]["client_token"] == token
    default = call(api, "POST", "/v1/auth/token/renew-self", {}, token=token)
    # the role's TTL again, capped at issue time + max TTL (768h) by the real clock
    assert 768 * 3600 - 60 < default.json["auth"]["lease_duration"] <= 768 * 3600
    bad = call(api, "POST", "/v1/auth/token/renew-self", {"increment": "soon"}, token=token)
    assert (bad.status, bad.errors) == (400, ["invalid increment"])
    assert reply.json["auth"]["renewable"] is True
    root = call(api, "POST", "/v1/auth/token/renew-self", token=ROOT)
    assert (root.status, root.errors) == (400, ["root token is not renewable"])


def test_renew_self_rechecks_the_role(api: VaultAPI) -> None:
    token = login_token(api)
    assert call(api, "DELETE", "/v1/auth/aws/role/alice", token=ROOT).status == 204
    reply = call(api, "POST", "/v1/auth/token/renew-self", token=token)
    assert reply.status == 403
    assert "role entry not found" in reply.errors[0]


def test_revoke_self(api: VaultAPI) -> None:
    token = login_token(api)
    assert call(api, "POST", "/v1/auth/token/revoke-self", token=token).status == 204
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=token).status == 403
    root = call(api, "POST", "/v1/auth/token/revoke-self", token=ROOT)
    assert (root.status, root.errors) == (400, ["cannot revoke the root token"])


def test_lookup_sees_only_itself_unless_root(api: VaultAPI) -> None:
    mine, other = login_token(api), login_token(api)
    own = call(api, "POST", "/v1/auth/token/lookup", {"token": mine}, token=mine)
    assert own.json["data"]["id"] == mine
    refused = call(api, "POST", "/v1/auth/token/lookup", {"token": other}, token=mine)
    assert (refused.status, refused.errors) == (403, ["permission denied"])
    by_root = call(api, "POST", "/v1/auth/token/lookup", {"token": other}, token=ROOT)
    assert by_root.json["data"]["id"] == other
    unknown = call(api, "POST", "/v1/auth/token/lookup", {"token": "hvs.x"}, token=ROOT)
    assert (unknown.status, unknown.errors) == (403, ["bad token"])
    itself = call(api, "POST", "/v1/auth/token/lookup", {}, token=ROOT)  # Vault: no token, self
    assert itself.json["data"]["id"] == ROOT


def test_revoke_accessor(api: VaultAPI) -> None:
    mine, other = login_token(api), login_token(api)
    accessor = call(api, "GET", "/v1/auth/token/lookup-self", token=mine).json["data"]["accessor"]
    other_accessor = call(api, "GET", "/v1/auth/token/lookup-self", token=other).json["data"][
        "accessor"
    ]
    refused = call(api, "POST", "/v1/auth/token/revoke-accessor", {"accessor": other_accessor},
                   token=mine)  # fmt: skip
    assert refused.status == 403
    own = call(api, "POST", "/v1/auth/token/revoke-accessor", {"accessor": accessor}, token=mine)
    assert own.status == 204
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=mine).status == 403
    by_root = call(api, "POST", "/v1/auth/token/revoke-accessor", {"accessor": other_accessor},
                   token=ROOT)  # fmt: skip
    assert by_root.status == 204
    gone = call(api, "POST", "/v1/auth/token/revoke-accessor", {"accessor": other_accessor},
                token=ROOT)  # fmt: skip
    assert (gone.status, gone.errors) == (400, ["invalid accessor"])
    missing = call(api, "POST", "/v1/auth/token/revoke-accessor", {}, token=ROOT)
    assert (missing.status, missing.errors) == (400, ["missing accessor"])


def test_token_from_second_mount_records_and_renews_there(api: VaultAPI) -> None:
    assert call(api, "POST", "/v1/sys/auth/aws2", {"type": "aws"}, token=ROOT).status == 204
    token = login_token(api, "aws2", token_ttl="10m", token_max_ttl="1h")
    data = call(api, "GET", "/v1/auth/token/lookup-self", token=token).json["data"]
    assert data["path"] == "auth/aws2/login"
    renewed = call(api, "POST", "/v1/auth/token/renew-self", token=token).json["auth"]
    assert renewed["lease_duration"] == 600


def test_num_uses_are_consumed(api: VaultAPI) -> None:
    token = login_token(api, token_num_uses=2)
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=token).status == 200
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=token).status == 200
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=token).status == 403


def test_state_survives_a_new_api_on_the_same_storage() -> None:
    storage = MemoryStorage()
    first = make_api(storage)
    assert call(first, "POST", "/v1/sys/auth/aws2", {"type": "aws"}, token=ROOT).status == 204
    token = login_token(first, "aws2")
    second = make_api(storage)
    assert call(second, "GET", "/v1/auth/aws2/role/alice", token=ROOT).status == 200
    assert call(second, "GET", "/v1/auth/token/lookup-self", token=token).status == 200
    assert (
        call(first, "GET", "/v1/sys/health").json["cluster_id"]
        == call(second, "GET", "/v1/sys/health").json["cluster_id"]
    )


def test_lookup_token_for_integrations() -> None:
    api = make_api(trusted=["127.0.0.1"])
    add_role(api, token_bound_cidrs="10.1.0.0/16", token_num_uses=2)
    token = login(api, remote="10.1.0.9").json["auth"]["client_token"]
    record = api.lookup_token(token, remote_addr="127.0.0.1", forwarded_for="10.1.0.9")
    assert (record.mount, record.num_uses) == ("aws/", 1)
    with pytest.raises(PermissionDeniedError):
        api.lookup_token(token, remote_addr="10.2.0.1")  # outside the CIDR: no use spent
    assert api.lookup_token(token, remote_addr="10.1.0.9").num_uses == 0
    for used_up_unknown_or_root in (token, "hvs.unknown", ROOT):
        with pytest.raises(PermissionDeniedError):
            api.lookup_token(used_up_unknown_or_root, remote_addr="10.1.0.9")


# ------------------------------------------------------------ client IP and proxies


def test_bound_cidrs_use_the_socket_peer_by_default(api: VaultAPI) -> None:
    add_role(api, token_bound_cidrs="10.1.0.0/16")
    forged = login(api, headers={"x-forwarded-for": "10.1.2.3"})
    assert forged.status == 403
    assert login(api, remote="10.1.2.3").status == 200


def test_forwarded_for_is_believed_from_trusted_proxies_only() -> None:
    api = make_api(trusted=["127.0.0.1", "192.168.0.0/16"])
    add_role(api, token_bound_cidrs="10.1.0.0/16")
    via_proxy = login(api, headers={"x-forwarded-for": "10.1.2.3, 192.168.1.1"})
    assert via_proxy.status == 200
    token = via_proxy.json["auth"]["client_token"]
    other_ip = call(api, "GET", "/v1/auth/token/lookup-self", token=token,
                    headers={"x-forwarded-for": "10.2.0.1"})  # fmt: skip
    assert other_ip.status == 403
    untrusted_peer = login(api, remote="203.0.113.9", headers={"x-forwarded-for": "10.1.2.3"})
    assert untrusted_peer.status == 403
    spoofed_left = login(api, headers={"x-forwarded-for": "10.1.2.3, 203.0.113.9"})
    assert spoofed_left.status == 403
    malformed = login(api, headers={"x-forwarded-for": "10.1.2.3, bogus"})
    assert (malformed.status, malformed.errors) == (400, ["malformed X-Forwarded-For header"])


def test_client_ip_rules() -> None:
    trusted = parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert client_ip("127.0.0.1", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_ip("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_ip("9.9.9.9", "1.2.3.4", trusted) == "9.9.9.9"
    assert client_ip("9.9.9.9", "bogus", trusted) == "9.9.9.9"  # not trusted: not parsed
    assert client_ip("127.0.0.1", "10.0.0.2, 10.0.0.3", trusted) == "10.0.0.2"
    assert client_ip("::ffff:127.0.0.1", "5.6.7.8", trusted) == "5.6.7.8"
    assert client_ip(None, "5.6.7.8", trusted) is None
    assert client_ip("unix-socket", "5.6.7.8", trusted) == "unix-socket"


# ----------------------------------------------------------------------- adapters


def wsgi_call(
    api: VaultAPI, method: str, path: str, body: bytes = b"", **environ: Any
) -> tuple[str, dict[str, str], bytes]:
    app = make_wsgi_app(api)
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": environ.pop("wsgi_input", io.BytesIO(body)),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        **environ,
    }
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)

    out = b"".join(app(env, start_response))
    return seen["status"], seen["headers"], out


def test_wsgi_serves_requests(api: VaultAPI) -> None:
    status, headers, body = wsgi_call(api, "GET", "/v1/sys/health")
    assert status == "200 OK"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))
    status, _, body = wsgi_call(api, "LIST", "/v1/auth/aws/roles", HTTP_X_VAULT_TOKEN=ROOT)
    assert status == "404 Not Found"
    assert json.loads(body) == {"errors": []}
    status, _, body = wsgi_call(api, "GET", "/v1/auth/aws/roles", QUERY_STRING="list=true",
                                HTTP_AUTHORIZATION="Bearer nope")  # fmt: skip
    assert status == "403 Forbidden"
    status, _, body = wsgi_call(api, "GET", "/v1/sys/caf\xc3\xa9")
    assert status == "404 Not Found"
    assert "sys/café" in json.loads(body)["errors"][0]


def test_wsgi_refuses_large_or_bad_bodies(api: VaultAPI) -> None:
    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("body must not be read")

    status, _, body = wsgi_call(api, "POST", "/v1/auth/aws/login", CONTENT_LENGTH=str(MAX_BODY + 1),
                                wsgi_input=Unreadable())  # fmt: skip
    assert status == "413 Request Entity Too Large"
    assert json.loads(body) == {"errors": ["request body too large"]}
    status, _, _ = wsgi_call(api, "POST", "/v1/auth/aws/login", CONTENT_LENGTH="-1")
    assert status == "400 Bad Request"
    chunked = io.BytesIO(b"x" * (MAX_BODY + 10))
    status, _, _ = wsgi_call(api, "POST", "/v1/auth/aws/login", wsgi_input=chunked,
                             HTTP_TRANSFER_ENCODING="chunked")  # fmt: skip
    assert status == "413 Request Entity Too Large"
    assert chunked.tell() == MAX_BODY + 1


def test_wsgi_without_length_or_chunking_reads_no_body(api: VaultAPI) -> None:
    """wsgiref hands over the raw socket: reading an absent body would block."""

    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("body must not be read")

    status, _, _ = wsgi_call(api, "GET", "/v1/sys/health", wsgi_input=Unreadable())
    assert status == "200 OK"


def asgi_call(
    api: VaultAPI, method: str, path: str, chunks: Sequence[bytes] = (b"",),
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[int, dict[bytes, bytes], bytes, int]:  # fmt: skip
    """Run one request; returns status, headers, body and how many receive() calls."""
    app = make_asgi_app(asgi_target(api))
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []
    received = 0

    async def receive() -> Message:
        nonlocal received
        received += 1
        if messages:
            return messages.pop(0)
        if chunks:  # the whole body was sent: the client waits for its answer
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": list(headers), "client": ("127.0.0.1", 5000)}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"], received


@ASYNC_ONLY
def test_asgi_serves_requests(api: VaultAPI) -> None:
    status, headers, body, _ = asgi_call(api, "GET", "/v1/sys/health")
    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body)["initialized"] is True
    status, _, _, _ = asgi_call(
        api, "LIST", "/v1/auth/aws/roles", headers=[(b"X-Vault-Token", ROOT.encode())]
    )
    assert status == 404  # empty list, authenticated


@ASYNC_ONLY
def test_asgi_joins_repeated_headers() -> None:
    api = make_api(trusted=["127.0.0.1"])
    add_role(api, token_bound_cidrs="10.1.0.0/16")
    body = json.dumps(botocore_payload(KEYS, role="alice")).encode()
    forwarded = [(b"x-forwarded-for", b"10.1.2.3"), (b"x-forwarded-for", b"127.0.0.1")]
    status, _, _, _ = asgi_call(api, "POST", "/v1/auth/aws/login", [body], forwarded)
    assert status == 200


@ASYNC_ONLY
def test_asgi_refuses_large_bodies_without_buffering(api: VaultAPI) -> None:
    declared = [(b"content-length", str(MAX_BODY + 1).encode())]
    status, _, body, received = asgi_call(api, "POST", "/v1/auth/aws/login", headers=declared)
    assert (status, received) == (413, 0)
    assert json.loads(body) == {"errors": ["request body too large"]}
    chunks = [b"x" * 40000, b"x" * 40000, b"x" * 40000]
    status, _, _, received = asgi_call(api, "POST", "/v1/auth/aws/login", chunks)
    assert (status, received) == (413, 2)
    bad = [(b"content-length", b"12x")]
    assert asgi_call(api, "POST", "/v1/auth/aws/login", headers=bad)[0] == 400


@ASYNC_ONLY
def test_asgi_client_disconnect_is_400(api: VaultAPI) -> None:
    status, _, body, _ = asgi_call(api, "POST", "/v1/auth/aws/login", [])
    assert (status, json.loads(body)) == (400, {"errors": ["client disconnected"]})


@ASYNC_ONLY
def test_asgi_lifespan_and_other_scopes(api: VaultAPI) -> None:
    app = make_asgi_app(asgi_target(api))
    events: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return events.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(ValueError, match="websocket"):
        asyncio.run(app({"type": "websocket"}, receive, send))


# ----------------------------------------------------------------- PrefixedStorage


def test_prefixed_storage_isolates_views() -> None:
    inner = MemoryStorage()
    a, b = PrefixedStorage(inner, "a/"), PrefixedStorage(inner, "b/")
    ops.put(a, "role/x", {"v": 1})
    ops.put(b, "role/y", {"v": 2}, expires_at=10.0)
    assert ops.get(a, "role/x") == {"v": 1}
    assert ops.get(a, "role/y") is None
    assert a.list("role/") == ["x"]
    assert inner.list("") == ["a/role/x", "b/role/y"]
    document = a.read("role/x")
    assert document is not None
    assert document.key == "role/x"  # keys relative to the view
    stored = inner.read("a/role/x")
    assert stored is not None
    assert document == attrs.evolve(stored, key="role/x")
    assert a.expired("", 100.0, 10) == []
    assert [d.key for d in b.expired("role/", 100.0, 10)] == ["role/y"]
    with pytest.raises(ConflictError):  # conditions are checked on the inner keys
        a.commit([Put("role/x", {"v": 3}, expect=ABSENT)])
    assert not ops.create(a, "role/x", {"v": 3})
    assert ops.create(a, "role/y", {"v": 3})
    assert ops.get(b, "role/y") == {"v": 2}
    a.commit([Put("role/x", {"v": 4}, expect=document.version), Delete("role/y")])
    assert ops.get(a, "role/x") == {"v": 4}
    ops.delete(a, "role/x")
    assert ops.get(a, "role/x") is None
    assert inner.list("") == ["b/role/y"]
    b.clear()
    assert inner.list("") == []
    for bad in ("", "/", "noslash"):
        with pytest.raises(ValueError, match="prefix"):
            PrefixedStorage(inner, bad)
