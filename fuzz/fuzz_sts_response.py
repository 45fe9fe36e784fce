"""atheris harness: ``sts_response.parse_sts_response`` on hostile STS answers.

Input bytes choose a status, a ``Content-Type`` and an expected partition; the rest is the
body (raw, or wrapped in a GetCallerIdentity envelope to get past the first checks). A
:class:`BackendError` is a normal refusal; anything else is a crash.

Run: ``python fuzz/fuzz_sts_response.py -max_total_time=90`` (see fuzz/README.md).
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from aws_iam_backend.errors import BackendError
    from aws_iam_backend.login.messages import STSResponse
    from aws_iam_backend.login.parse import parse_sts_response

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
STATUSES = [200, 200, 200, 400, 403, 429, 500, 503]
CONTENT_TYPES = [
    "text/xml",
    "text/xml; charset=utf-8",
    "TEXT/XML",
    "application/xml",
    "text/html",
    "",
]
PARTITIONS = [None, "aws", "aws-cn", "aws-us-gov"]


def response_from(data: bytes) -> tuple[STSResponse, str | None]:
    fdp = atheris.FuzzedDataProvider(data)
    status = fdp.PickValueInList(STATUSES) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 999)
    headers: list[tuple[str, str]] = []
    if fdp.ConsumeIntInRange(0, 7):
        content_type = (
            fdp.PickValueInList(CONTENT_TYPES) if fdp.ConsumeBool() else fdp.ConsumeUnicode(40)
        )
        headers.append(("content-type", content_type))
    partition = fdp.PickValueInList(PARTITIONS)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        arn = fdp.ConsumeUnicode(80)
        user_id = fdp.ConsumeUnicode(40)
        account = fdp.ConsumeUnicode(16)
        inner = (
            f"<Arn>{arn}</Arn><UserId>{user_id}</UserId><Account>{account}</Account>"
            if mode == 1
            else fdp.ConsumeUnicode(400)
        )
        body = (
            f'<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult>{inner}'
            "</GetCallerIdentityResult></GetCallerIdentityResponse>"
        ).encode("utf-8", "surrogatepass")
    return STSResponse(status, tuple(headers), body), partition


def TestOneInput(data: bytes) -> None:
    response, partition = response_from(data)
    with contextlib.suppress(BackendError):
        parse_sts_response(response, expected_partition=partition)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
