"""The README, run top to bottom: its ``sh`` and ``python`` blocks, in order, offline.

The blocks run one after the other in a temporary directory, as a new user would type them
in one terminal (the dev server's block in another): a block fails the test if it exits
non-zero or prints a Vault error (``"errors":``). ``sh`` blocks run in bash with
``set -e -o pipefail``, and what they export carries over to the blocks after them;
``python`` blocks run as scripts. Blocks in other languages (``toml``) are shown, not run.

Markers: an HTML comment on the line before a block's opening fence (GitHub does not show it)
changes how the block runs:

- ``<!-- readme-test: background -->``: started, and left running until the end (the dev
  server); the next block waits until the server answers at the README's address;
- ``<!-- readme-test: skip (REASON) -->``: not run; the reason says why. Only the test suite
  itself is skipped: every other block runs.

Rewrites, so the test runs on any machine:

- ``pip install ... &&`` is dropped: the environment under test is installed already;
- the README's address ``127.0.0.1:8200`` becomes a free loopback port, and the dev server's
  command gets ``--listen`` for it (port 8200 may be taken);
- ``aws-iam-backend`` and ``python`` are this interpreter's (a directory of shims is first on
  ``PATH``), and ``HOME`` is a temporary directory (``login`` writes ``~/.vault-token``).

No AWS: ``AWS_*`` variables are cleared, the AWS config files and the instance metadata
service are disabled, and ``HTTP(S)_PROXY`` point at a closed port (loopback excepted), so a
block that tried to reach AWS would fail. The README's emulator step supplies everything.
"""

from __future__ import annotations

import json
import os
import re
import signal
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from aws_iam_backend.demo.emulator import free_port, wait_for_http
from aws_iam_backend.demo.shell import PID_VARIABLE

README = Path(__file__).parent.parent / "README.md"
README_ADDRESS = "127.0.0.1:8200"
BLOCK_TIMEOUT = 120
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->$")

pytestmark = pytest.mark.moto


@attrs.frozen
class Block:
    """A fenced code block of the README."""

    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: str | None  # "background", "skip", or None


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text``, with the marker before each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        before = [line for line in lines[:index] if line.strip()]
        marked = MARKER.match(before[-1].strip()) if before else None
        code = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(index + 1, opening.group(1), code, marked.group(1) if marked else None))
        index = end + 1
    return blocks


def rewrite(code: str, address: str) -> str:
    """The README's code as this test runs it (see the module docstring)."""
    code = re.sub(r"pip install [^\n&]*&&\s*", "", code)
    code = code.replace(README_ADDRESS, address)
    if "--listen" not in code:
        code = re.sub(r"aws-iam-backend server --dev\b", f"\\g<0> --listen {address}", code)
    return code


def test_markers_are_known() -> None:
    blocks = readme_blocks(README.read_text())
    assert {block.marker for block in blocks} <= {None, "background", "skip"}
    assert [b.marker for b in blocks if b.marker == "skip"] == ["skip"]  # only the suite


def offline_env(shims: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "http_proxy", "https_proxy", "no_proxy"):
        env.pop(name, None)
    dead = f"http://127.0.0.1:{free_port()}"
    env.update(
        PATH=f"{shims}{os.pathsep}{env.get('PATH', '')}",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        HOME=str(home),  # `login` stores its token in ~/.vault-token
        PYTHONUSERBASE=site.getuserbase(),  # packages installed with --user stay importable
    )
    return env


def make_shims(directory: Path) -> Path:
    """``python`` and ``aws-iam-backend`` of this interpreter, in a directory of their own."""
    directory.mkdir()
    for name, command in (
        ("python", f'exec "{sys.executable}" "$@"'),
        ("aws-iam-backend", f'exec "{sys.executable}" -m aws_iam_backend "$@"'),
    ):
        shim = directory / name
        shim.write_text(f"#!/bin/sh\n{command}\n")
        shim.chmod(0o755)
    return directory


def wait_healthy(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    if wait_for_http(f"http://{address}/v1/sys/health", process, 30):
        return
    if process.poll() is not None:
        pytest.fail(f"the background block exited:\n{log.read_text()[-2000:]}")
    pytest.fail("the dev server did not answer within 30s")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, never reaped by a container's init, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


class Runner:
    """Runs blocks in one directory, carrying the environment from block to block."""

    def __init__(self, workdir: Path, env: dict[str, str], address: str) -> None:
        self.workdir = workdir
        self.env = env
        self.address = address
        self.background: list[subprocess.Popen[bytes]] = []
        self.emulators: set[int] = set()

    def run(self, block: Block) -> str:
        code = rewrite(block.code, self.address)
        where = f"README.md:{block.line}"
        if block.marker == "background":
            log = self.workdir / f"background-{block.line}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    ["bash", "-c", code],
                    cwd=self.workdir,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped as one
                )
            self.background.append(process)
            wait_healthy(self.address, process, log)
            return ""
        if block.language == "python":
            script = self.workdir / f"readme_{block.line}.py"
            script.write_text(code)
            command = ["python", str(script)]
        else:
            saved = self.workdir / "env.json"
            dump = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
            code = f"set -e -o pipefail\n{code}\npython -c {json.dumps(dump)} {saved}\n"
            command = ["bash", "-c", code]
        result = subprocess.run(
            command,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{where} exited {result.returncode}:\n{output[-3000:]}"
        assert '"errors":' not in result.stdout, f"{where} printed an error:\n{output[-3000:]}"
        if block.language == "sh":
            self.env = json.loads(saved.read_text())
            pid = self.env.get(PID_VARIABLE, "")
            if pid.isdigit():
                self.emulators.add(int(pid))
        return output

    def close(self) -> None:
        for process in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in self.emulators:  # left running only if a block failed
            if alive(pid):
                os.kill(pid, signal.SIGTERM)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = offline_env(make_shims(tmp_path / "bin"), home)
    runner = Runner(workdir, env, f"127.0.0.1:{free_port()}")
    try:
        yield runner
    finally:
        runner.close()


def test_readme_runs_top_to_bottom(runner: Runner) -> None:
    blocks = [
        b
        for b in readme_blocks(README.read_text())
        if b.language in ("sh", "python") and b.marker != "skip"
    ]
    outputs = [runner.run(block) for block in blocks]

    # The first block is the demo: a login succeeds and two are refused.
    assert blocks[0].code.strip().endswith("aws-iam-backend demo")
    assert "5. Token" in outputs[0]
    assert outputs[0].count("Refused:") == 2
    assert "Done in" in outputs[0]
    # The emulator was started, then stopped by the last block, and its variables unset.
    assert len(runner.emulators) == 1
    assert not any(alive(pid) for pid in runner.emulators)
    assert not {k for k in runner.env if k.startswith("AWS_") and "FILE" not in k} - {
        "AWS_EC2_METADATA_DISABLED"
    }
    # Logins printed their policies; the curl step removed its login.json.
    assert "'deploy'" in "".join(outputs)
    assert not (runner.workdir / "login.json").exists()
