"""Pure EC2 checks: a DescribeInstances answer to an Ec2Instance (Vault's validateInstance)
and a role's EC2 binds against it (Vault's verifyInstanceMeetsRoleRequirements)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from aws_iam_backend import errors
from aws_iam_backend.ec2.instance import (
    EC2_LOGIN_PREFIX,
    Ec2Instance,
    check_instance_binds,
    check_region_bind,
    instance_from_description,
)
from aws_iam_backend.vault.roles import Role

ACCOUNT = "123456789012"
OTHER = "210987654321"
IID = "i-0123456789abcdef0"
PROFILE = f"arn:aws:iam::{ACCOUNT}:instance-profile/team/web/web-profile"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/svc/web-role"

INSTANCE = Ec2Instance(
    instance_id=IID,
    state="running",
    owner_account_id=ACCOUNT,
    region="us-west-2",
    image_id="ami-12345678",
    subnet_id="subnet-1",
    vpc_id="vpc-1",
    iam_instance_profile_arn=PROFILE,
    private_dns_name="ip-10-0-0-1.us-west-2.compute.internal",
    tags=(("Name", "web"), ("VaultRole", "first"), ("VaultRole", "second")),
)

# Every bind set to a value the instance satisfies.
MATCHING = Role(
    name="web",
    role_id="rid",
    inferred_entity_type="ec2_instance",
    inferred_aws_region="us-west-2",
    bound_ec2_instance_id=("i-00000000", IID),
    bound_account_id=(OTHER, ACCOUNT),
    bound_ami_id=("ami-12345678",),
    bound_subnet_id=("subnet-0", "subnet-1"),
    bound_vpc_id=("vpc-1",),
    bound_iam_instance_profile_arn=(PROFILE,),
    bound_iam_role_arn=(ROLE_ARN,),
)

# Vault's order, each bind broken in turn, with the reason it gives.
FAILURES: list[tuple[dict[str, Any], str]] = [
    (
        {"bound_ec2_instance_id": ("i-00000000",)},
        f'instance ID "{IID}" does not belong to the role "web"',
    ),
    ({"bound_account_id": (OTHER,)}, f'account ID "{ACCOUNT}" does not belong to role "web"'),
    ({"bound_ami_id": ("ami-0",)}, 'AMI ID "ami-12345678" does not belong to role "web"'),
    (
        {"bound_subnet_id": ("subnet-9",)},
        'subnet ID "subnet-1" does not satisfy the constraint on role "web"',
    ),
    ({"bound_vpc_id": ("vpc-9",)}, 'VPC ID "vpc-1" does not satisfy the constraint on role "web"'),
    (
        {"bound_iam_instance_profile_arn": (PROFILE + "x",)},
        f'IAM instance profile ARN "{PROFILE}" does not satisfy the constraint role "web"',
    ),
]


def check(role: Role, instance: Ec2Instance = INSTANCE, role_arn: str | None = None) -> str | None:
    return check_instance_binds(
        role, instance, account_id=ACCOUNT, role_name="web", instance_profile_role_arn=role_arn
    )


def test_all_binds_hold_after_the_role_arn_is_fetched() -> None:
    assert check(MATCHING) == PROFILE  # everything else holds; the role bind needs IAM
    assert check(MATCHING, role_arn=ROLE_ARN) is None


def test_no_binds_admit_and_need_nothing() -> None:
    assert check(Role(name="web", role_id="rid")) is None


def test_without_a_role_bind_no_iam_lookup_is_asked_for() -> None:
    role = attrs.evolve(MATCHING, bound_iam_role_arn=())
    assert check(role) is None


@pytest.mark.parametrize(("changes", "reason"), FAILURES)
def test_each_bind_refuses_with_vaults_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        check(attrs.evolve(MATCHING, **changes), role_arn=ROLE_ARN)
    assert info.value.message == "error validating instance: " + reason
    assert info.value.status == 400


def test_the_first_failing_bind_in_vaults_order_is_reported() -> None:
    """Break every bind; remove the first broken one each time: the next one is reported."""
    broken: dict[str, Any] = {}
    for changes, _ in FAILURES:
        broken.update(changes)
    broken["bound_iam_role_arn"] = ("arn:aws:iam::123456789012:role/other",)
    expected = [reason for _, reason in FAILURES]
    expected.append(
        f'IAM role ARN "{ROLE_ARN}" does not satisfy the constraint role "web"',
    )
    role = attrs.evolve(MATCHING, **broken)
    for index, reason in enumerate(expected):
        with pytest.raises(errors.InvalidRequestError) as info:
            check(role, role_arn=ROLE_ARN)
        assert info.value.message == "error validating instance: " + reason
        if index < len(FAILURES):
            field = next(iter(FAILURES[index][0]))
            role = attrs.evolve(role, **{field: getattr(MATCHING, field)})


def test_role_bind_refuses() -> None:
    role = attrs.evolve(MATCHING, bound_iam_role_arn=(ROLE_ARN + "-x",))
    assert check(role) == PROFILE
    with pytest.raises(errors.InvalidRequestError) as info:
        check(role, role_arn=ROLE_ARN)
    assert info.value.message == (
        f'error validating instance: IAM role ARN "{ROLE_ARN}" does not satisfy the '
        'constraint role "web"'
    )


def test_a_failing_bind_before_the_role_bind_needs_no_iam_lookup() -> None:
    role = attrs.evolve(MATCHING, bound_vpc_id=("vpc-9",))
    with pytest.raises(errors.InvalidRequestError):
        check(role)  # no role ARN given: refused before it is asked for


@pytest.mark.parametrize(
    ("bound", "matches"),
    [
        ((PROFILE,), True),
        ((f"arn:aws:iam::{ACCOUNT}:instance-profile/team/*",), True),
        ((f"arn:aws:iam::{ACCOUNT}:instance-profile/team/web/web-prof*",), True),
        ((PROFILE + "*",), True),  # a trailing * also matches the empty rest
        ((f"arn:aws:iam::{ACCOUNT}:instance-profile/*/web/web-profile",), False),  # * literal
        ((f"arn:aws:iam::{ACCOUNT}:instance-profile/team/web",), False),  # exact, no prefix
        ((f"arn:aws:iam::{OTHER}:instance-profile/*",), False),
        ((PROFILE.upper(),), False),
        (("x", f"arn:aws:iam::{ACCOUNT}:instance-profile/t*"), True),  # any entry
    ],
)
def test_instance_profile_wildcard_is_a_plain_prefix(bound: tuple[str, ...], matches: bool) -> None:
    role = Role(name="web", role_id="rid", bound_iam_instance_profile_arn=bound)
    if matches:
        assert check(role) is None
    else:
        with pytest.raises(errors.InvalidRequestError):
            check(role)


@pytest.mark.parametrize(
    ("bound", "matches"),
    [
        ((ROLE_ARN,), True),
        ((f"arn:aws:iam::{ACCOUNT}:role/svc/*",), True),
        ((f"arn:aws:iam::{ACCOUNT}:role/*",), True),
        ((f"arn:aws:iam::{ACCOUNT}:role/*/web-role",), False),
        ((f"arn:aws:iam::{ACCOUNT}:role/web-role",), False),  # the path is part of the ARN
        ((f"arn:aws:iam::{OTHER}:role/svc/*",), False),
    ],
)
def test_role_wildcard_is_a_plain_prefix(bound: tuple[str, ...], matches: bool) -> None:
    role = Role(name="web", role_id="rid", bound_iam_role_arn=bound)
    assert check(role) == PROFILE
    if matches:
        assert check(role, role_arn=ROLE_ARN) is None
    else:
        with pytest.raises(errors.InvalidRequestError):
            check(role, role_arn=ROLE_ARN)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"image_id": ""}, "bound_ami_id", "AMI ID in the instance description is nil"),
        ({"subnet_id": ""}, "bound_subnet_id", "subnet ID in the instance description is nil"),
        ({"vpc_id": ""}, "bound_vpc_id", "VPC ID in the instance description is nil"),
        (
            {"iam_instance_profile_arn": ""},
            "bound_iam_instance_profile_arn",
            "IAM instance profile in the instance description is nil",
        ),
        (
            {"iam_instance_profile_arn": ""},
            "bound_iam_role_arn",
            "IAM instance profile in the instance description is nil",
        ),
        (
            {"iam_instance_profile_arn": "not-an-arn"},
            "bound_iam_role_arn",
            'failed to parse IAM instance profile ARN "not-an-arn": unrecognized arn: '
            "contains 1 colon-separated parts, expected 6",
        ),
        (
            {"iam_instance_profile_arn": ROLE_ARN},
            "bound_iam_role_arn",
            f'failed to parse IAM instance profile ARN "{ROLE_ARN}": not an instance profile',
        ),
    ],
)
def test_missing_fields_are_internal_errors(
    changes: dict[str, Any], field: str, message: str
) -> None:
    role = Role(name="web", role_id="rid", **{field: getattr(MATCHING, field)})
    with pytest.raises(errors.InternalError) as info:
        check(role, attrs.evolve(INSTANCE, **changes))
    assert info.value.message == message
    assert info.value.status == 500


def test_missing_fields_without_their_binds_are_fine() -> None:
    bare = attrs.evolve(INSTANCE, image_id="", subnet_id="", vpc_id="", iam_instance_profile_arn="")
    role = Role(
        name="web", role_id="rid", bound_ec2_instance_id=(IID,), bound_account_id=(ACCOUNT,)
    )
    assert check(role, bare) is None


def test_empty_role_arn_from_iam_is_an_internal_error() -> None:
    with pytest.raises(errors.InternalError) as info:
        check(MATCHING, role_arn="")
    assert info.value.message == "IAM role ARN could not be fetched"


def test_a_wrong_account_or_state_is_refused_whatever_the_lookup_did() -> None:
    wrong: list[dict[str, Any]] = [
        {"owner_account_id": OTHER},
        {"owner_account_id": ""},
        {"state": "stopped"},
    ]
    for changes in wrong:
        with pytest.raises(errors.InternalError) as info:
            check(Role(name="web", role_id="rid"), attrs.evolve(INSTANCE, **changes))
        assert info.value.message == (
            f'instance description of "{IID}" is not of a running instance in account '
            f'"{ACCOUNT}"'
        )
    with pytest.raises(errors.InternalError) as info:  # the account the instance was described in
        check_instance_binds(
            Role(name="web", role_id="rid"), INSTANCE, account_id=OTHER, role_name="web"
        )
    assert info.value.message == (
        f'instance description of "{IID}" is not of a running instance in account "{OTHER}"'
    )


def test_ec2_login_prefix() -> None:
    role = Role(name="web", role_id="rid", auth_type="ec2", bound_ami_id=("ami-0",))
    with pytest.raises(errors.InvalidRequestError) as info:
        check_instance_binds(
            role, INSTANCE, account_id=ACCOUNT, role_name="web", prefix=EC2_LOGIN_PREFIX
        )
    assert info.value.message == (
        'Error validating instance: AMI ID "ami-12345678" does not belong to role "web"'
    )


def test_region_bind() -> None:
    role = Role(name="web", role_id="rid", auth_type="ec2", bound_region=("us-east-1", "eu-west-1"))
    check_region_bind(role, "eu-west-1", "web")
    check_region_bind(Role(name="web", role_id="rid"), "anywhere", "web")
    with pytest.raises(errors.InvalidRequestError) as info:
        check_region_bind(role, "us-west-2", "web")
    assert info.value.message == 'Region "us-west-2" does not satisfy the constraint on role "web"'


def test_role_name_and_values_are_go_quoted() -> None:
    odd = attrs.evolve(INSTANCE, instance_id='i-"x"\n')
    role = Role(name="web", role_id="rid", bound_ec2_instance_id=("i-1",))
    with pytest.raises(errors.InvalidRequestError) as info:
        check_instance_binds(role, odd, account_id=ACCOUNT, role_name='w"b')
    assert info.value.message == (
        'error validating instance: instance ID "i-\\"x\\"\\n" does not belong to the role "w\\"b"'
    )


def test_tag_lookup_takes_the_first() -> None:
    assert INSTANCE.tag("VaultRole") == "first"
    assert INSTANCE.tag("vaultrole") is None


# ---------------------------------------------------------------- instance_from_description


def description(**instance: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "InstanceId": IID,
        "State": {"Code": 16, "Name": "running"},
        "ImageId": "ami-12345678",
        "SubnetId": "subnet-1",
        "VpcId": "vpc-1",
        "IamInstanceProfile": {"Arn": PROFILE, "Id": "AIPA1"},
        "PrivateDnsName": "ip-10-0-0-1.us-west-2.compute.internal",
        "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "VaultRole", "Value": "first"}],
    }
    raw.update(instance)
    return {"Reservations": [{"OwnerId": ACCOUNT, "Instances": [raw]}]}


def parse(answer: dict[str, Any], account_id: str = ACCOUNT) -> Ec2Instance:
    return instance_from_description(
        answer, instance_id=IID, account_id=account_id, region="us-west-2"
    )


def test_description_parsed() -> None:
    assert parse(description()) == attrs.evolve(
        INSTANCE, tags=(("Name", "web"), ("VaultRole", "first"))
    )


def test_description_without_optional_fields() -> None:
    answer = description()
    raw = answer["Reservations"][0]["Instances"][0]
    for key in ("ImageId", "SubnetId", "VpcId", "IamInstanceProfile", "PrivateDnsName", "Tags"):
        del raw[key]
    assert parse(answer) == Ec2Instance(
        instance_id=IID, state="running", owner_account_id=ACCOUNT, region="us-west-2"
    )


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ({}, errors.InvalidRequestError, "no reservations found in instance description"),
        (
            {"Reservations": []},
            errors.InvalidRequestError,
            "no reservations found in instance description",
        ),
        (
            {"Reservations": [{"OwnerId": ACCOUNT, "Instances": []}]},
            errors.InvalidRequestError,
            "no instance details found in reservations",
        ),
        (
            description(InstanceId="i-00000000"),
            errors.UpstreamError,
            "expected instance ID not matching the instance ID in the instance description",
        ),
        (
            description(State=None),
            errors.UpstreamError,
            "instance state in instance description is nil",
        ),
        (
            description(State={"Code": 80, "Name": "stopped"}),
            errors.InvalidRequestError,
            "instance is not in 'running' state",
        ),
        (
            description(State={"Code": 0, "Name": "pending"}),
            errors.InvalidRequestError,
            "instance is not in 'running' state",
        ),
        (
            description(State={"Code": 48, "Name": "terminated"}),
            errors.InvalidRequestError,
            "instance is not in 'running' state",
        ),
    ],
)
def test_description_refused_with_vaults_reasons(
    answer: dict[str, Any], error: type[errors.BackendError], message: str
) -> None:
    with pytest.raises(error) as info:
        parse(answer)
    assert type(info.value) is error
    assert info.value.message == message


def test_description_in_another_account_is_refused_before_its_state_is_read() -> None:
    answer = description(State={"Name": "stopped"})
    answer["Reservations"][0]["OwnerId"] = OTHER
    with pytest.raises(errors.UpstreamError) as info:
        parse(answer)
    assert info.value.message == (
        f'EC2 described instance "{IID}" in account "{OTHER}" for account "{ACCOUNT}"'
    )
    del answer["Reservations"][0]["OwnerId"]
    with pytest.raises(errors.UpstreamError):
        parse(answer)


def test_description_with_more_than_one_instance_is_refused() -> None:
    answer = description()
    reservation = answer["Reservations"][0]
    reservation["Instances"].append(dict(reservation["Instances"][0]))
    with pytest.raises(errors.UpstreamError) as info:
        parse(answer)
    assert info.value.message == f'more than one instance found for instance ID "{IID}"'
    answer = description()
    answer["Reservations"].append(answer["Reservations"][0])
    with pytest.raises(errors.UpstreamError):
        parse(answer)


def test_description_with_wrong_types_is_refused_not_crashed() -> None:
    for answer in (
        {"Reservations": "x"},
        {"Reservations": [{"Instances": "x"}]},
        {"Reservations": [{"OwnerId": ACCOUNT, "Instances": [{"InstanceId": 5}]}]},
        description(State="running"),
    ):
        with pytest.raises(errors.BackendError):
            parse(answer)
    odd = parse(description(ImageId=7, Tags=[{"Key": 1}, "x", {"Key": "k"}]))
    assert odd.image_id == ""
    assert odd.tags == (("k", ""),)
