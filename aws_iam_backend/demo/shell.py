"""``aws-iam-backend demo start|stop``: an AWS emulator for a running server and this shell.

``eval "$(aws-iam-backend demo start --address URL --token ROOT)"`` starts the emulator in
the background, creates the IAM role ``ci-runner`` in it, points the server's
``config/client`` at it, and prints ``export`` lines that give the shell the role's
credentials (as an instance profile would give a workload) and ``AWS_ENDPOINT_URL``.
``eval "$(aws-iam-backend demo stop)"`` stops it and prints the matching ``unset``.
Like ``ssh-agent``: the shell commands go to stdout, messages to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from aws_iam_backend.demo.emulator import ACCOUNT_ID, Emulator, EmulatorError, stop_detached
from aws_iam_backend.demo.walkthrough import http_call

PID_VARIABLE = "AWS_IAM_BACKEND_DEMO_PID"
IAM_ROLE = "ci-runner"
EXPORTED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    PID_VARIABLE,
)
# The README's embedding examples run with the workload's credentials, and resolve the
# bound role's unique ID in IAM with them: the role may read itself.
READ_IAM_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iam:GetRole", "iam:GetUser"], "Resource": "*"}
        ],
    }
)


class ShellError(Exception):
    """A failure to report as ``error: <message>``."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _is_emulator(pid: int) -> bool:
    """Whether ``pid`` runs moto's server (checked before signalling it)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"moto.server" in cmdline.read()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        command = subprocess.run(  # noqa: S603 - fixed program and arguments
            ["ps", "-o", "command=", "-p", str(pid)],  # noqa: S607 - ps from PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "moto.server" in command


def _previous_pid() -> int | None:
    value = os.environ.get(PID_VARIABLE, "")
    return int(value) if value.isdigit() else None


def start(address: str, token: str, mount: str = "aws") -> int:
    """Start a detached emulator, configure the server, print the ``export`` lines."""
    address = address.rstrip("/")
    if not address.startswith(("http://", "https://")):
        raise ShellError("--address must be an http(s) URL")
    try:
        urllib.request.urlopen(address + "/v1/sys/health", timeout=5).close()  # noqa: S310
    except urllib.error.HTTPError:
        pass  # sealed or standby: it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ShellError(
            f"cannot reach {address} ({reason}): start the server first, e.g. "
            "aws-iam-backend server --dev --dev-root-token-id root"
        ) from None
    previous = _previous_pid()
    if previous is not None and _is_emulator(previous) and stop_detached(previous):
        _say(f"Stopped the emulator this shell started before (pid {previous}).")
    try:
        aws = Emulator(detached=True)
    except EmulatorError as exc:
        raise ShellError(str(exc)) from None
    try:
        role = aws.create_role(IAM_ROLE)
        aws.iam.put_role_policy(
            RoleName=IAM_ROLE, PolicyName="read-iam", PolicyDocument=READ_IAM_POLICY
        )
        config = {
            "sts_endpoint": aws.endpoint,
            "iam_endpoint": aws.endpoint,
            "access_key": aws.admin.access_key,
            "secret_key": aws.admin.secret_key,
        }
        mount = mount.strip("/")
        answer = http_call(address, "POST", f"auth/{mount}/config/client", config, token)
        if answer.status not in (200, 204):
            raise ShellError(f"writing auth/{mount}/config/client: {answer.status} {answer.error}")
        keys = aws.assume_role(role["Arn"], "workload")
    except BaseException:
        aws.stop()
        raise
    values = {
        "AWS_ACCESS_KEY_ID": keys.access_key,
        "AWS_SECRET_ACCESS_KEY": keys.secret_key,
        "AWS_SESSION_TOKEN": keys.session_token or "",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": aws.endpoint,
        PID_VARIABLE: str(aws.pid),
    }
    for name in EXPORTED:
        print(f"export {name}={shlex.quote(values[name])}")
    sys.stdout.flush()
    _say(
        f"AWS emulator (moto, account {ACCOUNT_ID}) at {aws.endpoint}, pid {aws.pid}.\n"
        f"  {address}: auth/{mount}/config/client now points at it.\n"
        f"  This shell runs as the IAM role {role['Arn']}\n"
        "  (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL).\n"
        '  Stop it with: eval "$(aws-iam-backend demo stop)"'
    )
    if sys.stdout.isatty():
        _say('  (Run this as eval "$(aws-iam-backend demo start ...)" to set them in your shell.)')
    return 0


def stop() -> int:
    """Stop the emulator this shell started; print the ``unset`` line."""
    pid = _previous_pid()
    if pid is None:
        raise ShellError(f"${PID_VARIABLE} is not set: no emulator was started from this shell")
    if not _is_emulator(pid):
        _say(f"No emulator runs as pid {pid} (any more): nothing to stop.")
    elif stop_detached(pid):
        deadline = time.monotonic() + 5
        while _is_emulator(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_emulator(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _say(f"Stopped the AWS emulator (pid {pid}); this shell's AWS_* variables are unset.")
    print("unset " + " ".join(EXPORTED))
    return 0
