"""The dev server (``python -m aws_iam_backend server --dev``) as a subprocess for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import hvac

from tests.support.moto_server import MotoServer, free_port

ROOT = "root"


class DevServer:
    """``python -m aws_iam_backend server --dev`` on a free port; always terminated by stop().

    With ``log_dir`` the server's stdout and stderr go to files there instead of pipes
    (use it for long runs: a full pipe would block the server).
    """

    def __init__(
        self, storage: str | None = None, *extra: str, log_dir: Path | None = None
    ) -> None:
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        args = ["--dev", "--dev-root-token-id", ROOT, "--listen", f"127.0.0.1:{self.port}"]
        if storage is not None:
            args += ["--storage", storage]
        self._logs: list[IO[str]] = []
        out: int | IO[str] = subprocess.PIPE
        err: int | IO[str] = subprocess.PIPE
        if log_dir is not None:
            out = open(log_dir / f"server-{self.port}.out", "w")  # noqa: SIM115
            err = open(log_dir / f"server-{self.port}.err", "w")  # noqa: SIM115
            self._logs = [out, err]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aws_iam_backend", "server", *args, *extra],
            stdout=out,
            stderr=err,
            text=True,
        )
        try:
            wait_healthy(self.address, self.process)
        except BaseException:
            self.stop()
            raise

    def configure_for(self, moto: MotoServer, mount: str = "aws", **extra: object) -> None:
        """Point ``config/client`` of ``mount`` at moto (its admin keys for IAM lookups)."""
        self.client().auth.aws.configure(
            access_key=moto.admin.access_key,
            secret_key=moto.admin.secret_key,
            sts_endpoint=moto.endpoint,
            iam_endpoint=moto.endpoint,
            mount_point=mount,
            **extra,
        )

    def client(self, token: str | None = ROOT) -> hvac.Client:
        return hvac.Client(url=self.address, token=token)

    def stop(self) -> tuple[str, str]:
        """Terminate (SIGTERM, then SIGKILL); returns stdout and stderr (empty with log_dir)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            out, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        self._close_logs()
        return out or "", err or ""

    def kill(self) -> None:
        """SIGKILL the server process (no shutdown handlers run) and reap it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.communicate(timeout=15)
        self._close_logs()

    def _close_logs(self) -> None:
        for log in self._logs:
            log.close()
        self._logs = []


def wait_healthy(address: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Poll ``/v1/sys/health`` until it answers 200; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(address + "/v1/sys/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError("server did not become healthy")
