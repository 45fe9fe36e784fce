"""Several ``server --config`` processes sharing one PostgreSQL, Redis and seal: one service.

- :class:`ClusterConfig` writes the TOML every member uses (``[storage]``, ``[cache]``,
  ``[seal]``, ``[root_token] file``, ``[limits]``), each on its own free port;
- :class:`ConfigServer` is one member (logs to files, never to a pipe that could fill);
- :func:`start_servers` starts several at once and waits until each is healthy;
- :func:`flush_prefix` deletes the Redis keys under one prefix (never ``FLUSHDB``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import attrs

from aws_iam_backend.io.seal import generate_key
from tests.support.moto_server import free_port
from tests.support.server import wait_healthy


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by the owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return path


def write_seal_key(path: Path) -> Path:
    """A fresh seal key file (one base64 32-byte key, mode 0600)."""
    return write_private(path, generate_key() + "\n")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


@attrs.frozen
class ClusterConfig:
    """What every member of one service shares; :meth:`write` makes one member's file."""

    directory: Path
    storage_url: str
    root_token_file: Path
    cache_url: str | None = None
    cache_prefix: str | None = None
    seal_key_file: Path | None = None
    limits: Mapping[str, float] = attrs.field(factory=dict)
    log_level: str = "warning"

    def text(self, port: int) -> str:
        """The TOML of a member listening on ``127.0.0.1:port``."""
        lines = [
            f"log_level = {_toml_value(self.log_level)}",
            "[listener]",
            f"address = {_toml_value(f'127.0.0.1:{port}')}",
            "tls_disable = true",
            "[storage]",
            f"url = {_toml_value(self.storage_url)}",
        ]
        if self.cache_url is not None:
            lines += ["[cache]", f"url = {_toml_value(self.cache_url)}"]
            if self.cache_prefix is not None:
                lines.append(f"prefix = {_toml_value(self.cache_prefix)}")
        if self.seal_key_file is not None:
            lines += ["[seal]", f"key_file = {_toml_value(str(self.seal_key_file))}"]
        lines += ["[root_token]", f"file = {_toml_value(str(self.root_token_file))}"]
        if self.limits:
            lines.append("[limits]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in self.limits.items()]
        return "\n".join(lines) + "\n"

    def write(self, port: int, name: str | None = None) -> Path:
        """Write the member's file (0600: it may hold a storage password) and return it."""
        return write_private(self.directory / f"{name or f'server-{port}'}.toml", self.text(port))


class ConfigServer:
    """``python -m aws_iam_backend server --config FILE`` on ``port``; stdout and stderr go
    to files in the config's directory. Not waited for: see :meth:`wait` / :func:`start_servers`.
    """

    def __init__(self, config: ClusterConfig, port: int | None = None) -> None:
        self.port = port or free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.config_file = config.write(self.port)
        self.out_path = config.directory / f"server-{self.port}.out"
        self.err_path = config.directory / f"server-{self.port}.err"
        self._logs: list[IO[str]] = [
            open(self.out_path, "w", encoding="utf-8"),  # noqa: SIM115
            open(self.err_path, "w", encoding="utf-8"),  # noqa: SIM115
        ]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aws_iam_backend", "server", "--config", str(self.config_file)],
            stdout=self._logs[0],
            stderr=self._logs[1],
            text=True,
        )

    def wait(self, timeout: float = 30) -> None:
        """Until ``sys/health`` answers 200 (fails with the server's stderr if it exits)."""
        try:
            wait_healthy(self.address, self.process, timeout=timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; stderr: {self.stderr()[-2000:]}") from None

    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        for log in self._logs:
            log.flush()
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (then SIGKILL after 15 s) and reap."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self._close_logs()

    def kill(self) -> None:
        """SIGKILL (no shutdown handler runs) and reap."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)
        self._close_logs()

    def _close_logs(self) -> None:
        for log in self._logs:
            log.close()
        self._logs = []


def start_servers(config: ClusterConfig, count: int) -> list[ConfigServer]:
    """``count`` members started at once, each healthy; on failure every one is stopped."""
    return start_fleet([(config, count)])[0]


def start_fleet(groups: list[tuple[ClusterConfig, int]]) -> list[list[ConfigServer]]:
    """For each ``(config, count)``, ``count`` members; all are started before any is
    waited for (startups overlap), and each is healthy on return. On failure every one
    started is stopped."""
    started: list[ConfigServer] = []
    fleet: list[list[ConfigServer]] = []
    try:
        for config, count in groups:
            fleet.append([])
            for _ in range(count):
                server = ConfigServer(config)
                started.append(server)
                fleet[-1].append(server)
        for server in started:
            server.wait()
    except BaseException:
        for server in started:
            server.stop()
        raise
    return fleet


def run_once(config_file: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``server --config config_file`` expecting it to exit by itself (a start failure)."""
    return subprocess.run(
        [sys.executable, "-m", "aws_iam_backend", "server", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def flush_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` in the Redis at ``redis_url``; returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


__all__ = [
    "ClusterConfig",
    "ConfigServer",
    "flush_prefix",
    "run_once",
    "start_fleet",
    "start_servers",
    "write_private",
    "write_seal_key",
]
