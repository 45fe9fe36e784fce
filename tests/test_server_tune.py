"""``sys/auth/<path>/tune``: reading and changing a mount's description and lease TTLs,
what new logins and renewals get afterwards in every process, Vault's rejections (each
changing nothing), and the races: two tunes at once, a tune racing a disable, logins
racing tunes, across threads and processes. Then hvac's own calls against the dev server.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest

from aws_iam_backend import Backend as SyncBackend
from aws_iam_backend import MemoryStorage
from aws_iam_backend.io.storage import open_storage
from aws_iam_backend.server._sync.api import VaultAPI as SyncVaultAPI
from tests.support.drivers import VaultAPI, driver  # noqa: F401
from tests.support.fakes import FakeIam, RecordingTransport, ok_response
from tests.support.moto_server import MotoServer
from tests.support.processes import run_together
from tests.support.server import DevServer
from tests.support.vault_api import (  # noqa: F401 (the fixtures)
    ARN,
    ROOT,
    SYSTEM_TTL,
    Reply,
    add_role,
    api_fixture,
    call,
    lease,
    login,
    login_token,
    make_api,
    run_threads,
    server_fixture,
    storage_fixture,
)

THREADS = 8
TRIALS = 5
PROCESSES = 3


def tune(api: Any, mount: str, **body: Any) -> Reply:
    return call(api, "POST", f"/v1/sys/auth/{mount}/tune", body)


def tuning(api: Any, mount: str) -> dict[str, Any]:
    reply = call(api, "GET", f"/v1/sys/auth/{mount}/tune")
    assert reply.status == 200, reply.json
    data: dict[str, Any] = reply.json["data"]
    return data


def renew(api: SyncVaultAPI, token: str, increment: str) -> int:
    reply = call(api, "POST", "/v1/auth/token/renew-self", {"increment": increment}, token=token)
    assert reply.status == 200, reply.json
    granted: int = reply.json["auth"]["lease_duration"]
    return granted


# ------------------------------------------------------------------ read & write


def test_tune_read_and_write(api: VaultAPI) -> None:
    reply = call(api, "GET", "/v1/sys/auth/aws/tune")
    untuned = {
        "description": "", "default_lease_ttl": SYSTEM_TTL, "max_lease_ttl": SYSTEM_TTL,
        "force_no_cache": False, "token_type": "default-service",
    }  # fmt: skip
    assert reply.json["data"] == untuned
    assert {k: reply.json[k] for k in untuned} == untuned  # sys/ answers carry data on top too
    done = tune(api, "aws", default_lease_ttl="1h", max_lease_ttl=7200, description="prod")
    assert (done.status, done.json) == (204, None)
    assert tuning(api, "aws/") == {**untuned, "description": "prod", "default_lease_ttl": 3600,
                                   "max_lease_ttl": 7200}  # fmt: skip
    listed = call(api, "GET", "/v1/sys/auth").json["data"]["aws/"]
    assert listed["description"] == "prod"
    assert (listed["config"]["default_lease_ttl"], listed["config"]["max_lease_ttl"]) == (
        3600,
        7200,
    )
    assert tune(api, "aws", default_lease_ttl="", description="").status == 204  # "": keep
    assert tuning(api, "aws") == {**untuned, "default_lease_ttl": 3600, "max_lease_ttl": 7200}
    assert tune(api, "aws", default_lease_ttl="system", max_lease_ttl="system").status == 204
    assert tuning(api, "aws") == untuned
    assert "aws/tune/" not in call(api, "GET", "/v1/sys/auth").json["data"]


def test_token_mount_tuning(api: VaultAPI) -> None:
    assert tuning(api, "token")["description"] == "token based credentials"
    assert tune(api, "token", max_lease_ttl="48h", description="tokens").status == 204
    assert tuning(api, "token") == {
        "description": "tokens", "default_lease_ttl": SYSTEM_TTL, "max_lease_ttl": 48 * 3600,
        "force_no_cache": False, "token_type": "default-service",
    }  # fmt: skip
    listed = call(api, "GET", "/v1/sys/auth").json["data"]["token/"]
    assert (listed["description"], listed["config"]["max_lease_ttl"]) == ("tokens", 48 * 3600)
    assert call(api, "POST", "/v1/sys/auth/extra", {"type": "aws"}).status == 204
    assert call(api, "DELETE", "/v1/sys/auth/extra").status == 204
    assert tuning(api, "token")["description"] == "tokens"  # enable and disable keep it


def test_unknown_fields_are_a_warning(api: VaultAPI) -> None:
    reply = tune(api, "aws", description="x", colour="red")
    assert reply.status == 200
    assert reply.json["warnings"] == ["Endpoint ignored these unrecognized parameters: [colour]"]
    assert tuning(api, "aws")["description"] == "x"


def test_tuned_ttls_apply_to_new_logins_and_renewals(api: VaultAPI) -> None:
    add_role(api)
    token, granted = lease(api)
    assert granted == SYSTEM_TTL
    assert tune(api, "aws", default_lease_ttl="10m", max_lease_ttl="20m").status == 204
    assert 1190 <= renew(api, token, "1h") <= 1200  # capped from its issue time
    fresh, granted = lease(api)
    assert granted == 600
    assert 1190 <= renew(api, fresh, "1h") <= 1200
    assert tune(api, "aws", max_lease_ttl="5m").status == 400  # below the default
    assert tune(api, "aws", default_lease_ttl="system", max_lease_ttl="5m").status == 204
    assert lease(api)[1] == 300  # the system default, capped at the mount's max


def test_a_stale_process_honours_a_lowered_max_at_once(storage: MemoryStorage) -> None:
    """A process that has not adopted the new table yet (a long coherence interval) still
    issues and renews within the tuned max: its token's commit finds the table moved and
    reads the mount afresh, and a renewal reads it past the cache."""
    stale = make_api(storage, coherence_interval=3600)
    fresh = make_api(storage, coherence_interval=0)
    add_role(stale)
    token, granted = lease(stale)
    assert granted == SYSTEM_TTL
    assert tune(fresh, "aws", max_lease_ttl="60s").status == 204
    assert lease(stale)[1] == 60
    assert 50 <= renew(stale, token, "1h") <= 60
    # the description alone changes nothing a login gets
    assert tune(fresh, "aws", description="d").status == 204
    assert lease(stale)[1] == 60


REJECTED = [
    ({"default_lease_ttl": "2h", "max_lease_ttl": "1h"},
     "backend max lease TTL of 3600 would be less than backend default lease TTL of 7200"),
    ({"max_lease_ttl": "30m"},
     "backend max lease TTL of 1800 would be less than backend default lease TTL of 3600"),
    ({"default_lease_ttl": "soon"}, 'time: invalid duration "soon"'),
    ({"max_lease_ttl": "-5"}, "cannot provide negative value '-5'"),
    ({"default_lease_ttl": [60]},
     'Field validation failed: error converting input for field "default_lease_ttl": '
     "'' expected type 'string', got unconvertible type '[]interface {}'"),
    ({"description": {"a": 1}},
     'Field validation failed: error converting input for field "description": '
     "'' expected type 'string', got unconvertible type 'map[string]interface {}'"),
    ({"listing_visibility": "unauth", "description": "x"},
     'tuning "listing_visibility" is not supported by this server'),
    ({"token_type": "batch"}, 'tuning "token_type" is not supported by this server'),
]  # fmt: skip


@pytest.mark.parametrize("mount", ["aws", "token"])
@pytest.mark.parametrize(("body", "message"), REJECTED)
def test_tune_rejections_change_nothing(
    api: VaultAPI, storage: MemoryStorage, mount: str, body: dict[str, Any], message: str
) -> None:
    assert tune(api, mount, default_lease_ttl="1h", description="before").status == 204
    table = storage.read("sys/mounts")
    reply = tune(api, mount, **body)
    assert (reply.status, reply.errors) == (400, [message])
    assert storage.read("sys/mounts") == table


def test_tune_paths_and_callers(api: VaultAPI, storage: MemoryStorage) -> None:
    table = storage.read("sys/mounts")
    missing = tune(api, "nope", description="x")
    assert (missing.status, missing.errors) == (
        400,
        ['tune of path "auth/nope/" failed: no mount entry found'],
    )
    unread = call(api, "GET", "/v1/sys/auth/nope/tune")
    assert (unread.status, unread.errors) == (400, ['cannot fetch sysview for path "auth/nope/"'])
    bad = tune(api, "a/../b", description="x")
    assert (bad.status, bad.errors) == (400, ["invalid mount path: 'a/../b'"])
    for token in (login_token(api), None, "not-a-token"):
        assert call(api, "GET", "/v1/sys/auth/aws/tune", token=token).status == 403
        body = {"description": "x"}
        assert call(api, "POST", "/v1/sys/auth/aws/tune", body, token=token).status == 403
    assert call(api, "DELETE", "/v1/sys/auth/aws/tune").status == 405
    assert call(api, "LIST", "/v1/sys/auth/aws/tune").status == 405
    assert storage.read("sys/mounts") == table


# ------------------------------------------------------------------------- races


def test_tunes_of_many_mounts_at_once_all_hold(api: VaultAPI) -> None:
    mounts = [f"m{index}" for index in range(THREADS)]
    for mount in mounts:
        assert call(api, "POST", f"/v1/sys/auth/{mount}", {"type": "aws"}).status == 204
    start = threading.Barrier(THREADS)
    statuses: list[int] = []

    def tune_one(index: int) -> None:
        start.wait()
        reply = tune(api, mounts[index], default_lease_ttl=60 * (index + 1), description=str(index))
        statuses.append(reply.status)

    run_threads(*(functools.partial(tune_one, index) for index in range(THREADS)))
    assert statuses == [204] * THREADS
    for index, mount in enumerate(mounts):
        assert tuning(api, mount)["default_lease_ttl"] == 60 * (index + 1)
        assert tuning(api, mount)["description"] == str(index)


def test_two_tunes_of_one_mount_are_checked_against_each_other(api: VaultAPI) -> None:
    """Each alone is valid; together the max would be below the default. The second to
    commit is checked against the first's result, so exactly one holds."""
    for _ in range(TRIALS):
        assert tune(api, "aws", default_lease_ttl="system", max_lease_ttl="system").status == 204
        start = threading.Barrier(2)
        replies: dict[str, Reply] = {}

        def run(field: str, value: str) -> None:
            start.wait()  # noqa: B023 (threads end within the iteration)
            replies[field] = tune(api, "aws", **{field: value})  # noqa: B023

        run_threads(
            functools.partial(run, "default_lease_ttl", "2h"),
            functools.partial(run, "max_lease_ttl", "1h"),
        )
        assert sorted(reply.status for reply in replies.values()) == [204, 400]
        loser = next(reply for reply in replies.values() if reply.status == 400)
        assert loser.errors == [
            "backend max lease TTL of 3600 would be less than backend default lease TTL of 7200"
        ]
        now = tuning(api, "aws")
        assert (now["default_lease_ttl"], now["max_lease_ttl"]) in {
            (7200, SYSTEM_TTL),
            (SYSTEM_TTL, 3600),
        }


def test_a_tune_racing_a_disable_never_brings_the_mount_back(
    api: VaultAPI, storage: MemoryStorage
) -> None:
    gone = ['tune of path "auth/racy/" failed: no mount entry found']
    for _ in range(TRIALS):
        assert call(api, "POST", "/v1/sys/auth/racy", {"type": "aws"}).status == 204
        start = threading.Barrier(THREADS + 1)
        outcomes: list[tuple[int, list[str] | None]] = []

        def tune_loop() -> None:
            start.wait()  # noqa: B023 (threads end within the iteration)
            for index in range(10):
                reply = tune(api, "racy", default_lease_ttl=60 + index)
                outcomes.append((reply.status, None if reply.status == 204 else reply.errors))  # noqa: B023
                if reply.status != 204:
                    return

        def disable() -> None:
            start.wait()  # noqa: B023 (threads end within the iteration)
            assert call(api, "DELETE", "/v1/sys/auth/racy").status == 204

        run_threads(*[tune_loop] * THREADS, disable)
        assert all(outcome == (400, gone) for outcome in outcomes if outcome[0] != 204)
        assert "racy/" not in call(api, "GET", "/v1/sys/auth").json["data"]
        assert tune(api, "racy", description="x").errors == gone
        assert "racy/" not in json.dumps(storage.read("sys/mounts").value)  # type: ignore[union-attr]


def test_logins_racing_tunes_are_never_refused(api: VaultAPI) -> None:
    """A tune moves the table under a login's commit: the login retries on the tuned
    mount (it is still the same mount) instead of failing."""
    add_role(api)
    start = threading.Barrier(THREADS + 1)
    granted: list[int] = []
    failures: list[Any] = []

    def login_loop() -> None:
        start.wait()
        for _ in range(10):
            reply = login(api)
            if reply.status == 200:
                granted.append(reply.json["auth"]["lease_duration"])
            else:
                failures.append(reply.json)

    def tune_loop() -> None:
        start.wait()
        for index in range(20):
            assert tune(api, "aws", default_lease_ttl="5m" if index % 2 else "7m").status == 204

    run_threads(*[login_loop] * THREADS, tune_loop)
    assert failures == []
    assert len(granted) == THREADS * 10
    assert set(granted) <= {300, 420, SYSTEM_TTL}


# --------------------------------------------------------------------- processes


@pytest.fixture
def shared_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    api = SyncVaultAPI(storage=open_storage(url), root_token=ROOT)
    for index in range(PROCESSES):
        assert call(api, "POST", f"/v1/sys/auth/p{index}", {"type": "aws"}).status == 204
    return url


def _tune_in_process(
    url: str, mount: str, body: dict[str, Any], barrier: ProcessBarrier, results: Any
) -> None:
    api = SyncVaultAPI(storage=open_storage(url), root_token=ROOT)
    call(api, "GET", "/v1/sys/auth")  # adopt the table before the race
    barrier.wait()
    reply = tune(api, mount, **body)
    results.put((mount, reply.status, None if reply.status == 204 else reply.errors))


def test_tunes_from_several_processes_all_hold(shared_url: str) -> None:
    args = [
        (shared_url, f"p{index}", {"default_lease_ttl": 60 * (index + 1), "description": "d"})
        for index in range(PROCESSES)
    ]
    outcomes = run_together(_tune_in_process, args)
    assert sorted(outcomes) == [(f"p{index}", 204, None) for index in range(PROCESSES)]
    api = SyncVaultAPI(storage=open_storage(shared_url), root_token=ROOT)
    for index in range(PROCESSES):
        assert tuning(api, f"p{index}")["default_lease_ttl"] == 60 * (index + 1)


def test_conflicting_tunes_from_two_processes_one_holds(shared_url: str) -> None:
    args = [
        (shared_url, "p0", {"default_lease_ttl": "2h"}),
        (shared_url, "p0", {"max_lease_ttl": "1h"}),
    ]
    outcomes = run_together(_tune_in_process, args)
    assert sorted(status for _, status, _ in outcomes) == [204, 400]
    api = SyncVaultAPI(storage=open_storage(shared_url), root_token=ROOT)
    now = tuning(api, "p0")
    assert (now["default_lease_ttl"], now["max_lease_ttl"]) in {
        (7200, SYSTEM_TTL),
        (SYSTEM_TTL, 3600),
    }


def _tune_until_gone(url: str, barrier: ProcessBarrier, results: Any) -> None:
    api = SyncVaultAPI(storage=open_storage(url), root_token=ROOT)
    barrier.wait()
    outcomes = []
    for index in range(10):
        reply = tune(api, "p0", default_lease_ttl=60 + index)
        outcomes.append((reply.status, None if reply.status == 204 else reply.errors))
        if reply.status != 204:
            break
    results.put(outcomes)


def test_tunes_from_other_processes_racing_a_disable(shared_url: str) -> None:
    api = SyncVaultAPI(storage=open_storage(shared_url), root_token=ROOT)

    def disable() -> None:
        assert call(api, "DELETE", "/v1/sys/auth/p0").status == 204

    outcomes = run_together(_tune_until_gone, [(shared_url,)] * PROCESSES, between=disable)
    refusals = {tuple(o[1] or ()) for each in outcomes for o in each if o[0] != 204}
    assert refusals <= {('tune of path "auth/p0/" failed: no mount entry found',)}
    assert "p0/" not in call(api, "GET", "/v1/sys/auth").json["data"]
    assert tune(api, "p0", description="x").status == 400


def _login_after_tune(url: str, flag: str, barrier: ProcessBarrier, results: Any) -> None:
    api = SyncVaultAPI(
        storage=open_storage(url),
        root_token=ROOT,
        backend_factory=functools.partial(
            SyncBackend,  # the sync Backend itself: no driver machinery in a child
            transport=RecordingTransport(lambda _r: ok_response(ARN, "AIDAALICE")),
            iam=FakeIam(),
        ),
    )
    token, _ = lease(api, "p1")  # adopts the table as it is before the tune
    barrier.wait()
    deadline = time.monotonic() + 60
    while not Path(flag).exists():  # the tune has returned
        assert time.monotonic() < deadline
        time.sleep(0.01)
    _, granted = lease(api, "p1")
    results.put((granted, renew(api, token, "1h")))


def test_every_process_honours_a_tune_once_it_returns(shared_url: str, tmp_path: Path) -> None:
    api = SyncVaultAPI(storage=open_storage(shared_url), root_token=ROOT)
    add_role(api, "p1")
    flag = tmp_path / f"tuned-{uuid.uuid4().hex}"

    def tune_then_flag() -> None:
        assert tune(api, "p1", max_lease_ttl="90s").status == 204
        flag.touch()

    outcomes = run_together(
        _login_after_tune, [(shared_url, str(flag))] * PROCESSES, between=tune_then_flag
    )
    for granted, renewed in outcomes:
        assert granted == 90
        assert renewed <= 90


# -------------------------------------------------------------------- hvac


@pytest.mark.parametrize("driver", ["sync"], indirect=True)  # one server for both drivers
def test_hvac_tune_auth_method(server: DevServer, moto: MotoServer) -> None:
    client = server.client()
    client.sys.enable_auth_method("aws", path="tuned")
    server.configure_for(moto, "tuned")
    client.sys.tune_auth_method(
        "tuned", default_lease_ttl="5m", max_lease_ttl=600, description="tuned mount"
    )
    read = client.sys.read_auth_method_tuning("tuned")
    assert read["data"]["default_lease_ttl"] == 300
    assert read["data"]["max_lease_ttl"] == 600
    assert read["data"]["description"] == "tuned mount"
    assert read["default_lease_ttl"] == 300  # on top too, as Vault's sys/ answers have it
    listed = client.sys.list_auth_methods()["data"]
    assert listed["tuned/"]["config"]["max_lease_ttl"] == 600
    assert "tuned/tune/" not in listed
    user, keys = moto.create_user(f"tune{uuid.uuid4().hex[:8]}")
    client.auth.aws.create_role(
        "dev", auth_type="iam", bound_iam_principal_arn=[user["Arn"]], mount_point="tuned"
    )
    login_client = server.client(token=None)
    login_client.auth.aws.iam_login(keys.access_key, keys.secret_key, role="dev",
                                    mount_point="tuned")  # fmt: skip
    assert login_client.auth.token.lookup_self()["data"]["creation_ttl"] == 300
    renewed = login_client.auth.token.renew_self(increment="1h")["auth"]["lease_duration"]
    assert 590 <= renewed <= 600
    client.sys.tune_auth_method("token", max_lease_ttl="1h")
    assert client.sys.read_auth_method_tuning("token")["data"]["max_lease_ttl"] == 3600
    created = client.auth.token.create(policies=["dev"], ttl="2h")
    assert created["auth"]["lease_duration"] == 3600
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no mount entry found"):
        client.sys.tune_auth_method("missing", description="x")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="would be less than"):
        client.sys.tune_auth_method("tuned", max_lease_ttl="1m")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="cannot fetch sysview"):
        client.sys.read_auth_method_tuning("missing")
    with pytest.raises(hvac.exceptions.Forbidden):
        login_client.sys.read_auth_method_tuning("tuned")
