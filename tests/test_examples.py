"""Every script in examples/ runs to completion, quietly (no emulator request lines), and
leaves no file behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(
    path
    for path in (Path(__file__).parent.parent / "examples").glob("*.py")
    if not path.name.startswith("_")  # helpers, not examples
)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not re.search(r'HTTP/1\.[01]" \d{3}', result.stdout + result.stderr)  # request lines
    assert list(tmp_path.iterdir()) == []
