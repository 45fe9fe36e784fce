"""The server's periodic tidy: expired tokens and claims, and each mount's expired identity
access list entries and deny-listed role tags (per its ``config/tidy/*``), leave storage off
the request path."""

from __future__ import annotations

import asyncio
import logging
import random

from aws_iam_backend.errors import BackendError
from aws_iam_backend.server._async.api import AsyncVaultAPI

TIDY_INTERVAL = 60.0
_log = logging.getLogger("aws_iam_backend.server")


async def tidy_forever(api: AsyncVaultAPI, *, interval: float = TIDY_INTERVAL) -> None:
    """Await ``api.tidy()`` every ``interval`` seconds (jittered), until cancelled.

    Every process may run one: the deletes are conditional, so two tidies never undo a
    renewal or a fresh claim. A failed tidy is logged and tried again next time.
    """
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))
        try:
            removed = await api.tidy()
        except BackendError as exc:
            _log.warning("tidy failed: %s", exc.message)
            continue
        if removed:
            _log.info("tidy removed %d expired entries", removed)
