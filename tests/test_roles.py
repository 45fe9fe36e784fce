"""Roles: name grammar, Vault's write algorithm and texts, our bound-ARN rules, read shape,
storage format and upgrades."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.errors import BackendError, InvalidRequestError, UpstreamError
from aws_iam_backend.vault.roles import (
    MAX_BOUND_VALUES,
    ROLE_FIELDS,
    Role,
    normalize_role_name,
    role_from_storage,
    role_read_data,
    role_to_storage,
    write_role,
)
from aws_iam_backend.vault.tokenutil import TokenSettings

ARN = "arn:aws:iam::123456789012:role/app"
USER = "arn:aws:iam::123456789012:user/path/alice"
MAX = 768 * 3600
FULLWIDTH_ACCOUNT = "".join(chr(0xFF10 + int(d)) for d in "123456789012")


class Resolver:
    """Records calls; answers a fake unique ID."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, arn: str) -> str:
        self.calls.append(arn)
        return "ID-" + arn.rsplit("/", 1)[-1]


def write(
    data: dict[str, object],
    existing: Role | None = None,
    *,
    name: str = "app",
    resolver: Callable[[str], str] | None = None,
    new_hmac_key: str = "hmac-key-1",
) -> tuple[Role, list[str]]:
    return write_role(
        existing,
        data,
        name=name,
        new_role_id="role-id-1",
        resolve_unique_id=resolver or Resolver(),
        system_max_ttl=MAX,
        new_hmac_key=new_hmac_key,
    )


def error(data: dict[str, object], existing: Role | None = None, **kwargs: object) -> str:
    with pytest.raises(InvalidRequestError) as info:
        write(data, existing, **kwargs)  # type: ignore[arg-type]
    assert info.value.status == 400
    return info.value.message


# ----------------------------------------------------------------- role names


@pytest.mark.parametrize(
    ("name", "stored"),
    [("Admin", "admin"), ("ADMIN", "admin"), ("a", "a"), ("_x", "_x"), ("a.b-c_d", "a.b-c_d"),
     ("a" * 128, "a" * 128), ("a..b", "a..b")],
)
def test_attack_92_role_names_lowercased(name: str, stored: str) -> None:
    assert normalize_role_name(name) == stored


@pytest.mark.parametrize(
    "name",
    ["admin ", " admin", "adm\u0131n", "\uff41\uff44\uff4d\uff49\uff4e", "../config",
     "role/../../config/client", "a/b",
     "%2e%2e", ".", "..", "a\x00b", "a" * 129, "a" * 10_000, "-a", "a-", "a.", "\u00e9"],
)
def test_attack_92_93_bad_role_names(name: str) -> None:
    with pytest.raises(InvalidRequestError, match="invalid role name"):
        normalize_role_name(name)


def test_empty_role_name() -> None:
    assert error({"bound_iam_principal_arn": ARN}, name="") == "missing role"


# ------------------------------------------------------------ create defaults


def test_create_iam_role_defaults_and_resolution() -> None:
    resolver = Resolver()
    role, warnings = write(
        {"bound_iam_principal_arn": [ARN, USER, "arn:aws:iam::123456789012:role/x/*"]},
        name="App",
        resolver=resolver,
    )
    assert warnings == []
    assert role.name == "app"
    assert role.role_id == "role-id-1"
    assert role.auth_type == "iam"
    assert role.resolve_aws_unique_ids is True
    assert role.bound_iam_principal_id == ("ID-app", "ID-alice")
    assert resolver.calls == [ARN, USER]  # never for wildcards
    assert role.token == TokenSettings()


def test_resolution_off_makes_no_calls() -> None:
    resolver = Resolver()
    role, _ = write({"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False},
                    resolver=resolver)
    assert resolver.calls == []
    assert role.bound_iam_principal_id == ()


def test_update_keeps_ids_unless_arns_given() -> None:
    role, _ = write({"bound_iam_principal_arn": ARN})
    resolver = Resolver()
    updated, _ = write({"token_ttl": 60}, role, resolver=resolver)
    assert resolver.calls == []
    assert updated.bound_iam_principal_id == ("ID-app",)
    assert updated.role_id == role.role_id
    again, _ = write({"bound_iam_principal_arn": ARN}, role, resolver=resolver)
    assert resolver.calls == [ARN]
    assert again.bound_iam_principal_id == ("ID-app",)


def test_turning_resolution_on_resolves() -> None:
    role, _ = write({"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False})
    resolver = Resolver()
    updated, _ = write({"resolve_aws_unique_ids": True}, role, resolver=resolver)
    assert resolver.calls == [ARN]
    assert updated.bound_iam_principal_id == ("ID-app",)


def test_resolution_true_to_false_refused() -> None:
    role, _ = write({"bound_iam_principal_arn": ARN})
    assert error({"resolve_aws_unique_ids": False}, role) == (
        "changing resolve_aws_unique_ids from true to false is not allowed"
    )


def test_resolution_error_wrapped_keeps_class() -> None:
    def failing(arn: str) -> str:
        raise UpstreamError("NoSuchEntity: role not found")

    with pytest.raises(UpstreamError) as info:
        write({"bound_iam_principal_arn": ARN}, resolver=failing)
    assert info.value.message == (
        f'unable to resolve ARN "{ARN}" to internal ID: NoSuchEntity: role not found'
    )

    def invalid(arn: str) -> str:
        raise InvalidRequestError("bad")

    assert error({"bound_iam_principal_arn": ARN}, resolver=invalid) == (
        f'unable to resolve ARN "{ARN}" to internal ID: bad'
    )


# ------------------------------------------------------------------ auth_type


def test_auth_type_texts() -> None:
    assert error({"auth_type": "x", "bound_iam_principal_arn": ARN}) == "unrecognized auth_type: x"
    role, _ = write({"bound_iam_principal_arn": ARN})
    assert error({"auth_type": "ec2"}, role) == "changing auth_type on a role is not allowed"
    same, _ = write({"auth_type": "iam"}, role)
    assert same.auth_type == "iam"


def test_field_validation_before_everything() -> None:
    assert error({"resolve_aws_unique_ids": "maybe", "auth_type": "bad"}).startswith(
        'Field validation failed: error converting input for field "resolve_aws_unique_ids"'
    )


# ----------------------------------------------------------- binds vs auth type


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bound_account_id", "123456789012",
         "specified bound_account_id but not specifying ec2 auth_type or inferring ec2_instance"),
        ("bound_region", "us-east-1", "specified bound_region but not specifying ec2 auth_type"),
        ("bound_ami_id", "ami-1",
         "specified bound_ami_id but not specifying ec2 auth_type or inferring ec2_instance"),
        ("bound_iam_instance_profile_arn", "arn:aws:iam::123456789012:instance-profile/p",
         "specified bound_iam_instance_profile_arn but not specifying ec2 auth_type or "
         "inferring ec2_instance"),
        ("bound_ec2_instance_id", "i-1",
         "specified bound_ec2_instance_id but not specifying ec2 auth_type or inferring "
         "ec2_instance"),
        ("bound_iam_role_arn", ARN,
         "specified bound_iam_role_arn but not specifying ec2 auth_type or inferring ec2_instance"),
        ("bound_vpc_id", "vpc-1",
         "specified bound_vpc_id but not specifying ec2 auth_type or inferring ec2_instance"),
        ("bound_subnet_id", "subnet-1",
         "specified bound_subnet_id but not specifying ec2 auth_type or inferring ec2_instance"),
    ],
)
def test_ec2_binds_on_iam_role(field: str, value: str, message: str) -> None:
    assert error({"bound_iam_principal_arn": ARN, field: value}) == message


def test_principal_arn_on_ec2_role() -> None:
    assert error({"auth_type": "ec2", "bound_iam_principal_arn": ARN}) == (
        "specified bound_iam_principal_arn but not specifying iam auth_type"
    )


def test_attack_97_no_binding() -> None:
    message = "at least one bound parameter should be specified on the role"
    assert error({}) == message
    assert error({"bound_iam_principal_arn": ""}) == message
    role, _ = write({"bound_iam_principal_arn": ARN})
    assert error({"bound_iam_principal_arn": []}, role) == message


def test_ec2_only_booleans() -> None:
    assert error({"bound_iam_principal_arn": ARN, "disallow_reauthentication": True}) == (
        "specified disallow_reauthentication when not using ec2 auth type"
    )
    assert error({"bound_iam_principal_arn": ARN, "allow_instance_migration": False}) == (
        "specified allow_instance_migration when not using ec2 auth type"
    )
    assert error(
        {"auth_type": "ec2", "bound_ami_id": "ami-1", "disallow_reauthentication": True,
         "allow_instance_migration": True}
    ) == "cannot specify both disallow_reauthentication=true and allow_instance_migration=true"


def test_role_tag() -> None:
    assert error({"bound_iam_principal_arn": ARN, "role_tag": "t"}) == (
        "tried to enable role_tag when not using ec2 auth method"
    )
    assert error({"auth_type": "ec2", "bound_ami_id": "ami-1", "role_tag": "x" * 128}) == (
        "length of role tag exceeds the EC2 key limit of 127 characters"
    )


def test_ec2_role_stored_with_vault_validation() -> None:
    role, _ = write(
        {"auth_type": "ec2", "bound_ami_id": "ami-1,ami-2", "bound_region": ["us-east-1"],
         "role_tag": "VaultRole", "allow_instance_migration": True}
    )
    assert role.auth_type == "ec2"
    assert role.bound_ami_id == ("ami-1", "ami-2")
    assert role.bound_region == ("us-east-1",)
    assert (role.role_tag, role.allow_instance_migration, role.disallow_reauthentication) == (
        "VaultRole", True, False)


# ----------------------------------------------------------------- inference


def test_inference_vault_texts() -> None:
    assert error({"auth_type": "ec2", "bound_ami_id": "a", "inferred_entity_type": "ec2_instance",
                  "inferred_aws_region": "us-east-1"}) == (
        "specified inferred_entity_type but didn't allow iam auth_type"
    )
    assert error({"bound_iam_principal_arn": ARN, "inferred_entity_type": "lambda"}) == (
        "specified invalid inferred_entity_type: lambda"
    )
    assert error({"bound_iam_principal_arn": ARN, "inferred_entity_type": "ec2_instance"}) == (
        "specified inferred_entity_type but not inferred_aws_region"
    )
    assert error({"bound_iam_principal_arn": ARN, "inferred_aws_region": "us-east-1"}) == (
        "specified inferred_aws_region but not inferred_entity_type"
    )
    assert error({"bound_iam_principal_arn": ARN, "inferred_entity_type": "ec2_instance",
                  "inferred_aws_region": "us-east-1/../x"}) == (
        'invalid inferred_aws_region "us-east-1/../x"'
    )


def test_inference_allows_ec2_binds_except_region() -> None:
    role, warnings = write({"inferred_entity_type": "ec2_instance",
                            "inferred_aws_region": "eu-west-1", "bound_ami_id": "ami-1",
                            "bound_iam_instance_profile_arn": "arn:aws:iam::123456789012:"
                                                              "instance-profile/web*"})
    assert (role.inferred_entity_type, role.inferred_aws_region) == ("ec2_instance", "eu-west-1")
    assert role.bound_ami_id == ("ami-1",)
    assert role.bound_iam_principal_arn == ()
    assert warnings == []
    assert error({"inferred_entity_type": "ec2_instance", "inferred_aws_region": "eu-west-1",
                  "bound_region": "eu-west-1"}) == (
        "specified bound_region but not specifying ec2 auth_type"
    )


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("bound_iam_role_arn", "arn:aws:iam::*", "cover the partition or account"),
        ("bound_iam_role_arn", "arn:aws:iam::123456789012:instance-profile/p", "must be role"),
        ("bound_iam_instance_profile_arn", "arn:aws:iam::123456789012:role/r*",
         "must be instance-profile"),
        ("bound_iam_instance_profile_arn", "arn:aws-evil:iam::123456789012:instance-profile/p",
         "unknown partition"),
        ("bound_ami_id", "ami 1", "printable ASCII"),
        ("bound_vpc_id", "v" * 257, "printable ASCII"),
        ("bound_account_id", "", "printable ASCII"),
    ],
)
def test_ec2_bind_grammar_after_vault_checks(field: str, value: str, reason: str) -> None:
    message = error({"auth_type": "ec2", field: [value]})
    assert message.startswith(f"invalid {field} ")
    assert reason in message
    # Vault's own refusal comes first on an iam role without inference.
    assert error({"bound_iam_principal_arn": ARN, field: [value]}).startswith(
        f"specified {field} but not specifying ec2 auth_type"
    )


def test_instance_profile_principal_arn_is_accepted_with_a_warning() -> None:
    profile = "arn:aws:iam::123456789012:instance-profile/p"
    role, warnings = write({"bound_iam_principal_arn": profile, "resolve_aws_unique_ids": False})
    assert role.bound_iam_principal_arn == (profile,)
    assert len(warnings) == 1
    assert "never matches an iam login" in warnings[0]


def test_every_role_gets_an_hmac_key_once() -> None:
    role, _ = write({"auth_type": "ec2", "bound_ami_id": "ami-1"}, new_hmac_key="k1")
    assert role.hmac_key == "k1"
    again, _ = write({"bound_ami_id": "ami-2"}, existing=role, new_hmac_key="k2")
    assert again.hmac_key == "k1"
    assert "hmac_key" not in role_read_data(again)


# --------------------------------------------------------- bound ARN grammar


@pytest.mark.parametrize(
    "arn",
    [ARN, USER, "arn:aws:iam::123456789012:*", "arn:aws:iam::123456789012:role/*",
     "arn:aws:iam::123456789012:role/app/*", "arn:aws:iam::123456789012:role/app*",
     "arn:aws:iam::123456789012:r*", "arn:aws-cn:iam::123456789012:role/x",
     "arn:aws-us-gov:iam::123456789012:user/u", "arn:aws:iam::123456789012:role/a+=,.@_-b"],
)
def test_bound_arns_accepted(arn: str) -> None:
    role, _ = write({"bound_iam_principal_arn": [arn]})
    assert role.bound_iam_principal_arn == (arn,)


@pytest.mark.parametrize(
    "arn",
    ["arn:aws:iam::*:role/admin", "arn:aws:iam::*:*", "*", "arn:*", "arn:aws:*",
     "arn:aws:iam::12345678901*", "arn:aws:iam::*"],
)
def test_attack_73_wildcard_over_account(arn: str) -> None:
    assert "may not cover the partition or account" in error({"bound_iam_principal_arn": arn})


def test_attack_74_account_prefix_glob_refused_but_name_prefix_allowed() -> None:
    assert "cover the partition or account" in error(
        {"bound_iam_principal_arn": "arn:aws:iam::11111111111*"}
    )
    role, _ = write({"bound_iam_principal_arn": "arn:aws:iam::111111111111:role/app*"})
    assert role.bound_iam_principal_arn == ("arn:aws:iam::111111111111:role/app*",)


@pytest.mark.parametrize(
    ("arn", "reason"),
    [
        ("not-an-arn", "not an ARN"),
        ("arn:aws:iam::12345:role/x", "12 digits"),
        ("arn:aws:iam::" + FULLWIDTH_ACCOUNT + ":role/x", "printable ASCII"),
        ("arn:aws-evil:iam::123456789012:role/x", 'unknown partition "aws-evil"'),
        ("arn:aws:s3:::bucket", 'service must be "iam"'),
        ("arn:aws:sts::123456789012:assumed-role/r/s", 'service must be "iam"'),
        ("arn:aws:iam::123456789012:group/x", "user or role"),
        ("arn:aws:iam::123456789012:assumed-role/r/s", "user or role"),
        ("arn:aws:iam::123456789012:instance-profile*", "user or role"),
        ("arn:aws:iam::123456789012:g*", "user or role"),
        ("arn:aws:iam::123456789012:role/*/x", "only allowed as the last character"),
        ("arn:aws:iam::123456789012:role/a**", "only allowed as the last character"),
        ("*arn:aws:iam::123456789012:role/x", "cover the partition or account"),
        ("arn:aws:iam::123456789012:role/app/", "empty path segment or name"),
        ("arn:aws:iam::123456789012:role/a//b", "empty path segment or name"),
        ("arn:aws:iam:us-east-1:123456789012:role/x", "region must be empty"),
        ("arn:aws:iam::123456789012:role", "fewer than 2"),
        ("arn:aws:iam::123456789012:user/", "empty path segment or name"),
        ("arn:aws:iam::123456789012:role/a\nb", "printable ASCII"),
        ("arn:aws:iam::123456789012:role/a b", "printable ASCII"),
    ],
)
def test_attack_96_invalid_bound_arns(arn: str, reason: str) -> None:
    message = error({"bound_iam_principal_arn": [arn]})
    assert message.startswith("invalid bound_iam_principal_arn ")
    assert reason in message


def test_attack_96_whitespace_trimmed_like_vault() -> None:
    role, _ = write({"bound_iam_principal_arn": f" {ARN} ,{USER}\n"})
    assert role.bound_iam_principal_arn == (ARN, USER)


def test_attack_95_empties_duplicates_and_cap() -> None:
    assert "empty value" in error({"bound_iam_principal_arn": f"{ARN},"})
    role, _ = write({"bound_iam_principal_arn": [USER, ARN, USER, ARN]})
    assert role.bound_iam_principal_arn == (USER, ARN)
    many = [f"arn:aws:iam::123456789012:role/r{i}" for i in range(MAX_BOUND_VALUES + 1)]
    assert "too many bound_iam_principal_arn values: 257" in error(
        {"bound_iam_principal_arn": many, "resolve_aws_unique_ids": False}
    )
    assert "too many bound_ami_id values" in error(
        {"auth_type": "ec2", "bound_ami_id": [f"ami-{i}" for i in range(300)]}
    )


# -------------------------------------------------------------- token fields


def test_token_fields_and_warnings() -> None:
    role, warnings = write_role(
        None,
        {"bound_iam_principal_arn": ARN, "token_policies": "Dev", "token_max_ttl": "900h",
         "token_ttl": "800h"},
        name="app",
        new_role_id="x",
        resolve_unique_id=Resolver(),
        system_max_ttl=MAX,
        system_default_ttl=MAX,
    )
    assert role.token.token_policies == ("dev",)
    assert warnings == [
        "Given ttl of 2880000 seconds greater than current mount/system default of 2764800 "
        "seconds; ttl will be capped at login time",
        "Given max ttl of 3240000 seconds greater than current mount/system default of "
        "2764800 seconds; max ttl will be capped at login time",
    ]
    assert "root" in error({"bound_iam_principal_arn": ARN, "policies": "ROOT"})
    assert error({"bound_iam_principal_arn": ARN, "token_period": "800h"}) == (
        "period of '800h0m0s' is greater than the backend's maximum lease TTL of '768h0m0s'"
    )


# ------------------------------------------------------------------ read shape


def test_read_shape() -> None:
    role, _ = write({"bound_iam_principal_arn": ARN, "token_bound_cidrs": "192.0.2.1"})
    data = role_read_data(role)
    assert set(data) == {
        "auth_type", "bound_ami_id", "bound_account_id", "bound_ec2_instance_id",
        "bound_iam_principal_arn", "bound_iam_principal_id", "bound_iam_role_arn",
        "bound_iam_instance_profile_arn", "bound_region", "bound_subnet_id", "bound_vpc_id",
        "inferred_entity_type", "inferred_aws_region", "resolve_aws_unique_ids", "role_id",
        "role_tag", "allow_instance_migration", "disallow_reauthentication",
        "require_challenge",  # ours
        "token_bound_cidrs", "token_explicit_max_ttl", "token_max_ttl", "token_period",
        "token_ttl", "token_no_default_policy", "token_num_uses", "token_policies",
        "token_type",
    }
    assert data["bound_ami_id"] == []
    assert data["bound_iam_principal_arn"] == [ARN]
    assert data["bound_iam_principal_id"] == ["ID-app"]
    assert data["token_bound_cidrs"] == ["192.0.2.1"]
    assert data["token_type"] == "default"
    assert data["resolve_aws_unique_ids"] is True


def test_read_shows_legacy_keys_only_when_set() -> None:
    role, _ = write({"bound_iam_principal_arn": ARN, "policies": "b,a", "ttl": 60,
                     "max_ttl": 120, "period": 30})
    data = role_read_data(role)
    assert (data["ttl"], data["max_ttl"], data["period"], data["policies"]) == (
        60, 120, 30, ["a", "b"])
    cleared, _ = write({"token_ttl": 60, "token_max_ttl": 120, "token_period": 30,
                        "token_policies": "a,b"}, role)
    assert not {"ttl", "max_ttl", "period", "policies"} & set(role_read_data(cleared))


# --------------------------------------------------------------- storage format


def test_storage_round_trip_and_vault_tags() -> None:
    role, _ = write({"bound_iam_principal_arn": [ARN, "arn:aws:iam::123456789012:user/*"],
                     "token_ttl": "1h", "ttl": "2h", "token_type": "batch",
                     "token_bound_cidrs": "10.0.0.0/8,192.0.2.1"})
    doc = role_to_storage(role)
    assert doc["bound_iam_principal_arn_list"] == [ARN, "arn:aws:iam::123456789012:user/*"]
    assert doc["bound_iam_principal_id_list"] == ["ID-app"]
    assert doc["token_ttl"] == 3600 * 10**9
    assert doc["ttl"] == 3600 * 10**9  # legacy mirrors the winning new value
    assert doc["token_type"] == 2
    assert doc["token_bound_cidrs"] == ["10.0.0.0/8", "192.0.2.1"]
    assert doc["version"] == 3
    assert role_from_storage("app", doc) == role


def vault_v3_doc(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "role_id": "0f1e", "auth_type": "iam", "bound_ami_id_list": None,
        "bound_iam_principal_arn_list": [ARN], "bound_iam_principal_id_list": ["AROAX"],
        "resolve_aws_unique_ids": True, "hmac_key": "k", "version": 3,
        "ttl": 0, "max_ttl": 0, "period": 0, "policies": None,
        "token_bound_cidrs": None, "token_explicit_max_ttl": 0, "token_max_ttl": 0,
        "token_no_default_policy": False, "token_num_uses": 0, "token_period": 0,
        "token_policies": ["dev"], "token_type": 0, "token_ttl": 1_500_000_000,
    }
    doc.update(overrides)
    return doc


def test_vault_document_decoded() -> None:
    role = role_from_storage("app", vault_v3_doc())
    assert role.role_id == "0f1e"
    assert role.bound_iam_principal_id == ("AROAX",)
    assert role.token.token_ttl == 1  # nanoseconds truncated to seconds
    assert role.hmac_key == "k"
    assert role_to_storage(role)["hmac_key"] == "k"


def test_token_backfill_from_legacy_on_read() -> None:
    role = role_from_storage("app", vault_v3_doc(
        token_policies=None, policies=["old"], token_ttl=0, ttl=60 * 10**9,
        max_ttl=120 * 10**9, period=30 * 10**9))
    token = role.token
    assert (token.token_policies, token.token_ttl, token.token_max_ttl, token.token_period) == (
        ("old",), 60, 120, 30)
    assert (token.legacy_policies, token.legacy_ttl) == (("old",), 60)


def test_legacy_string_token_type() -> None:
    assert role_from_storage("a", vault_v3_doc(token_type="service")).token.token_type == "service"
    assert role_from_storage("a", vault_v3_doc(token_type=4)).token.token_type == "default-batch"


def test_upgrade_from_v0() -> None:
    resolver = Resolver()
    doc = {
        "bound_ami_id": "ami-1",
        "bound_iam_role_arn": "arn:aws:iam::123456789012:instance-profile/p",
        "policies": ["dev"],
    }
    role = role_from_storage("old", doc, new_role_id=lambda: "new-id", resolve_unique_id=resolver)
    assert role.auth_type == "ec2"
    assert role.bound_ami_id == ("ami-1",)
    assert role.bound_iam_role_arn == ()
    assert role.bound_iam_instance_profile_arn == ("arn:aws:iam::123456789012:instance-profile/p*",)
    assert role.role_id == "new-id"
    assert role.version == 3
    assert role.token.token_policies == ("dev",)
    assert resolver.calls == []


def test_upgrade_from_v0_iam_resolves_single_principal() -> None:
    resolver = Resolver()
    doc = {"auth_type": "iam", "bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": True}
    role = role_from_storage("old", doc, resolve_unique_id=resolver)
    assert resolver.calls == [ARN]
    assert role.bound_iam_principal_arn == (ARN,)
    assert role.bound_iam_principal_id == ("ID-app",)
    assert role.role_id != ""


def test_upgrade_from_v1_and_v2() -> None:
    v1 = {"version": 1, "auth_type": "ec2", "bound_iam_role_arn_list": [ARN],
          "bound_iam_instance_profile_arn_list": ["arn:aws:iam::123456789012:instance-profile/p"]}
    role = role_from_storage("r", v1, new_role_id=lambda: "id1")
    assert role.bound_iam_role_arn == (ARN + "*",)
    assert role.bound_iam_instance_profile_arn == ("arn:aws:iam::123456789012:instance-profile/p*",)
    assert role.role_id == "id1"
    v2 = {"version": 2, "auth_type": "ec2", "bound_iam_role_arn_list": [ARN], "role_id": ""}
    role = role_from_storage("r", v2, new_role_id=lambda: "id2")
    assert (role.bound_iam_role_arn, role.role_id) == ((ARN,), "id2")


@pytest.mark.parametrize(
    "doc",
    [{"version": 4}, {"version": -1}, {"version": "3"}, {"auth_type": 5},
     {"bound_iam_principal_arn_list": "x"}, {"token_type": 9},
     {"token_bound_cidrs": ["nope"], "version": 3}],
)
def test_bad_documents_are_internal_errors(doc: dict[str, object]) -> None:
    with pytest.raises(BackendError) as info:
        role_from_storage("r", doc)
    assert info.value.status == 500


# ------------------------------------------------------------------ hypothesis

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=8,
)
VALUES = st.one_of(
    JSONISH,
    st.sampled_from([ARN, USER, "arn:aws:iam::123456789012:*", "iam", "ec2", "ec2_instance",
                     "1h", "batch", "10.0.0.0/8", "root", "default"]),
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.sampled_from(sorted(ROLE_FIELDS)), VALUES, max_size=8),
       update=st.booleans())
def test_write_role_only_raises_backend_errors(data: dict[str, object], update: bool) -> None:
    existing = write({"bound_iam_principal_arn": ARN})[0] if update else None
    try:
        role, warnings = write(data, existing)
    except BackendError:
        return
    assert role_from_storage(role.name, role_to_storage(role)) == role
    assert isinstance(role_read_data(role), dict)
    assert all(isinstance(w, str) for w in warnings)
