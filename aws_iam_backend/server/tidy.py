"""The server's periodic tidy: expired tokens and claims leave storage off the request path."""

from __future__ import annotations

import logging
import random
import threading

from aws_iam_backend.errors import BackendError
from aws_iam_backend.server.api import VaultAPI

TIDY_INTERVAL = 60.0
_log = logging.getLogger("aws_iam_backend.server")


def start_tidy(api: VaultAPI, *, interval: float = TIDY_INTERVAL) -> threading.Event:
    """Run ``api.tidy()`` every ``interval`` seconds (jittered) in a daemon thread.

    Every process may run one: the deletes are conditional, so two tidies never undo a
    renewal or a fresh claim. Set the returned event to stop it.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval * random.uniform(0.8, 1.2)):
            try:
                removed = api.tidy()
            except BackendError as exc:
                _log.warning("tidy failed: %s", exc.message)
                continue
            if removed:
                _log.info("tidy removed %d expired entries", removed)

    threading.Thread(target=run, name="aws-iam-backend-tidy", daemon=True).start()
    return stop
