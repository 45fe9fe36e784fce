"""Print the pins of CI's lowest-versions job (.ci/lowest), one requirement a line.
Run from the repository's root.

Every requirement of ``[project] dependencies`` and of the extras in ``EXTRAS`` (followed
through ``aws_iam_backend[...]``), plus the test tools in ``TEST_TOOLS`` from the ``test``
extra, pinned to the floor (``>=``) pyproject.toml declares, markers kept. A requirement
without a ``>=`` floor is an error: every floor must be one CI has installed.
Packages these pull in (jmespath, h11, ...) are left to pip.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PROJECT = "aws_iam_backend"
# The server's runtime: the async transport, uvicorn and the HA storage backends.
EXTRAS = ("async", "server", "postgresql", "redis")
# What the selected tests import (conftest imports boto3; tests/support imports hvac).
TEST_TOOLS = ("pytest", "hypothesis", "boto3", "hvac", "requests")

REQUIREMENT = re.compile(
    r"""^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?
    \s*(?P<spec>[^;]*?)\s*(?:;\s*(?P<marker>.+?))?\s*$""",
    re.VERBOSE,
)


def floor(requirement: str, spec: str) -> str:
    for clause in spec.split(","):
        clause = clause.strip()
        if clause.startswith(">=") and not clause.startswith(">=="):
            return clause[2:].strip()
    raise SystemExit(f"lowest_pins: {requirement!r} declares no >= floor")


def pins(pyproject: dict[str, object]) -> list[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    optional: dict[str, list[str]] = project["optional-dependencies"]
    pinned: dict[str, str] = {}
    seen_extras: set[str] = set()

    def add(requirements: list[str], only: tuple[str, ...] | None = None) -> None:
        for requirement in requirements:
            match = REQUIREMENT.match(requirement)
            if match is None:
                raise SystemExit(f"lowest_pins: cannot read {requirement!r}")
            name = match["name"]
            if name.replace("-", "_") == PROJECT:
                for extra in (match["extras"] or "[]")[1:-1].split(","):
                    follow(extra.strip())
                continue
            if only is not None and name not in only:
                continue
            line = f"{name}{match['extras'] or ''}=={floor(requirement, match['spec'])}"
            if match["marker"]:
                line += f"; {match['marker']}"
            pinned[name.lower()] = line

    def follow(extra: str) -> None:
        if extra and extra not in seen_extras:
            seen_extras.add(extra)
            add(optional[extra])

    add(project["dependencies"])
    for extra in EXTRAS:
        follow(extra)
    add(optional["test"], only=TEST_TOOLS)
    missing = [tool for tool in TEST_TOOLS if tool not in pinned]
    if missing:
        raise SystemExit(f"lowest_pins: test tools not in the test extra: {missing}")
    return sorted(pinned.values(), key=str.lower)


def test_pin(pyproject: dict[str, object], name: str) -> str:
    """The pin of ``name`` from the ``test`` extra (for a later pass: moto)."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    for requirement in project["optional-dependencies"]["test"]:
        match = REQUIREMENT.match(requirement)
        if match is not None and match["name"] == name:
            return f"{name}{match['extras'] or ''}=={floor(requirement, match['spec'])}"
    raise SystemExit(f"lowest_pins: {name} is not in the test extra")


def main() -> None:
    """``lowest_pins.py``: every pin; ``lowest_pins.py NAME``: one test-extra pin."""
    pyproject = tomllib.loads(Path("pyproject.toml").read_text())
    if len(sys.argv) > 1:
        print(test_pin(pyproject, sys.argv[1]))
    else:
        print("\n".join(pins(pyproject)))


if __name__ == "__main__":
    main()
