"""Vault's GlobbedStringsMatch semantics (attacks 74, 81, 90)."""

from __future__ import annotations

import pytest

from aws_iam_backend.login.glob import glob_match

ROLE = "arn:aws:iam::111111111111:role/app"


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "anything", False),  # a lone * matches only itself
        ("*", "*", True),
        (ROLE + "*", ROLE, True),
        (ROLE + "*", ROLE + "-admin-breakglass", True),  # attack 74: prefix by design
        ("arn:aws:iam::111111111111:role/team/*", "arn:aws:iam::111111111111:role/team/x", True),
        ("arn:aws:iam::111111111111:role/team/*", "arn:aws:iam::111111111111:role/teamx", False),
        ("*role/app*", ROLE + "/x", True),  # both ends: substring
        ("*/app", ROLE, True),  # leading only: suffix
        (ROLE + ".prod", ROLE + "Xprod", False),
        ("arn:aws:iam::111111111111:role/a?c", "arn:aws:iam::111111111111:role/ac", False),
        ("arn:aws:iam::111111111111:role/a*c", "arn:aws:iam::111111111111:role/abc", False),
        (ROLE, ROLE, True),
        ("arn:aws:iam::111111111111:role/Admin", "arn:aws:iam::111111111111:role/admin", False),
    ],
)
def test_glob(pattern: str, value: str, expected: bool) -> None:
    assert glob_match(pattern, value) is expected


def test_attack_90_many_stars_is_linear() -> None:
    pattern = "*" * 100 + "x" * 10 + "*"
    assert glob_match(pattern, "a" * 2048) is False
