"""Generate each ``_sync`` package from its ``_async`` twin (the approach of httpcore's unasync).

The async source is the one implementation; the sync driver is derived from it token by
token: ``async``/``await`` dropped, ``AsyncX`` names become ``X``, ``async_x`` become ``x``,
``_async`` module paths become ``_sync``, the async dunders and helpers (``__aenter__``,
``aclose``, ``asynccontextmanager``, ...) their sync names, ``redis.asyncio`` is ``redis``.
Strings and comments get the same name changes. ``python scripts/unasync.py`` rewrites the
``_sync`` files; ``--check`` exits 1 and names the files that differ (a test runs it).
Either way a ``_sync`` module with no ``_async`` source is named, and the exit is 1.
"""

from __future__ import annotations

import argparse
import io
import itertools
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aws_iam_backend"
HEADER = "# Generated from {source} by scripts/unasync.py: do not edit.\n"

_NAMES = {
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "asynccontextmanager": "contextmanager",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "aclose": "close",
    "anext": "next",
    "aiter": "iter",
    "_async": "_sync",
    "StopAsyncIteration": "StopIteration",
}
_WORD = re.compile(r"\b(?:Async(?=[A-Z])|async_(?=[a-z]))|\b(" + "|".join(_NAMES) + r")\b")


def _rename(text: str) -> str:
    return _WORD.sub(lambda m: _NAMES[m[1]] if m[1] else "", text)


def unasync(source: str) -> str:
    """The sync twin of one async module's source."""
    source = source.replace("redis.asyncio", "redis")
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(row: int, col: int) -> int:
        return offsets[row - 1] + col

    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits: list[tuple[int, int, str]] = []
    for token, following in itertools.pairwise(tokens):
        start, end = at(*token.start), at(*token.end)
        if token.type == tokenize.NAME and token.string in ("async", "await"):
            edits.append((start, at(*following.start), ""))
        elif token.type in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            renamed = _rename(token.string)
            if renamed != token.string:
                edits.append((start, end, renamed))
    for start, end, text in reversed(edits):
        source = source[:start] + text + source[end:]
    return source


def pairs() -> list[tuple[Path, Path]]:
    """(async source, sync target) for every module under an ``_async`` folder."""
    found = []
    for folder in sorted(PACKAGE.rglob("_async")):
        for source in sorted(folder.glob("*.py")):
            found.append((source, folder.parent / "_sync" / source.name))
    return found


def generated(source: Path, target: Path) -> str:
    relative = Path("..") / "_async" / source.name
    code = unasync(source.read_text())
    return HEADER.format(source=relative.as_posix()) + code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for source, target in pairs():
        text = generated(source, target)
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target.relative_to(ROOT).as_posix())
        if not args.check:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
    for name in stale:
        print(("out of date: " if args.check else "wrote ") + name)
    orphans = [
        target.relative_to(ROOT).as_posix()
        for folder in sorted(PACKAGE.rglob("_sync"))
        for target in sorted(folder.glob("*.py"))
        if not (folder.parent / "_async" / target.name).exists()
    ]
    for name in orphans:
        print("no _async source (delete it): " + name)
    return 1 if (args.check and stale) or orphans else 0


if __name__ == "__main__":
    sys.exit(main())
