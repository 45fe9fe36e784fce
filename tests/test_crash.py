"""Crash safety (issue item 5): SIGKILL the dev server during a login storm, restart it on
the same SQLite file, and check that nothing acknowledged was lost and nothing is half-written.

What the code guarantees (tokens.py, storage/sqlite.py), and so what is asserted:

- every SQLite write is one committed transaction (WAL, ``synchronous=FULL``): after the
  crash every ``kv`` value is a whole JSON object;
- a login answers 200 only after its token record and accessor index are committed, so
  every token returned still looks up and its accessor resolves to it;
- the record and its index are one atomic commit (one transaction), so every record has its
  index and every index names an existing record with that accessor (no revocations run
  during the storm);
- records of logins that were in flight when the server died (committed, never
  acknowledged, the token never left the process): at most one per storm thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from aws_iam_backend.vault.tokens import from_document
from tests.support.moto_server import Keys, MotoServer
from tests.support.payloads import botocore_payload
from tests.support.server import ROOT, DevServer

pytestmark = pytest.mark.moto

THREADS = 8
KILL_AFTER = 40  # acknowledged logins before the SIGKILL
TOKEN_PREFIX = "sys/token/token/"
ACCESSOR_PREFIX = "sys/token/accessor/"


def configure(server: DevServer, moto: MotoServer) -> Keys:
    admin = server.client()
    server.configure_for(moto)
    user, keys = moto.create_user(f"storm-{uuid.uuid4().hex[:8]}")
    admin.auth.aws.create_role(
        "storm", auth_type="iam", bound_iam_principal_arn=[user["Arn"]], ttl="1h"
    )
    return keys


def login(address: str, keys: Keys, session: requests.Session) -> requests.Response:
    payload = botocore_payload(keys, role="storm")
    return session.post(f"{address}/v1/auth/aws/login", data=json.dumps(payload), timeout=10)


class Storm:
    """``THREADS`` threads logging in as fast as they can until the server goes away."""

    def __init__(self, address: str, keys: Keys) -> None:
        self.address = address
        self.keys = keys
        self.lock = threading.Lock()
        self.tokens: list[tuple[str, str]] = []  # (token, accessor) answered with 200
        self.refused: list[tuple[int, str]] = []
        self.enough = threading.Event()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    response = login(self.address, self.keys, session)
                except requests.RequestException:
                    return  # the server is gone
                with self.lock:
                    if response.status_code == 200:
                        auth = response.json()["auth"]
                        self.tokens.append((auth["client_token"], auth["accessor"]))
                        if len(self.tokens) >= KILL_AFTER:
                            self.enough.set()
                    else:
                        self.refused.append((response.status_code, response.text[:200]))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive()


def scan(db: Path) -> dict[str, Any]:
    """Every row of ``kv``, values parsed (a non-JSON value fails the test here)."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT key, value FROM kv").fetchall()
    finally:
        conn.close()
    parsed: dict[str, Any] = {}
    for key, value in rows:
        doc = json.loads(value)
        assert isinstance(doc, dict), key
        parsed[key] = doc
    return parsed


def test_sigkill_during_login_storm_loses_nothing_acknowledged(
    moto: MotoServer, tmp_path: Path
) -> None:
    db = tmp_path / "crash.db"
    storage = f"sqlite:///{db}"
    first = DevServer(storage, log_dir=tmp_path)
    try:
        keys = configure(first, moto)
        storm = Storm(first.address, keys)
        storm.start()
        assert storm.enough.wait(120), f"storm too slow: {storm.refused[:3]}"
        first.kill()  # SIGKILL, mid-storm: the threads are still sending
        storm.join()
    finally:
        first.kill()
    assert storm.refused == []
    acknowledged = list(storm.tokens)
    assert len(acknowledged) >= KILL_AFTER

    # The file as the crash left it (SQLite recovers the WAL on open).
    rows = scan(db)
    records = {k[len(TOKEN_PREFIX) :]: v for k, v in rows.items() if k.startswith(TOKEN_PREFIX)}
    accessors = {
        k[len(ACCESSOR_PREFIX) :]: v for k, v in rows.items() if k.startswith(ACCESSOR_PREFIX)
    }
    for doc in records.values():
        from_document(doc)  # a whole, well-formed token record
    for accessor, index in accessors.items():
        record = records.get(index["token_hmac"])
        assert record is not None, "accessor names a missing token record"
        assert record["accessor"] == accessor
    for _token, accessor in acknowledged:
        assert accessor in accessors, "an acknowledged login lost its accessor index"
    indexed = {index["token_hmac"] for index in accessors.values()}
    assert set(records) == indexed, "a token record without its accessor index"
    assert len(records) <= len(acknowledged) + THREADS
    assert any(k.startswith("auth/") and k.endswith("/role/storm") for k in rows)

    second = DevServer(storage, log_dir=tmp_path)
    try:
        with requests.Session() as session:
            for token, accessor in acknowledged:
                response = session.get(
                    f"{second.address}/v1/auth/token/lookup-self",
                    headers={"X-Vault-Token": token},
                    timeout=10,
                )
                assert response.status_code == 200, response.text
                data = response.json()["data"]
                assert data["accessor"] == accessor
                assert data["path"] == "auth/aws/login"
            # and the server serves normally: health, a fresh login, admin reads
            assert session.get(f"{second.address}/v1/sys/health", timeout=10).status_code == 200
            fresh = login(second.address, keys, session)
            assert fresh.status_code == 200, fresh.text
            token = fresh.json()["auth"]["client_token"]
            me = second.client(token).auth.token.lookup_self()["data"]
            assert me["policies"] == ["default"]
            assert second.client(ROOT).auth.aws.read_role("storm")
    finally:
        second.stop()
