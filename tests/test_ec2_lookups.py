"""BotocoreEc2Lookups against moto's server (signature checking on): DescribeInstances in the
instance's own account only, and an instance profile's role."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest

from aws_iam_backend import errors
from aws_iam_backend.ec2.instance import Ec2Instance
from aws_iam_backend.io.aws_clients import AwsClients
from aws_iam_backend.io.ec2 import BotocoreEc2Lookups
from aws_iam_backend.io.iam import BotocoreIamLookups
from aws_iam_backend.io.protocols import AwsAccess, Ec2Lookups
from tests.support.ec2 import ACCOUNT, REGION, Fleet, build_fleet, instance_profile, unique
from tests.support.ec2 import OTHER_ACCOUNT as OTHER
from tests.support.moto_server import ADMIN_POLICY, MotoServer


@attrs.frozen
class World(Fleet):
    """The :class:`Fleet` in moto (its ``running`` instance in the VPC subnet, with the
    instance ``profile`` holding ``role``; ``stopped``, ``terminated``, ``bare`` with no
    profile; ``foreign`` in OTHER, with ``other.profile`` holding ``other.role``)."""

    empty_profile: dict[str, Any]
    lookup_role: dict[str, Any]  # an admin role in ACCOUNT, for config/sts


@pytest.fixture(scope="module")
def world(moto: MotoServer) -> World:
    lookup_role = moto.create_role(unique("lookup-"))
    moto.iam.put_role_policy(
        RoleName=lookup_role["RoleName"], PolicyName="all", PolicyDocument=ADMIN_POLICY
    )
    return World(
        **attrs.asdict(build_fleet(moto), recurse=False),
        empty_profile=instance_profile(moto.iam, None),
        lookup_role=lookup_role,
    )


@pytest.fixture
def access(moto: MotoServer) -> AwsAccess:
    return AwsAccess(
        access_key=moto.admin.access_key,
        secret_key=moto.admin.secret_key,
        iam_endpoint=moto.endpoint,
        sts_endpoint=moto.endpoint,
        ec2_endpoint=moto.endpoint,
    )


@pytest.fixture
def lookups() -> BotocoreEc2Lookups:
    return BotocoreEc2Lookups()


def test_is_an_ec2_lookups() -> None:
    lookups: Ec2Lookups = BotocoreEc2Lookups()
    assert lookups is not None


def test_running_instance_described(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    instance_id = world.running.instance_id
    instance = lookups.describe_instance(instance_id, REGION, ACCOUNT, access)
    assert instance == Ec2Instance(
        instance_id=instance_id,
        state="running",
        owner_account_id=ACCOUNT,
        region=REGION,
        image_id=world.image_id,
        subnet_id=world.subnet_id,
        vpc_id=world.vpc_id,
        iam_instance_profile_arn=world.profile["Arn"],
        private_dns_name=world.running.private_dns_name,
        tags=(("team", "a"),),
    )
    assert "/fleet/" in instance.iam_instance_profile_arn
    assert instance.private_dns_name


def test_instance_without_profile(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    instance = lookups.describe_instance(world.bare, REGION, ACCOUNT, access)
    assert instance.iam_instance_profile_arn == ""
    assert instance.subnet_id == world.subnet_id


def test_wrong_region_is_not_found(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    instance_id = world.running.instance_id
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.describe_instance(instance_id, "eu-west-1", ACCOUNT, access)
    assert info.value.message.startswith(
        f'error fetching description for instance ID "{instance_id}": InvalidInstanceID.NotFound: '
    )


def test_unknown_instance_is_a_clean_400(access: AwsAccess, lookups: BotocoreEc2Lookups) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.describe_instance("i-0123456789abcdef0", REGION, ACCOUNT, access)
    assert info.value.message == (
        'error fetching description for instance ID "i-0123456789abcdef0": '
        "InvalidInstanceID.NotFound: The instance ID 'i-0123456789abcdef0' does not exist"
    )
    assert info.value.status == 400


@pytest.mark.parametrize("attribute", ["stopped", "terminated"])
def test_not_running_is_refused(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups, attribute: str
) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.describe_instance(getattr(world, attribute), REGION, ACCOUNT, access)
    assert info.value.message == "instance is not in 'running' state"


@pytest.mark.parametrize(
    ("instance_id", "region", "message"),
    [
        ("", REGION, 'invalid instance ID ""'),
        ("web-session", REGION, 'invalid instance ID "web-session"'),
        ("i-0123456789ABCDEF0", REGION, 'invalid instance ID "i-0123456789ABCDEF0"'),
        ("i-" + "0" * 80, REGION, f'invalid instance ID "i-{"0" * 62}"'),
        ("i-01234567", "", 'invalid region ""'),
        ("i-01234567", "us-west-2/../x", 'invalid region "us-west-2/../x"'),
        ("i-01234567", "evil.example.com", 'invalid region "evil.example.com"'),
    ],
)
def test_malformed_input_refused_before_any_call(
    instance_id: str, region: str, message: str
) -> None:
    # No credentials and no endpoints: any AWS call would fail differently.
    with pytest.raises(errors.InvalidRequestError) as info:
        BotocoreEc2Lookups().describe_instance(instance_id, region, ACCOUNT, AwsAccess())
    assert info.value.message == message


def test_other_account_refused_without_sts_role(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.describe_instance(world.foreign, REGION, OTHER, access)
    assert info.value.message == (
        f'unable to fetch client for account ID "{OTHER}" -- '
        f'default client is for account "{ACCOUNT}"'
    )


def test_other_account_through_its_sts_role(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    via_role = attrs.evolve(access, sts_role=world.other.admin_role, external_id="ext-1")
    instance = lookups.describe_instance(world.foreign, REGION, OTHER, via_role)
    assert instance.owner_account_id == OTHER
    assert instance.instance_id == world.foreign
    # The same credentials do not see this account's instances.
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.describe_instance(world.running.instance_id, REGION, OTHER, via_role)
    assert "InvalidInstanceID.NotFound" in info.value.message


def test_sts_role_in_the_wrong_account_is_not_trusted(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    """A config/sts role for OTHER that really is in ACCOUNT describes ACCOUNT's instance:
    the reservation's owner gives it away (CVE-2025-11621 class)."""
    wrong = attrs.evolve(access, sts_role=world.lookup_role["Arn"])
    instance_id = world.running.instance_id
    with pytest.raises(errors.UpstreamError) as info:
        lookups.describe_instance(instance_id, REGION, OTHER, wrong)
    assert info.value.message == (
        f'EC2 described instance "{instance_id}" in account "{ACCOUNT}" for account "{OTHER}"'
    )


def test_bad_credentials_mapped(moto: MotoServer, world: World) -> None:
    bad = AwsAccess(
        access_key=moto.admin.access_key,
        secret_key="not-the-secret",
        sts_endpoint=moto.endpoint,
        ec2_endpoint=moto.endpoint,
        max_retries=0,
    )
    for access in (bad, attrs.evolve(bad, sts_role=world.lookup_role["Arn"])):
        with pytest.raises(errors.UpstreamError) as info:
            BotocoreEc2Lookups().describe_instance(
                world.running.instance_id, REGION, ACCOUNT, access
            )
        assert "not-the-secret" not in info.value.message
        assert json.dumps(info.value.message)  # one plain line


def test_unreachable_endpoint_is_redacted(access: AwsAccess, world: World) -> None:
    broken = attrs.evolve(
        access, ec2_endpoint="http://AKIAX:s3cr3t@127.0.0.1:1/?token=q1", max_retries=0
    )
    with pytest.raises(errors.UpstreamError) as info:
        BotocoreEc2Lookups().describe_instance(world.running.instance_id, REGION, ACCOUNT, broken)
    for secret in ("s3cr3t", "AKIAX", "q1"):
        assert secret not in info.value.message
    assert info.value.message.startswith("error fetching description for instance ID ")


def test_concurrent_lookups_share_clients(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    instance_id = world.running.instance_id
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(
            pool.map(
                lambda _: lookups.describe_instance(instance_id, REGION, ACCOUNT, access), range(16)
            )
        )
    assert {instance.instance_id for instance in found} == {instance_id}


# ---------------------------------------------------------------- instance profile's role


def test_instance_profile_role(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    assert lookups.instance_profile_role_arn(world.profile["Arn"], access) == world.role["Arn"]
    assert "/svc/" in world.role["Arn"]


def test_instance_profile_role_shared_with_iam_lookups(world: World, access: AwsAccess) -> None:
    clients = AwsClients()
    iam = BotocoreIamLookups(clients=clients)
    ec2 = BotocoreEc2Lookups(clients=iam.clients)
    assert ec2.clients is iam.clients
    assert iam.instance_profile_role_arn(world.profile["Arn"], access) == world.role["Arn"]
    assert ec2.instance_profile_role_arn(world.profile["Arn"], access) == world.role["Arn"]


def test_instance_profile_without_role(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        lookups.instance_profile_role_arn(world.empty_profile["Arn"], access)
    assert info.value.message == (
        "IAM role ARN could not be fetched: invalid roles in the output of instance profile details"
    )


def test_unknown_instance_profile(access: AwsAccess, lookups: BotocoreEc2Lookups) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        lookups.instance_profile_role_arn(
            f"arn:aws:iam::{ACCOUNT}:instance-profile/{unique('ghost-')}", access
        )
    assert info.value.message.startswith("IAM role ARN could not be fetched: NoSuchEntity: ")


def test_instance_profile_in_other_account(
    world: World, access: AwsAccess, lookups: BotocoreEc2Lookups
) -> None:
    arn = world.other.profile["Arn"]
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.instance_profile_role_arn(arn, access)
    assert info.value.message == (
        f'could not fetch IAM client: unable to fetch client for account ID "{OTHER}" -- '
        f'default client is for account "{ACCOUNT}"'
    )
    via_role = attrs.evolve(access, sts_role=world.other.admin_role)
    assert lookups.instance_profile_role_arn(arn, via_role) == world.other.role["Arn"]
    # A config/sts role really in ACCOUNT answering for OTHER is not trusted.
    wrong = attrs.evolve(access, sts_role=world.lookup_role["Arn"])
    same_name = (
        f"arn:aws:iam::{OTHER}:instance-profile/fleet/{world.profile['InstanceProfileName']}"
    )
    with pytest.raises(errors.UpstreamError) as upstream:
        lookups.instance_profile_role_arn(same_name, wrong)
    assert upstream.value.message.startswith(
        "IAM role ARN could not be fetched: IAM returned an ARN"
    )


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (
            "nope",
            'failed to parse IAM instance profile ARN "nope": unrecognized arn: '
            "contains 1 colon-separated parts, expected 6",
        ),
        (
            f"arn:aws:iam::{ACCOUNT}:role/web",
            f'failed to parse IAM instance profile ARN "arn:aws:iam::{ACCOUNT}:role/web": '
            "not an instance profile",
        ),
    ],
)
def test_instance_profile_arn_must_parse(arn: str, message: str) -> None:
    with pytest.raises(errors.InternalError) as info:
        BotocoreEc2Lookups().instance_profile_role_arn(arn, AwsAccess())
    assert info.value.message == message


class _AnsweringIam:
    """An IAM client stand-in whose ``GetInstanceProfile`` gives a fixed answer."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def get_instance_profile(self, **_: Any) -> dict[str, Any]:
        return self.answer


@pytest.mark.parametrize("role", [{"RoleName": "web"}, {"RoleName": "web", "Arn": ""}, None])
def test_instance_profile_role_without_an_arn(
    monkeypatch: pytest.MonkeyPatch, role: dict[str, str] | None
) -> None:
    profile = f"arn:aws:iam::{ACCOUNT}:instance-profile/web"
    answer = {"InstanceProfile": {"Arn": profile, "Roles": [role]}}
    monkeypatch.setattr(
        BotocoreIamLookups, "_iam_client", lambda _self, _entity, _access: _AnsweringIam(answer)
    )
    with pytest.raises(errors.UpstreamError) as info:
        BotocoreIamLookups().instance_profile_role_arn(profile, AwsAccess())
    assert info.value.message == (
        "IAM role ARN could not be fetched: nil role ARN in the output of instance profile details"
    )


def test_assuming_a_role_without_any_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    clients = AwsClients()
    monkeypatch.setattr(clients._session, "get_credentials", lambda: None)
    access = AwsAccess(sts_role=f"arn:aws:iam::{ACCOUNT}:role/lookup")
    with pytest.raises(errors.UpstreamError) as info:
        clients.for_account("ec2", REGION, "", ACCOUNT, access)
    assert info.value.message == "unable to locate AWS credentials"
