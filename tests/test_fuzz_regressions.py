"""Crashes found by the atheris harnesses in ``fuzz/``, kept as regression tests.

Each case must end in a :class:`BackendError` (or a successful decode), never another
exception.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from aws_iam_backend.errors import BackendError
from aws_iam_backend.io.storage import MemoryStorage
from aws_iam_backend.login.decode import decode_login
from aws_iam_backend.login.rebuild import build_outbound
from aws_iam_backend.vault.config import ClientConfig
from tests.test_backend_attacks import NOW, valid
from tests.test_faults import make_backend

# fuzz_decoder.py, crash-7426bd9f…: a lone surrogate (JSON allows "\udada") in a login
# field made the size check raise UnicodeEncodeError (an unhandled 500) instead of a 400.
SURROGATE = json.loads('"\\udada\\udada"')
SURROGATE_PAYLOADS: dict[str, dict[str, Any]] = {
    "field_key": {SURROGATE: 1, "iam_http_request_method": "POST"},
    "role": valid(role=SURROGATE),
    "method": valid(iam_http_request_method=SURROGATE),
    "url": valid(iam_request_url=SURROGATE),
    "body": valid(iam_request_body=SURROGATE),
    "headers": valid(iam_request_headers=SURROGATE),
    "header_name": valid(iam_request_headers={**valid()["iam_request_headers"], SURROGATE: "x"}),
    "header_value": valid(
        iam_request_headers={**valid()["iam_request_headers"], "X-Custom": SURROGATE}
    ),
    "header_list": valid(iam_request_headers={"Content-Type": [SURROGATE]}),
    "nested": valid(role=[{SURROGATE: [SURROGATE]}]),
}


@pytest.mark.parametrize("name", sorted(SURROGATE_PAYLOADS))
def test_lone_surrogates_are_refused_cleanly(name: str) -> None:
    payload = SURROGATE_PAYLOADS[name]
    try:
        decoded = decode_login(payload)
    except BackendError:
        pass
    else:
        for config in (ClientConfig(), ClientConfig(allowed_sts_header_values=("X-Custom",))):
            with contextlib.suppress(BackendError):
                build_outbound(decoded, config, now=NOW)
    backend = make_backend(MemoryStorage())
    with pytest.raises(BackendError):
        backend.login(payload)
