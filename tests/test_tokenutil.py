"""tokenutil: token field parsing, legacy aliases, mount limits and lease arithmetic."""

from __future__ import annotations

import pytest

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.vault.tokenutil import (
    DEFAULT_SYSTEM_TTL,
    Lease,
    TokenSettings,
    compute_lease,
    format_cidr,
    parse_token_fields,
    token_response_fields,
)

H = 3600


def parse(data: dict[str, object], existing: TokenSettings | None = None) -> TokenSettings:
    return parse_token_fields(data, existing)[0]


def parse_error(data: dict[str, object], existing: TokenSettings | None = None) -> str:
    with pytest.raises(InvalidRequestError) as info:
        parse_token_fields(data, existing)
    assert info.value.status == 400
    return info.value.message


def test_defaults() -> None:
    settings, warnings = parse_token_fields({}, None)
    assert settings == TokenSettings()
    assert warnings == []


def test_all_fields() -> None:
    settings = parse(
        {
            "token_policies": "B, a",
            "token_ttl": "1h",
            "token_max_ttl": 7200,
            "token_explicit_max_ttl": "3h",
            "token_num_uses": "3",
            "token_bound_cidrs": ["10.0.0.0/8", "192.0.2.7", "2001:db8::1"],
            "token_no_default_policy": "true",
            "token_type": "service",
        }
    )
    assert settings == TokenSettings(
        token_policies=("a", "b"),
        token_ttl=H,
        token_max_ttl=2 * H,
        token_explicit_max_ttl=3 * H,
        token_num_uses=3,
        token_bound_cidrs=("10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128"),
        token_no_default_policy=True,
        token_type="service",
    )


def test_update_keeps_unspecified_values() -> None:
    existing = TokenSettings(token_ttl=60, token_policies=("p",), token_type="batch")
    assert parse({"token_max_ttl": 120}, existing) == TokenSettings(
        token_ttl=60, token_max_ttl=120, token_policies=("p",), token_type="batch"
    )


@pytest.mark.parametrize(("given", "stored"), [("", "default"), ("default", "default"),
                                                ("service", "service"), ("batch", "batch")])
def test_token_type_values(given: str, stored: str) -> None:
    assert parse({"token_type": given}).token_type == stored


@pytest.mark.parametrize("value", ["default-service", "default-batch", "Service", "x"])
def test_token_type_invalid(value: str) -> None:
    assert parse_error({"token_type": value}) == f"invalid 'token_type' value \"{value}\""


def test_num_uses_negative() -> None:
    assert parse_error({"token_num_uses": -1}) == "'token_num_uses' cannot be negative"


def test_negative_durations_fail_field_conversion() -> None:
    for name in ("token_ttl", "token_max_ttl", "token_period", "ttl"):
        assert parse_error({name: -1}) == (
            f'Field validation failed: error converting input for field "{name}": '
            "cannot provide negative value '-1'"
        )


def test_batch_rules() -> None:
    assert parse_error({"token_type": "batch", "token_period": 60}) == (
        "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens"
    )
    assert parse_error({"token_type": "batch", "token_num_uses": 2}) == (
        "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with "
        "limited use count"
    )
    existing = TokenSettings(token_type="default-batch")
    assert "periodic" in parse_error({"token_period": 60}, existing)


def test_ttl_greater_than_max() -> None:
    assert parse_error({"token_ttl": 100, "token_max_ttl": 50}) == (
        "'token_ttl' cannot be greater than 'token_max_ttl'"
    )
    assert "cannot be greater" in parse_error({"token_ttl": 100}, TokenSettings(token_max_ttl=50))


def test_cidr_errors() -> None:
    assert parse_error({"token_bound_cidrs": "10.0.0.0/33"}) == (
        'error parsing address "10.0.0.0/33": Unable to convert "10.0.0.0/33" to an IPv4 or '
        "IPv6 address, or a UNIX Socket"
    )
    for bad in ("1.2.3.4:80", "/tmp/sock", "a,", "host.example"):
        assert "error parsing address" in parse_error({"token_bound_cidrs": bad})


def test_cidr_host_bits_cleared_and_rendered_like_vault() -> None:
    settings = parse({"token_bound_cidrs": "10.1.2.3/8, 192.0.2.1/32"})
    assert settings.token_bound_cidrs == ("10.0.0.0/8", "192.0.2.1/32")
    assert token_response_fields(settings)["token_bound_cidrs"] == ["10.0.0.0/8", "192.0.2.1"]
    assert format_cidr("2001:db8::1/128") == "2001:db8::1"


def test_attack_94_root_policy_refused_in_token_policies_and_legacy() -> None:
    assert "root" in parse_error({"token_policies": " Root"})
    assert "root" in parse_error({"policies": "default,ROOT"})


# ------------------------------------------------------------- legacy aliases


def test_legacy_only_sets_both() -> None:
    settings = parse({"policies": "Dev", "ttl": "1h", "max_ttl": "2h", "period": "30m"})
    assert (settings.token_policies, settings.legacy_policies) == (("dev",), ("dev",))
    assert (settings.token_ttl, settings.legacy_ttl) == (H, H)
    assert (settings.token_max_ttl, settings.legacy_max_ttl) == (2 * H, 2 * H)
    assert (settings.token_period, settings.legacy_period) == (1800, 1800)


def test_new_field_wins_and_legacy_mirrors_it() -> None:
    settings = parse({"token_ttl": 60, "ttl": 90, "token_policies": "a", "policies": "b"})
    assert (settings.token_ttl, settings.legacy_ttl) == (60, 60)
    assert (settings.token_policies, settings.legacy_policies) == (("a",), ("a",))


def test_new_field_alone_clears_legacy() -> None:
    existing = TokenSettings(token_ttl=90, legacy_ttl=90, token_policies=("b",),
                             legacy_policies=("b",))
    settings = parse({"token_ttl": 60, "token_policies": "a"}, existing)
    assert (settings.token_ttl, settings.legacy_ttl) == (60, 0)
    assert (settings.token_policies, settings.legacy_policies) == (("a",), ())


def test_untouched_pairs_stay() -> None:
    existing = TokenSettings(token_ttl=90, legacy_ttl=90)
    assert parse({"token_max_ttl": 100}, existing).legacy_ttl == 90


def test_legacy_ttl_above_max_is_caught_after_upgrade() -> None:
    assert parse_error({"ttl": 100, "token_max_ttl": 50}) == "ttl should be shorter than max ttl"


# -------------------------------------------------------------- mount limits


def test_mount_limit_warnings() -> None:
    _, warnings = parse_token_fields(
        {"token_ttl": 200, "token_max_ttl": 300}, None, default_ttl=100, max_ttl=250
    )
    assert warnings == [
        "Given ttl of 200 seconds greater than current mount/system default of 100 seconds; "
        "ttl will be capped at login time",
        "Given max ttl of 300 seconds greater than current mount/system default of 250 "
        "seconds; max ttl will be capped at login time",
    ]


def test_period_above_system_max() -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_token_fields({"token_period": 800 * H}, None, max_ttl=DEFAULT_SYSTEM_TTL)
    assert info.value.message == (
        "period of '800h0m0s' is greater than the backend's maximum lease TTL of '768h0m0s'"
    )


def test_response_fields_shape() -> None:
    assert token_response_fields(TokenSettings()) == {
        "token_bound_cidrs": [],
        "token_explicit_max_ttl": 0,
        "token_max_ttl": 0,
        "token_no_default_policy": False,
        "token_period": 0,
        "token_policies": [],
        "token_type": "default",
        "token_ttl": 0,
        "token_num_uses": 0,
    }


# ---------------------------------------------------------------- TTL arithmetic

SYS = {"default_ttl": 768 * H, "max_ttl": 768 * H}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (TokenSettings(), Lease(768 * H, 768 * H, 0, 0)),
        (TokenSettings(token_ttl=H), Lease(H, 768 * H, 0, 0)),
        (TokenSettings(token_max_ttl=2 * H), Lease(2 * H, 2 * H, 0, 0)),
        (TokenSettings(token_ttl=H, token_max_ttl=2 * H), Lease(H, 2 * H, 0, 0)),
        (TokenSettings(token_ttl=H, token_explicit_max_ttl=1800), Lease(1800, 1800, 0, 1800)),
        (TokenSettings(token_period=H), Lease(H, 768 * H, H, 0)),
        (TokenSettings(token_period=H, token_ttl=10, token_max_ttl=7200),
         Lease(H, 7200, H, 0)),
        (TokenSettings(token_period=H, token_explicit_max_ttl=600), Lease(600, 600, 600, 600)),
    ],
)
def test_compute_lease_table(settings: TokenSettings, expected: Lease) -> None:
    lease = compute_lease(settings, **SYS)
    assert (lease.ttl, lease.max_ttl, lease.period, lease.explicit_max_ttl) == (
        expected.ttl,
        expected.max_ttl,
        expected.period,
        expected.explicit_max_ttl,
    )


def test_compute_lease_system_caps_and_warnings() -> None:
    lease = compute_lease(TokenSettings(token_ttl=10 * H), default_ttl=H, max_ttl=2 * H)
    assert lease.ttl == 2 * H
    assert lease.warnings == (
        'TTL of "10h" exceeded the effective max_ttl of "2h"; TTL value is capped accordingly',
    )
    lease = compute_lease(TokenSettings(token_period=3 * H), default_ttl=H, max_ttl=2 * H)
    assert (lease.ttl, lease.period) == (2 * H, 2 * H)
    assert lease.warnings == (
        'period of "3h" exceeded the effective max_ttl of "2h"; period value is capped '
        "accordingly",
    )
    assert compute_lease(TokenSettings(), default_ttl=90, max_ttl=2 * H).ttl == 90


