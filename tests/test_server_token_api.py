"""The token API: ``auth/token/lookup``, ``lookup-accessor``, ``create`` and
``create-orphan``, on both drivers (STS and IAM faked), then through hvac's own calls
against the dev server. Every rejection is a 4xx with Vault's text that issues nothing."""

from __future__ import annotations

import threading
from typing import Any

import hvac
import hvac.exceptions
import pytest

from aws_iam_backend import MemoryStorage
from tests.support.drivers import VaultAPI, driver  # noqa: F401
from tests.support.server import DevServer
from tests.support.vault_api import (  # noqa: F401 (the fixtures)
    ROOT,
    SYSTEM_TTL,
    Reply,
    api_fixture,
    call,
    login_token,
    make_api,
    run_threads,
    server_fixture,
    storage_fixture,
)

TOKENS = "sys/token/token/"
LOOKUP_KEYS = {
    "accessor", "creation_time", "creation_ttl", "display_name", "entity_id", "expire_time",
    "explicit_max_ttl", "id", "issue_time", "meta", "num_uses", "orphan", "path", "policies",
    "renewable", "ttl", "type",
}  # fmt: skip


def create(api: VaultAPI, body: dict[str, Any], *, orphan: bool = False) -> Reply:
    name = "create-orphan" if orphan else "create"
    return call(api, "POST", f"/v1/auth/token/{name}", body, token=ROOT)


def created(api: VaultAPI, **body: Any) -> dict[str, Any]:
    reply = create(api, {"policies": ["dev"], **body})
    assert reply.status == 200, reply.json
    auth: dict[str, Any] = reply.json["auth"]
    return auth


def lookup(api: VaultAPI, token: str) -> dict[str, Any]:
    reply = call(api, "POST", "/v1/auth/token/lookup", {"token": token}, token=ROOT)
    assert reply.status == 200, reply.json
    data: dict[str, Any] = reply.json["data"]
    return data


# ------------------------------------------------------------------------ create


def test_create_as_hvac_sends_it(api: VaultAPI) -> None:
    body = {
        "policies": ["Dev", "ops"], "meta": {"team": "a"}, "no_parent": False,
        "no_default_policy": False, "renewable": True, "ttl": "1h", "display_name": "My App!",
        "num_uses": 0,
    }  # fmt: skip
    reply = create(api, body)
    assert reply.status == 200
    assert (reply.json["data"], reply.json["warnings"]) == (None, None)
    auth = reply.json["auth"]
    token = auth.pop("client_token")
    assert token.startswith("hvs.")
    assert auth.pop("accessor")
    assert auth == {
        "policies": ["default", "dev", "ops"], "token_policies": ["default", "dev", "ops"],
        "identity_policies": None, "metadata": {"team": "a"}, "lease_duration": 3600,
        "renewable": True, "entity_id": "", "token_type": "service", "orphan": False,
        "mfa_requirement": None, "num_uses": 0,
    }  # fmt: skip
    data = lookup(api, token)
    assert set(data) == LOOKUP_KEYS
    assert data["id"] == token
    assert data["path"] == "auth/token/create"
    assert data["display_name"] == "token-My-App"
    assert data["meta"] == {"team": "a"}
    assert (data["orphan"], data["renewable"], data["type"]) == (False, True, "service")
    assert (data["creation_ttl"], data["explicit_max_ttl"]) == (3600, 0)
    assert 3590 <= data["ttl"] <= 3600
    mine = call(api, "GET", "/v1/auth/token/lookup-self", token=token).json["data"]
    assert mine["policies"] == ["default", "dev", "ops"]


def test_create_defaults_and_orphans(api: VaultAPI) -> None:
    plain = created(api)
    assert (plain["lease_duration"], plain["metadata"], plain["orphan"]) == (
        SYSTEM_TTL,
        None,
        False,
    )
    data = lookup(api, plain["client_token"])
    assert (data["display_name"], data["meta"], data["num_uses"]) == ("token", None, 0)
    orphan = create(api, {"policies": ["dev"]}, orphan=True).json["auth"]
    assert orphan["orphan"] is True
    assert lookup(api, orphan["client_token"])["path"] == "auth/token/create-orphan"
    no_parent = created(api, no_parent=True)
    assert no_parent["orphan"] is True
    assert lookup(api, no_parent["client_token"])["path"] == "auth/token/create"
    bare = created(api, policies="dev", no_default_policy=True)  # a lone string is one policy
    assert bare["policies"] == ["dev"]


def test_create_lease_rules(api: VaultAPI) -> None:
    capped = create(api, {"policies": ["dev"], "ttl": "3h", "explicit_max_ttl": "2h"})
    assert capped.json["auth"]["lease_duration"] == 7200
    assert capped.json["warnings"] == [
        'TTL of "3h" exceeded the effective max_ttl of "2h"; TTL value is capped accordingly'
    ]
    assert lookup(api, capped.json["auth"]["client_token"])["explicit_max_ttl"] == 7200
    periodic = created(api, period="30m", ttl="5m")
    assert periodic["lease_duration"] == 1800
    assert lookup(api, periodic["client_token"])["period"] == 1800
    legacy = created(api, lease="90m")
    assert legacy["lease_duration"] == 5400
    seconds = created(api, ttl=120)
    assert seconds["lease_duration"] == 120


def test_created_tokens_renew_and_count_uses(api: VaultAPI) -> None:
    token = created(api, ttl="10m", explicit_max_ttl="1h")["client_token"]
    renewed = call(api, "POST", "/v1/auth/token/renew-self", {"increment": "30m"}, token=token)
    assert renewed.status == 200
    auth = renewed.json["auth"]
    assert (auth["client_token"], auth["lease_duration"], auth["orphan"]) == (token, 1800, False)
    again = call(api, "POST", "/v1/auth/token/renew-self", {"increment": "5h"}, token=token)
    assert 3590 <= again.json["auth"]["lease_duration"] <= 3600  # the explicit max
    fixed = created(api, renewable=False)["client_token"]
    refused = call(api, "POST", "/v1/auth/token/renew-self", token=fixed)
    assert (refused.status, refused.errors) == (400, ["lease is not renewable"])
    batch = created(api, type="batch")
    assert batch["client_token"].startswith("hvb.")
    assert (batch["accessor"], batch["renewable"], batch["token_type"]) == ("", False, "batch")
    refused = call(api, "POST", "/v1/auth/token/renew-self", token=batch["client_token"])
    assert (refused.status, refused.errors) == (400, ["batch tokens cannot be renewed"])
    twice = created(api, num_uses=2)["client_token"]
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=twice).status == 200
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=twice).status == 200
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=twice).status == 403
    gone = created(api)["client_token"]
    assert call(api, "POST", "/v1/auth/token/revoke-self", token=gone).status == 204
    assert call(api, "GET", "/v1/auth/token/lookup-self", token=gone).status == 403


REJECTED = [
    ({}, "root tokens cannot be created: this server has a single root token, so a token "
         "needs policies of its own (not root)"),
    ({"policies": ["dev", " Root"]}, "root tokens cannot be created: this server has a single "
                                    "root token, so a token needs policies of its own (not root)"),
    ({"policies": ["response-wrapping"]}, 'cannot assign policy "response-wrapping"'),
    ({"policies": ["dev"], "type": "weird"}, "invalid 'token_type' value"),
    ({"policies": ["dev"], "type": "batch", "num_uses": 3},
     'batch tokens cannot have "num_uses" set'),
    ({"policies": ["dev"], "type": "batch", "period": "1h"},
     'batch tokens cannot have "period" set'),
    ({"policies": ["dev"], "type": "batch", "explicit_max_ttl": "1h"},
     'batch tokens cannot have "explicit_max_ttl" set'),
    ({"policies": ["dev"], "type": "batch", "explicit_max_ttl": "x"},
     '"explicit_max_ttl" value could not be parsed'),
    ({"policies": ["dev"], "num_uses": -1}, "number of uses cannot be negative"),
    ({"policies": ["dev"], "num_uses": "many"},
     "Error decoding request: 1 error(s) decoding:\n\n* cannot parse 'num_uses' as int: "
     'strconv.ParseInt: parsing "many": invalid syntax'),
    ({"policies": ["dev"], "meta": "team=a", "ttl": [1]},
     "Error decoding request: 2 error(s) decoding:\n\n* 'meta' expected a map, got 'string'\n"
     "* 'ttl' expected type 'string', got unconvertible type '[]interface {}'"),
    ({"policies": ["dev"], "entity_alias": "x"},
     "'entity_alias' is only allowed in combination with token role"),
    ({"policies": ["dev"], "id": "my-token"}, "custom token IDs are not supported by this server"),
    ({"policies": ["dev"], "explicit_max_ttl": "-5"}, "explicit_max_ttl must be positive"),
    ({"policies": ["dev"], "period": "-1h"}, "period must be positive"),
    ({"policies": ["dev"], "ttl": "-1h"}, "ttl must be positive"),
    ({"policies": ["dev"], "ttl": "soon"}, 'time: invalid duration "soon"'),
    ({"policies": ["dev"], "lease": "3600"}, 'time: missing unit in duration "3600"'),
    ({"policies": ["dev"], "lease": "2d"}, 'time: unknown unit "d" in duration "2d"'),
    ({"policies": ["dev"], "ttl": "9223372037s"}, "duration out of range"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), REJECTED)
def test_create_rejections_issue_nothing(
    api: VaultAPI, storage: MemoryStorage, body: dict[str, Any], message: str
) -> None:
    before = storage.list(TOKENS)
    reply = create(api, body)
    assert (reply.status, reply.errors) == (400, [message])
    assert create(api, body, orphan=True).errors == [message]
    assert storage.list(TOKENS) == before


def test_only_root_creates(api: VaultAPI, storage: MemoryStorage) -> None:
    token = login_token(api)
    before = storage.list(TOKENS)
    for name in ("create", "create-orphan"):
        reply = call(api, "POST", f"/v1/auth/token/{name}", {"policies": ["dev"]}, token=token)
        assert (reply.status, reply.errors) == (403, ["permission denied"])
        body = {"policies": ["dev"]}
        anonymous = call(api, "POST", f"/v1/auth/token/{name}", body, token=None)
        assert anonymous.status == 403
        assert call(api, "GET", f"/v1/auth/token/{name}", token=ROOT).status == 405
    assert storage.list(TOKENS) == before


def test_unknown_create_fields_are_a_warning(api: VaultAPI) -> None:
    reply = create(api, {"policies": ["dev"], "colour": "red", "metadata": {"x": "y"}})
    assert reply.status == 200
    assert reply.json["warnings"] == ["Endpoint ignored these unrecognized parameters: [colour]"]
    assert reply.json["auth"]["metadata"] is None  # Vault reads "meta" only


def test_create_uses_the_token_mounts_tuned_ttls(api: VaultAPI) -> None:
    tune = {"default_lease_ttl": "20m", "max_lease_ttl": "1h"}
    assert call(api, "POST", "/v1/sys/auth/token/tune", tune, token=ROOT).status == 204
    assert created(api)["lease_duration"] == 1200
    capped = create(api, {"policies": ["dev"], "ttl": "2h"})
    assert capped.json["auth"]["lease_duration"] == 3600
    token = capped.json["auth"]["client_token"]
    renewed = call(api, "POST", "/v1/auth/token/renew-self", {"increment": "3h"}, token=token)
    assert 3590 <= renewed.json["auth"]["lease_duration"] <= 3600


def test_a_create_commits_on_the_token_mount_it_was_computed_from(storage: MemoryStorage) -> None:
    """A process whose adopted table is stale (a long coherence interval) computes a
    token's lease from old TTLs: the commit finds the table moved, reads the ``token/``
    mount afresh and computes again."""
    stale = make_api(storage, coherence_interval=3600)
    fresh = make_api(storage, coherence_interval=0)
    assert created(stale, ttl="2h")["lease_duration"] == 7200
    tune = {"max_lease_ttl": "60s"}
    assert call(fresh, "POST", "/v1/sys/auth/token/tune", tune, token=ROOT).status == 204
    reply = create(stale, {"policies": ["dev"], "ttl": "2h"})
    assert reply.json["auth"]["lease_duration"] == 60
    assert reply.json["warnings"] == [
        'TTL of "2h" exceeded the effective max_ttl of "1m"; TTL value is capped accordingly'
    ]


def test_creates_racing_token_mount_tunes_all_land_within_a_max(storage: MemoryStorage) -> None:
    api = make_api(storage)
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(9)

    def create_loop() -> None:
        start.wait()
        for _ in range(10):
            reply = create(api, {"policies": ["dev"], "ttl": "2h"})
            assert reply.status == 200, reply.json
            with lock:
                results.append(reply.json["auth"]["lease_duration"])

    def tune_loop() -> None:
        start.wait()
        for index in range(20):
            tune = {"max_lease_ttl": "1h" if index % 2 else "3h"}
            assert call(api, "POST", "/v1/sys/auth/token/tune", tune, token=ROOT).status == 204

    run_threads(*[create_loop] * 8, tune_loop)
    assert len(results) == 80
    assert set(results) <= {3600, 7200}
    accessors = storage.list("sys/token/accessor/")
    assert len(accessors) == 80


# ------------------------------------------------------------------------ lookup


def test_lookup_forms(api: VaultAPI) -> None:
    mine, other = login_token(api), login_token(api)
    assert call(api, "GET", "/v1/auth/token/lookup", token=mine).json["data"]["id"] == mine
    assert call(api, "POST", "/v1/auth/token/lookup", {}, token=mine).json["data"]["id"] == mine
    empty = call(api, "POST", "/v1/auth/token/lookup", {"token": ""}, token=mine)
    assert empty.json["data"]["id"] == mine
    assert lookup(api, other)["id"] == other
    refused = call(api, "POST", "/v1/auth/token/lookup", {"token": other}, token=mine)
    assert (refused.status, refused.errors) == (403, ["permission denied"])
    unknown = call(api, "POST", "/v1/auth/token/lookup", {"token": "hvs.nope"}, token=ROOT)
    assert (unknown.status, unknown.errors) == (403, ["bad token"])
    bad = call(api, "POST", "/v1/auth/token/lookup", {"token": ["a"]}, token=ROOT)
    assert (bad.status, bad.errors) == (
        400,
        [
            'Field validation failed: error converting input for field "token": '
            "'' expected type 'string', got unconvertible type '[]interface {}'"
        ],
    )
    assert call(api, "DELETE", "/v1/auth/token/lookup", token=ROOT).status == 405


def test_lookup_accessor(api: VaultAPI) -> None:
    token = login_token(api)
    limited = created(api, num_uses=1)
    mine = call(api, "GET", "/v1/auth/token/lookup-self", token=token).json["data"]
    reply = call(api, "POST", "/v1/auth/token/lookup-accessor", {"accessor": mine["accessor"]},
                 token=ROOT)  # fmt: skip
    assert reply.status == 200
    data = reply.json["data"]
    assert data["id"] == ""
    assert data["accessor"] == mine["accessor"]
    assert data["path"] == "auth/aws/login"
    assert set(data) >= LOOKUP_KEYS
    by_accessor = call(api, "POST", "/v1/auth/token/lookup-accessor",
                       {"accessor": limited["accessor"]}, token=ROOT).json["data"]  # fmt: skip
    assert (by_accessor["num_uses"], by_accessor["path"]) == (1, "auth/token/create")
    # looking a token up by its accessor spends none of its uses
    assert (
        call(api, "GET", "/v1/auth/token/lookup-self", token=limited["client_token"]).status == 200
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "missing accessor"),
        ({"accessor": ""}, 400, "missing accessor"),
        ({"accessor": "x" * 32}, 400, "invalid accessor"),
        ({"accessor": "../token"}, 400, "invalid accessor"),
        ({"accessor": 5}, 400, "invalid accessor"),
    ],
)
def test_lookup_accessor_rejections(
    api: VaultAPI, body: dict[str, Any], status: int, message: str
) -> None:
    reply = call(api, "POST", "/v1/auth/token/lookup-accessor", body, token=ROOT)
    assert (reply.status, reply.errors) == (status, [message])


def test_lookup_accessor_is_for_root_only(api: VaultAPI) -> None:
    token = login_token(api)
    accessor = call(api, "GET", "/v1/auth/token/lookup-self", token=token).json["data"]["accessor"]
    own = call(api, "POST", "/v1/auth/token/lookup-accessor", {"accessor": accessor}, token=token)
    assert (own.status, own.errors) == (403, ["permission denied"])
    anonymous = call(
        api, "POST", "/v1/auth/token/lookup-accessor", {"accessor": accessor}, token=None
    )
    assert anonymous.status == 403
    assert call(api, "GET", "/v1/auth/token/lookup-accessor", token=ROOT).status == 405
    assert call(api, "POST", "/v1/auth/token/revoke-accessor", {"accessor": accessor},
                token=ROOT).status == 204  # fmt: skip
    gone = call(api, "POST", "/v1/auth/token/lookup-accessor", {"accessor": accessor}, token=ROOT)
    assert (gone.status, gone.errors) == (400, ["invalid accessor"])


# ------------------------------------------------------------------ through hvac


@pytest.mark.parametrize("driver", ["sync"], indirect=True)  # one server for both drivers
def test_hvac_create_lookup_and_lookup_accessor(server: DevServer) -> None:
    root = server.client()
    auth = root.auth.token.create(policies=["dev"], ttl="1h", meta={"team": "a"})["auth"]
    assert auth["policies"] == ["default", "dev"]
    assert auth["lease_duration"] == 3600
    assert auth["orphan"] is False
    data = root.auth.token.lookup(auth["client_token"])["data"]
    assert data["display_name"] == "token-token"  # hvac sends display_name "token"
    assert data["meta"] == {"team": "a"}
    by_accessor = root.auth.token.lookup_accessor(auth["accessor"])["data"]
    assert by_accessor["id"] == ""
    assert by_accessor["policies"] == ["default", "dev"]
    orphan = root.auth.token.create_orphan(policies=["ops"], num_uses=5)["auth"]
    assert (orphan["orphan"], orphan["num_uses"]) == (True, 5)
    child = server.client(token=auth["client_token"])
    assert child.auth.token.lookup_self()["data"]["path"] == "auth/token/create"
    assert child.auth.token.renew_self(increment="30m")["auth"]["lease_duration"] == 1800
    with pytest.raises(hvac.exceptions.Forbidden):
        child.auth.token.create(policies=["dev"])
    with pytest.raises(hvac.exceptions.Forbidden):
        child.auth.token.lookup_accessor(orphan["accessor"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid accessor"):
        root.auth.token.lookup_accessor("x" * 32)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="single root token"):
        root.auth.token.create()  # no policies: Vault would make a root token
    with pytest.raises(hvac.exceptions.InvalidRequest, match="ttl must be positive"):
        root.auth.token.create(policies=["dev"], ttl="-1h")
    child.auth.token.revoke_self()
    with pytest.raises(hvac.exceptions.Forbidden, match="bad token"):
        root.auth.token.lookup(auth["client_token"])
