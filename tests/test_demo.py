"""``aws-iam-backend demo``: the walkthrough (its steps, its refusals, no secret printed,
everything stopped), and ``demo start|stop`` against a dev server."""

from __future__ import annotations

import base64
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

import aws_iam_backend.demo.emulator as emulator_module
from aws_iam_backend.cli import main
from aws_iam_backend.client import login
from aws_iam_backend.demo import shell, walkthrough
from aws_iam_backend.demo.emulator import Emulator, Keys, free_port
from aws_iam_backend.demo.shell import EXPORTED, PID_VARIABLE
from tests.support.server import DevServer

pytestmark = pytest.mark.moto


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] != "Z"


def test_walkthrough(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    emulators: list[Emulator] = []
    servers: list[walkthrough.DevServer] = []
    issued: list[Keys] = []
    signed: list[dict[str, Any]] = []

    class RecordingEmulator(Emulator):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            emulators.append(self)

        def assume_role(self, role_arn: str, session: str, keys: Keys | None = None) -> Keys:
            issued.append(super().assume_role(role_arn, session, keys))
            return issued[-1]

    class RecordingServer(walkthrough.DevServer):
        def __init__(self) -> None:
            super().__init__()
            servers.append(self)

    real_sign = walkthrough.Demo.sign

    def sign(self: walkthrough.Demo, keys: Keys, secret_key: str | None = None) -> dict[str, Any]:
        signed.append(real_sign(self, keys, secret_key))
        return signed[-1]

    monkeypatch.setattr(walkthrough, "Emulator", RecordingEmulator)
    monkeypatch.setattr(walkthrough, "DevServer", RecordingServer)
    monkeypatch.setattr(walkthrough.Demo, "sign", sign)
    started = time.monotonic()
    assert main(["demo"]) == 0
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert err == ""
    assert elapsed < 20

    steps = ["1. Sign", "2. Send", "3. Verify", "4. Bind", "5. Token"]
    steps_short = {step[:3] for step in steps}
    assert [line.split(":")[0] for line in out.splitlines() if line[:3] in steps_short] == steps
    assert "X-Vault-AWS-IAM-Server-ID: vault.example.com" in out
    assert "<- 200 OK: GetCallerIdentityResult" in out
    assert "arn:aws:sts::123456789012:assumed-role/ci-runner/build-42" in out
    assert "-> match on the unique ID" in out
    assert "policies   default, deploy" in out
    assert "ttl        3600s (1h), renewable" in out
    assert out.count("Refused:") == 2
    flat = " ".join(out.split())  # long values wrap
    assert 'does not belong to the role "ci"' in flat
    assert "SignatureDoesNotMatch" in out
    assert "\033[" not in out  # no colour when not a terminal

    # Secrets are shown truncated at most: no secret key, session token or signature whole.
    assert emulators[0].admin.secret_key not in out  # the server's IAM/STS key
    assert len(issued) == 2
    assert len(signed) == 3
    for keys in issued:
        assert keys.secret_key not in out
        assert keys.session_token
        assert keys.session_token not in out
        assert keys.session_token[:12] in out or keys is issued[1]
    for payload in signed:
        headers = json.loads(base64.b64decode(payload["iam_request_headers"]))
        signature = headers["Authorization"][0].rpartition("Signature=")[2]
        assert signature not in out
        assert payload["iam_request_headers"] not in out
    # Both processes are stopped.
    assert [e.process.poll() is not None for e in emulators] == [True]
    assert [s.process.poll() is not None for s in servers] == [True]


def test_demo_needs_moto(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(emulator_module, "moto_available", lambda: False)
    assert main(["demo"]) == 1
    assert capsys.readouterr().err == (
        "error: the demo needs moto: pip install 'aws_iam_backend[demo]'\n"
    )


def exports(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        words = shlex.split(line)
        assert words[0] == "export"
        name, _, value = words[1].partition("=")
        values[name] = value
    return values


def test_start_and_stop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = DevServer()
    try:
        monkeypatch.delenv(PID_VARIABLE, raising=False)
        assert main(["demo", "start", "--address", server.address, "--token", "root"]) == 0
        out, err = capsys.readouterr()
        env = exports(out)
        assert list(env) == list(EXPORTED)
        assert "Stop it with" in err
        pid = int(env[PID_VARIABLE])
        try:
            assert running(pid)
            # The server now asks the emulator; the exported credentials are the role's.
            server.client().auth.aws.create_role(
                "ci",
                auth_type="iam",
                bound_iam_principal_arn=["arn:aws:iam::123456789012:role/ci-runner"],
            )
            creds = Credentials(
                env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]
            )
            auth = login(server.address, creds, role="ci", region="us-east-1")
            assert auth["metadata"]["account_id"] == "123456789012"

            monkeypatch.setenv(PID_VARIABLE, str(pid))
            assert main(["demo", "stop"]) == 0
            out, err = capsys.readouterr()
            assert out == "unset " + " ".join(EXPORTED) + "\n"
            assert f"Stopped the AWS emulator (pid {pid})" in err
            deadline = time.monotonic() + 10
            while running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not running(pid)
        finally:
            if running(pid):
                os.kill(pid, 15)
    finally:
        server.stop()


def test_stop_leaves_other_processes_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PID_VARIABLE, str(os.getpid()))  # not an emulator: not signalled
    assert main(["demo", "stop"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("unset AWS_ACCESS_KEY_ID ")
    assert f"No emulator runs as pid {os.getpid()}" in err


def test_start_refused_by_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emulators: list[Emulator] = []

    class RecordingEmulator(Emulator):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            emulators.append(self)

    monkeypatch.setattr(shell, "Emulator", RecordingEmulator)
    monkeypatch.delenv(PID_VARIABLE, raising=False)
    server = DevServer()
    try:
        argv = ["demo", "start", "--address", server.address, "--token", "not-the-root-token"]
        assert main(argv) == 1
        out, err = capsys.readouterr()
    finally:
        server.stop()
    assert out == ""  # no export lines
    assert err == "error: writing auth/aws/config/client: 403 permission denied\n"
    assert [e.process.poll() is not None for e in emulators] == [True]  # stopped again


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["demo", "stop"], {}, f"error: ${PID_VARIABLE} is not set"),
        (["demo", "start"], {}, "error: demo start: needs --token (or $VAULT_TOKEN)"),
        (["demo", "start", "--token", "t", "--address", "ftp://x"], {}, "error: --address must"),
        (
            ["demo", "start", "--token", "t"],
            {"VAULT_ADDR": f"http://127.0.0.1:{free_port()}"},
            "error: cannot reach http://127.0.0.1:",
        ),
    ],
)
def test_start_and_stop_failures(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name in (PID_VARIABLE, "VAULT_TOKEN", "VAULT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(message)
