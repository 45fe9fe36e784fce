"""Policy sanitising: normalise first, then refuse root, control characters, long lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.vault.policies import MAX_POLICIES, sanitize_policies


def test_normalises_like_policyutil() -> None:
    assert sanitize_policies([" Dev ", "ops,DEV", "", "default", " , "]) == (
        "default",
        "dev",
        "ops",
    )
    assert sanitize_policies([]) == ()


@pytest.mark.parametrize(
    "items",
    [["Root"], ["rooT"], [" root"], ["root "], ["root\n"], ["\troot"], ["default,root"],
     ["dev", "ROOT"], ["root\u3000"]],
)
def test_attack_94_root_variants(items: list[str]) -> None:
    with pytest.raises(InvalidRequestError, match='policy "root" cannot be assigned'):
        sanitize_policies(items)


@pytest.mark.parametrize("name", ["root\x00", "ro\x00ot", "dev\x7f", "a\u200bb", "a\u2028b"])
def test_attack_94_control_characters(name: str) -> None:
    with pytest.raises(InvalidRequestError, match="control or format characters"):
        sanitize_policies([name])


def test_attack_95_policy_cap() -> None:
    names = [f"p{i}" for i in range(MAX_POLICIES)]
    assert len(sanitize_policies(names)) == MAX_POLICIES
    with pytest.raises(InvalidRequestError, match="too many policies: 65 given, at most 64"):
        sanitize_policies([*names, "extra"])
    # duplicates collapse before counting
    assert len(sanitize_policies(names * 100)) == MAX_POLICIES


@given(st.lists(st.text(max_size=8), max_size=10))
def test_result_never_contains_root_or_untrimmed(items: list[str]) -> None:
    try:
        result = sanitize_policies(items)
    except InvalidRequestError:
        return
    assert "root" not in result
    assert list(result) == sorted(set(result))
    assert all(name and "," not in name for name in result)
