"""Several spawned processes started together, for cross-process race tests.

Each runs ``target(*args, barrier, results)``: it meets the others at ``barrier`` and
puts what it found on ``results``. With ``main=True`` the test's own process is one more
party of the barrier, and runs ``between(...)`` once every process has reached it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

JOIN_TIMEOUT = 120.0


def run_together(
    target: Callable[..., None],
    args: Sequence[tuple[Any, ...]],
    *,
    between: Callable[[], None] | None = None,
) -> list[Any]:
    """One spawned process per ``args`` tuple, started together; what each put on
    ``results`` (arrival order). Every process must exit 0."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(args) + (0 if between is None else 1))
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*each, barrier, results), daemon=True) for each in args
    ]
    for process in processes:
        process.start()
    try:
        if between is not None:
            barrier.wait(timeout=JOIN_TIMEOUT)
            between()
        outcomes = [results.get(timeout=JOIN_TIMEOUT) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=JOIN_TIMEOUT)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * len(processes), outcomes
    return outcomes
