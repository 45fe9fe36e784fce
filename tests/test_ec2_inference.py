"""IAM logins of roles inferring an EC2 instance (``inferred_entity_type=ec2_instance``)
against moto's server (signature checking on): the instance is the assumed-role session
name, described in the role's ``inferred_aws_region``; Vault's EC2 binds with its texts;
ours on top (the caller's role must be the role of the instance's instance profile,
attack 75); cross-account lookups through ``config/sts``; renewal; the outbound cap; and
hvac against the dev server over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import hvac
import hvac.exceptions
import pytest

from aws_iam_backend import MemoryStorage
from aws_iam_backend.drivers.ratelimit import RateLimits
from aws_iam_backend.drivers.shapes import BackendSettings
from aws_iam_backend.ec2.instance import Ec2Instance
from aws_iam_backend.errors import (
    BackendError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitedError,
    UpstreamError,
)
from aws_iam_backend.io.ec2 import BotocoreEc2Lookups
from aws_iam_backend.io.protocols import AwsAccess, Ec2Lookups
from aws_iam_backend.vault.tokens import TOKEN_PREFIX
from tests.support.drivers import ASYNC_ONLY, Backend, driver  # noqa: F401
from tests.support.ec2 import (
    ACCOUNT,
    REGION,
    Fleet,
    build_fleet,
    client_config,
    instance_profile,
    unique,
)
from tests.support.ec2 import OTHER_ACCOUNT as OTHER
from tests.support.moto_server import Keys, MotoServer
from tests.support.payloads import botocore_payload, hvac_payload
from tests.support.server import DevServer

ROLE = "fleet"
OTHER_AMI = "ami-12345678"
INFERENCE_METADATA = [
    "account_id",
    "auth_type",
    "client_arn",
    "inferred_aws_region",
    "inferred_entity_id",
    "inferred_entity_type",
    "inferred_hostname",
]


# ------------------------------------------------------------------------- the world


@attrs.frozen
class World(Fleet):
    """moto's side, built once: the :class:`Fleet` (in ACCOUNT its ``role``, path
    ``/svc/``, in its instance ``profile``, path ``/fleet/``, which the ``running``,
    ``stopped`` and ``terminated`` instances have and the ``bare`` one has not; in OTHER
    the ``foreign`` instance with a profile holding ``other.role``); ``keys`` are
    ``role`` assumed with the running instance's ID as session name, ``foreign_keys``
    ``other.role`` with the foreign instance's."""

    keys: Keys
    intruder: dict[str, Any]  # a role not in any instance profile
    foreign_keys: Keys

    @property
    def instance_id(self) -> str:
        return self.running.instance_id


@pytest.fixture(scope="module")
def world(moto: MotoServer) -> World:
    fleet = build_fleet(moto)
    assert fleet.image_id != OTHER_AMI
    return World(
        **attrs.asdict(fleet, recurse=False),
        keys=moto.assume_role(fleet.role_arn, fleet.running.instance_id),
        intruder=moto.create_role(unique("ci-")),
        foreign_keys=moto.assume_role(fleet.other.role["Arn"], fleet.foreign),
    )


# ----------------------------------------------------------------------- the backend


class RecordingLookups:
    """Real EC2 lookups that record each call; with ``gate`` cleared, a DescribeInstances
    signals ``inside`` and waits for the gate before going on."""

    def __init__(self, inner: Ec2Lookups) -> None:
        self.inner = inner
        self.described: list[str] = []
        self.profiles: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.inside = threading.Semaphore(0)

    def describe_instance(
        self, instance_id: str, region: str, account_id: str, access: AwsAccess
    ) -> Ec2Instance:
        self.described.append(instance_id)
        if not self.gate.is_set():
            self.inside.release()
            assert self.gate.wait(30)
        return self.inner.describe_instance(instance_id, region, account_id, access)

    def instance_profile_role_arn(self, profile_arn: str, access: AwsAccess) -> str:
        self.profiles.append(profile_arn)
        return self.inner.instance_profile_role_arn(profile_arn, access)


@attrs.define
class Setup:
    """A backend configured for moto, its (sync) storage and its recorded EC2 lookups."""

    backend: Any
    storage: MemoryStorage
    lookups: RecordingLookups

    def tokens(self) -> list[str]:
        return self.storage.list(TOKEN_PREFIX)

    def login(self, keys: Keys, role: str | None = ROLE) -> dict[str, Any]:
        auth: dict[str, Any] = self.backend.login(hvac_payload(keys, role=role)).auth or {}
        assert auth["client_token"]
        return auth

    def refused(
        self,
        keys: Keys,
        error: type[BackendError],
        message: str,
        *,
        role: str | None = ROLE,
        status: int = 400,
    ) -> None:
        """The login is refused with exactly this error, and no token is issued."""
        before = self.tokens()
        with pytest.raises(BackendError) as info:
            self.backend.login(hvac_payload(keys, role=role))
        assert type(info.value) is error
        assert info.value.message == message
        assert info.value.status == status
        assert self.tokens() == before

    def renewal_refused(self, token: str, instance_id: str, reason: str) -> None:
        """The token's renewal is refused (403): the re-check of its instance failed."""
        with pytest.raises(PermissionDeniedError) as info:
            self.backend.renew_token(token)
        assert info.value.message == (
            f'failed to renew entry: failed to verify instance ID "{instance_id}": {reason}'
        )
        assert info.value.status == 403


def make_setup(moto: MotoServer, settings: BackendSettings | None = None) -> Setup:
    storage = MemoryStorage()
    lookups = RecordingLookups(BotocoreEc2Lookups())
    backend = Backend(storage=storage, ec2=lookups, settings=settings)
    backend.write_client_config(client_config(moto))
    return Setup(backend, storage, lookups)


@pytest.fixture
def setup(moto: MotoServer) -> Setup:
    return make_setup(moto)


def inferring(region: str = REGION, **binds: Any) -> dict[str, Any]:
    """An iam role inferring an EC2 instance in ``region``, with ``binds``."""
    return {
        "auth_type": "iam",
        "inferred_entity_type": "ec2_instance",
        "inferred_aws_region": region,
        **binds,
    }


# ----------------------------------------------------------------------- logging in


def test_login_bound_to_the_instance_role(setup: Setup, world: World) -> None:
    setup.backend.write_role(ROLE, inferring(bound_iam_principal_arn=world.role["Arn"]))
    setup.backend.write_identity_config({"iam_metadata": INFERENCE_METADATA})
    auth = setup.login(world.keys)
    role_id = setup.backend.read_role(ROLE)["role_id"]
    assert auth["metadata"] == {
        "role_id": role_id,
        "account_id": ACCOUNT,
        "auth_type": "iam",
        "client_arn": (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/{world.role['RoleName']}/{world.instance_id}"
        ),
        "inferred_aws_region": REGION,
        "inferred_entity_id": world.instance_id,
        "inferred_entity_type": "ec2_instance",
        "inferred_hostname": world.running.private_dns_name,
    }
    assert world.running.private_dns_name
    record = setup.backend.lookup_token(auth["client_token"])
    assert record.internal_data["inferred_entity_id"] == world.instance_id
    assert record.internal_data["inferred_aws_region"] == REGION
    assert record.internal_data["inferred_hostname"] == world.running.private_dns_name
    assert setup.lookups.described == [world.instance_id]
    assert setup.lookups.profiles == [world.profile["Arn"]]  # our caller-is-instance rule


def test_default_metadata_has_no_inference_fields(setup: Setup, world: World) -> None:
    setup.backend.write_role(ROLE, inferring(bound_iam_principal_arn=world.role["Arn"]))
    auth = setup.login(world.keys)
    assert set(auth["metadata"]) == {"role_id", "account_id", "auth_type"}


def test_login_without_principal_arn_decided_by_the_instance(setup: Setup, world: World) -> None:
    """No ``bound_iam_principal_arn``: the instance checks alone decide (as in Vault), and
    the role name defaults to the caller's role."""
    name = world.role["RoleName"]
    setup.backend.write_role(name, inferring(bound_ami_id=world.image_id))
    setup.backend.write_identity_config({"iam_metadata": INFERENCE_METADATA})
    auth = setup.login(world.keys, role=None)
    metadata = auth["metadata"]
    assert metadata["inferred_entity_id"] == world.instance_id
    assert metadata["inferred_entity_type"] == "ec2_instance"
    assert metadata["inferred_hostname"] == world.running.private_dns_name
    assert metadata["inferred_aws_region"] == REGION
    assert setup.backend.lookup_token(auth["client_token"]).role_name == name


def test_botocore_regional_payload(setup: Setup, world: World) -> None:
    setup.backend.write_role(ROLE, inferring(bound_vpc_id=world.vpc_id))
    payload = botocore_payload(world.keys, region="us-east-1", role=ROLE)
    assert (setup.backend.login(payload).auth or {})["client_token"]


def _fleet_arn(kind: str, rest: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{rest}"


# (id, field, bound value, Vault's reason without its prefix or None when admitted)
BIND_CASES: list[tuple[str, str, Callable[[World], str], Callable[[World], str] | None]] = [
    ("ami", "bound_ami_id", lambda w: w.image_id, None),
    (
        "ami-other",
        "bound_ami_id",
        lambda w: OTHER_AMI,
        lambda w: f'AMI ID "{w.image_id}" does not belong to role "{ROLE}"',
    ),
    ("account", "bound_account_id", lambda w: ACCOUNT, None),
    (
        "account-other",
        "bound_account_id",
        lambda w: OTHER,
        lambda w: f'account ID "{ACCOUNT}" does not belong to role "{ROLE}"',
    ),
    ("vpc", "bound_vpc_id", lambda w: w.vpc_id, None),
    (
        "vpc-other",
        "bound_vpc_id",
        lambda w: "vpc-12345678",
        lambda w: f'VPC ID "{w.vpc_id}" does not satisfy the constraint on role "{ROLE}"',
    ),
    ("subnet", "bound_subnet_id", lambda w: w.subnet_id, None),
    (
        "subnet-other",
        "bound_subnet_id",
        lambda w: "subnet-12345678",
        lambda w: f'subnet ID "{w.subnet_id}" does not satisfy the constraint on role "{ROLE}"',
    ),
    ("instance", "bound_ec2_instance_id", lambda w: w.instance_id, None),
    (
        "instance-other",
        "bound_ec2_instance_id",
        lambda w: "i-0123456789abcdef0",
        lambda w: f'instance ID "{w.instance_id}" does not belong to the role "{ROLE}"',
    ),
    ("profile", "bound_iam_instance_profile_arn", lambda w: w.profile["Arn"], None),
    (
        "profile-prefix",
        "bound_iam_instance_profile_arn",
        lambda w: _fleet_arn("instance-profile", "fleet/*"),
        None,
    ),
    (
        "profile-prefix-other",
        "bound_iam_instance_profile_arn",
        lambda w: _fleet_arn("instance-profile", "other/*"),
        lambda w: (
            f'IAM instance profile ARN "{w.profile["Arn"]}" does not satisfy the constraint '
            f'role "{ROLE}"'
        ),
    ),
    (
        "profile-other",
        "bound_iam_instance_profile_arn",
        lambda w: _fleet_arn("instance-profile", "fleet/nobody"),
        lambda w: (
            f'IAM instance profile ARN "{w.profile["Arn"]}" does not satisfy the constraint '
            f'role "{ROLE}"'
        ),
    ),
    ("role", "bound_iam_role_arn", lambda w: w.role["Arn"], None),
    ("role-prefix", "bound_iam_role_arn", lambda w: _fleet_arn("role", "svc/*"), None),
    (
        "role-prefix-other",
        "bound_iam_role_arn",
        lambda w: _fleet_arn("role", "other/*"),
        lambda w: f'IAM role ARN "{w.role["Arn"]}" does not satisfy the constraint role "{ROLE}"',
    ),
    (
        "role-other",
        "bound_iam_role_arn",
        lambda w: _fleet_arn("role", "svc/nobody"),
        lambda w: f'IAM role ARN "{w.role["Arn"]}" does not satisfy the constraint role "{ROLE}"',
    ),
]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [case[1:] for case in BIND_CASES],
    ids=[case[0] for case in BIND_CASES],
)
def test_instance_binds(
    setup: Setup,
    world: World,
    field: str,
    value: Callable[[World], str],
    reason: Callable[[World], str] | None,
) -> None:
    setup.backend.write_role(ROLE, inferring(**{field: value(world)}))
    if reason is None:
        setup.login(world.keys)
        # The profile's role is fetched once, by bound_iam_role_arn or by our rule.
        assert setup.lookups.profiles == [world.profile["Arn"]]
    else:
        setup.refused(
            world.keys, InvalidRequestError, "error validating instance: " + reason(world)
        )
        fetched = [world.profile["Arn"]] if field == "bound_iam_role_arn" else []
        assert setup.lookups.profiles == fetched
    assert setup.lookups.described == [world.instance_id]


def test_bound_region_refused_on_iam_roles(setup: Setup) -> None:
    with pytest.raises(InvalidRequestError) as info:
        setup.backend.write_role(ROLE, inferring(bound_region=REGION))
    assert info.value.message == "specified bound_region but not specifying ec2 auth_type"
    assert info.value.status == 400


@pytest.mark.parametrize("state", ["stopped", "terminated"])
def test_instance_not_running(moto: MotoServer, setup: Setup, world: World, state: str) -> None:
    instance_id = getattr(world, state)
    keys = moto.assume_role(world.role["Arn"], instance_id)
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id))
    setup.refused(
        keys,
        InvalidRequestError,
        f"failed to verify {instance_id} as a valid EC2 instance in region {REGION}: "
        "instance is not in 'running' state",
    )


def test_session_name_not_an_instance_id(moto: MotoServer, setup: Setup, world: World) -> None:
    keys = moto.assume_role(world.role["Arn"], "web-session")
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id))
    setup.refused(
        keys,
        InvalidRequestError,
        f"failed to verify web-session as a valid EC2 instance in region {REGION}: "
        'invalid instance ID "web-session"',
    )
    assert setup.lookups.described == []  # refused before any EC2 lookup


def test_instance_in_another_region_not_found(setup: Setup, world: World) -> None:
    setup.backend.write_role(ROLE, inferring("eu-west-1", bound_ami_id=world.image_id))
    instance_id = world.instance_id
    setup.refused(
        world.keys,
        InvalidRequestError,
        f"failed to verify {instance_id} as a valid EC2 instance in region eu-west-1: "
        f'error fetching description for instance ID "{instance_id}": '
        f"InvalidInstanceID.NotFound: The instance ID '{instance_id}' does not exist",
    )


def test_iam_user_refused(moto: MotoServer, setup: Setup, world: World) -> None:
    user, keys = moto.create_user(unique("user-"))
    setup.backend.write_role(ROLE, inferring(bound_iam_principal_arn=user["Arn"]))
    setup.refused(
        keys,
        InvalidRequestError,
        f"failed to verify  as a valid EC2 instance in region {REGION}: the caller is "
        '"user", not an assumed role whose session name is an instance ID',
    )
    assert setup.lookups.described == []


# ---------------------------------------------------------------- attack 75 (ours)


def _attack_binds(world: World, case: str) -> dict[str, Any]:
    """Binds of a role that Vault admits any caller to whose session name is the running
    instance's ID."""
    return {
        "instance-id": {"bound_ec2_instance_id": world.instance_id},
        "ami": {"bound_ami_id": world.image_id},
        "profile": {"bound_iam_instance_profile_arn": world.profile["Arn"]},
        # Vault checks the role of the instance's profile, not the caller's role.
        "role-arn": {"bound_iam_role_arn": world.role["Arn"]},
        "principals": {"bound_iam_principal_arn": [world.role["Arn"], world.intruder["Arn"]]},
        "wildcard": {"bound_iam_principal_arn": f"arn:aws:iam::{ACCOUNT}:role/*"},
    }[case]


@pytest.mark.parametrize(
    "case", ["instance-id", "ami", "profile", "role-arn", "principals", "wildcard"]
)
def test_attack_75_other_role_with_instance_id_as_session_name(
    moto: MotoServer, setup: Setup, world: World, case: str
) -> None:
    """Any role the attacker can assume, with ``RoleSessionName`` = a running instance's ID,
    passes every one of Vault's instance binds; ours refuses it: the caller's role is not
    the role of the instance's profile."""
    binds = _attack_binds(world, case)
    setup.backend.write_role(ROLE, inferring(**binds))
    keys = moto.assume_role(world.intruder["Arn"], world.instance_id)
    setup.refused(
        keys,
        InvalidRequestError,
        f'error validating instance: the caller\'s role "{world.intruder["RoleName"]}" is '
        f'not the role of instance "{world.instance_id}"\'s instance profile',
    )
    assert setup.lookups.described == [world.instance_id]
    setup.login(world.keys)  # the instance's own role is admitted by the same role


def test_instance_without_profile_refused(moto: MotoServer, setup: Setup, world: World) -> None:
    setup.backend.write_role(ROLE, inferring(bound_subnet_id=world.subnet_id))
    keys = moto.assume_role(world.role["Arn"], world.bare)
    setup.refused(
        keys,
        InvalidRequestError,
        f'error validating instance: the caller\'s role "{world.role["RoleName"]}" is '
        f'not the role of instance "{world.bare}"\'s instance profile',
    )
    assert setup.lookups.profiles == []


# ------------------------------------------------------------------- cross-account


def test_cross_account_needs_config_sts(setup: Setup, world: World) -> None:
    setup.backend.write_role(ROLE, inferring(bound_account_id=OTHER))
    setup.backend.write_identity_config({"iam_metadata": INFERENCE_METADATA})
    no_client = (
        f"failed to verify {world.foreign} as a valid EC2 instance in region {REGION}: "
        f'unable to fetch client for account ID "{OTHER}" -- '
        f'default client is for account "{ACCOUNT}"'
    )
    setup.refused(world.foreign_keys, InvalidRequestError, no_client)
    setup.backend.write_sts_config(OTHER, {"sts_role": world.other.admin_role})
    auth = setup.login(world.foreign_keys)
    assert auth["metadata"]["account_id"] == OTHER
    assert auth["metadata"]["inferred_entity_id"] == world.foreign
    # The same role's account bind still refuses ACCOUNT's instance.
    setup.refused(
        world.keys,
        InvalidRequestError,
        f'error validating instance: account ID "{ACCOUNT}" does not belong to role "{ROLE}"',
    )
    setup.backend.delete_sts_config(OTHER)
    setup.refused(world.foreign_keys, InvalidRequestError, no_client)


def test_cross_account_caller_must_be_the_foreign_profile_role(
    moto: MotoServer, setup: Setup, world: World
) -> None:
    """A role of ACCOUNT assumed with the foreign instance's ID as session name: STS says
    ACCOUNT, so the instance is looked up in ACCOUNT, where it does not exist."""
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id))
    setup.backend.write_sts_config(OTHER, {"sts_role": world.other.admin_role})
    keys = moto.assume_role(world.role["Arn"], world.foreign)
    setup.refused(
        keys,
        InvalidRequestError,
        f"failed to verify {world.foreign} as a valid EC2 instance in region {REGION}: "
        f'error fetching description for instance ID "{world.foreign}": '
        f"InvalidInstanceID.NotFound: The instance ID '{world.foreign}' does not exist",
    )


# ------------------------------------------------------------------------- renewal


def test_renewal_while_running_then_stopped(moto: MotoServer, setup: Setup, world: World) -> None:
    instance_id = world.run_instance().instance_id
    keys = moto.assume_role(world.role["Arn"], instance_id)
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id, token_ttl=600))
    token = setup.login(keys)["client_token"]
    assert setup.backend.renew_token(token).ttl == 600
    assert setup.lookups.described == [instance_id, instance_id]
    world.stop(instance_id)
    setup.renewal_refused(token, instance_id, "instance is not in 'running' state")


@pytest.mark.parametrize(
    ("binds", "reason"),
    [
        (
            {"bound_ami_id": OTHER_AMI},
            lambda w: f'AMI ID "{w.image_id}" does not belong to role "{ROLE}"',
        ),
        (
            {"bound_iam_role_arn": _fleet_arn("role", "other/*")},
            lambda w: (
                f'IAM role ARN "{w.role["Arn"]}" does not satisfy the constraint role "{ROLE}"'
            ),
        ),
    ],
    ids=["ami", "role-arn"],
)
def test_renewal_rechecks_binds_of_the_rewritten_role(
    setup: Setup, world: World, binds: dict[str, str], reason: Callable[[World], str]
) -> None:
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id))
    token = setup.login(world.keys)["client_token"]
    setup.backend.renew_token(token)
    setup.backend.write_role(ROLE, {"bound_ami_id": [], **binds})
    setup.renewal_refused(token, world.instance_id, f"error validating instance: {reason(world)}")


def test_renewal_refused_once_the_profile_holds_another_role(
    moto: MotoServer, setup: Setup, world: World
) -> None:
    """Our rule is re-applied at renewal: the caller's role must still be the role of the
    instance's profile."""
    profile = instance_profile(moto.iam, world.role)
    instance_id = world.run_instance(subnet=False, profile_arn=profile["Arn"]).instance_id
    keys = moto.assume_role(world.role["Arn"], instance_id)
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id))
    token = setup.login(keys)["client_token"]
    setup.backend.renew_token(token)
    name = profile["InstanceProfileName"]
    moto.iam.remove_role_from_instance_profile(
        InstanceProfileName=name, RoleName=world.role["RoleName"]
    )
    moto.iam.add_role_to_instance_profile(
        InstanceProfileName=name, RoleName=moto.create_role(unique("next-"))["RoleName"]
    )
    reason = (
        f'error validating instance: the caller\'s role "{world.role["RoleName"]}" is not '
        f'the role of instance "{instance_id}"\'s instance profile'
    )
    setup.renewal_refused(token, instance_id, reason)


def test_renewal_of_a_token_issued_before_inference(
    moto: MotoServer, setup: Setup, world: World
) -> None:
    """A token issued before the role inferred an instance names none: it cannot be
    renewed once the role infers one (as in Vault), even with the instance's ID as its
    session name."""
    setup.backend.write_role(ROLE, {"bound_iam_principal_arn": world.intruder["Arn"]})
    keys = moto.assume_role(world.intruder["Arn"], world.instance_id)
    token = setup.login(keys)["client_token"]
    setup.backend.write_role(
        ROLE,
        {
            "bound_iam_principal_arn": [],
            "inferred_entity_type": "ec2_instance",
            "inferred_aws_region": REGION,
            "bound_ec2_instance_id": world.instance_id,
        },
    )
    setup.renewal_refused(token, "", 'invalid instance ID ""')
    assert setup.lookups.described == []


def test_renewal_when_ec2_fails_is_not_a_denial(setup: Setup, world: World) -> None:
    """AWS failing during a renewal's re-check is reported as such (502), not as 403."""
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id))
    token = setup.login(world.keys)["client_token"]
    setup.backend.write_client_config({"endpoint": "http://127.0.0.1:1", "max_retries": 0})
    with pytest.raises(BackendError) as info:
        setup.backend.renew_token(token)
    assert type(info.value) is UpstreamError
    assert info.value.status == 502
    assert info.value.message.startswith(
        f'failed to renew entry: failed to verify instance ID "{world.instance_id}": '
        f'error fetching description for instance ID "{world.instance_id}": '
    )


# -------------------------------------------------------------------- outbound cap


def test_describe_instances_holds_an_outbound_slot(moto: MotoServer, world: World) -> None:
    """With one outbound slot: a login waiting inside DescribeInstances holds it, so
    another login (its STS call) and a renewal (its DescribeInstances) are refused as
    busy; once it is done, both go through."""
    limits = RateLimits(
        per_source_rate=0, per_role_rate=0, max_concurrent_sts_calls=1, sts_slot_wait=0.05
    )
    setup = make_setup(moto, BackendSettings(rate_limits=limits))
    setup.backend.write_role(ROLE, inferring(bound_ami_id=world.image_id))
    token = setup.login(world.keys)["client_token"]
    setup.lookups.gate.clear()
    results: list[dict[str, Any]] = []
    waiting = threading.Thread(target=lambda: results.append(setup.login(world.keys)))
    waiting.start()
    try:
        assert setup.lookups.inside.acquire(timeout=30)  # past STS, inside DescribeInstances
        setup.refused(
            world.keys,
            RateLimitedError,
            "too many logins in progress; retry later",
            status=429,
        )
        with pytest.raises(BackendError) as info:
            setup.backend.renew_token(token)
        assert type(info.value) is RateLimitedError
        assert info.value.message == (
            f'failed to renew entry: failed to verify instance ID "{world.instance_id}": '
            "too many logins in progress; retry later"
        )
    finally:
        setup.lookups.gate.set()
        waiting.join(30)
    assert len(results) == 1
    assert setup.backend.renew_token(token).ttl > 0
    setup.login(world.keys)


# ---------------------------------------------------------------- hvac over HTTP


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[DevServer]:
    db = tmp_path_factory.mktemp("inference") / "s.db"
    dev = DevServer(f"sqlite:///{db}")
    try:
        dev.configure_for(moto, endpoint=moto.endpoint)
        yield dev
    finally:
        dev.stop()


@ASYNC_ONLY  # the dev server is a subprocess serving the async driver
def test_hvac_over_http(server: DevServer, moto: MotoServer, world: World) -> None:
    admin = server.client()
    admin.auth.aws.configure_identity_integration(iam_metadata=INFERENCE_METADATA)
    admin.auth.aws.create_role(
        ROLE,
        auth_type="iam",
        inferred_entity_type="ec2_instance",
        inferred_aws_region=REGION,
        bound_iam_role_arn=[world.role["Arn"]],
        bound_ami_id=[world.image_id],
        policies=["web"],
    )
    read = admin.auth.aws.read_role(ROLE)
    assert read["inferred_entity_type"] == "ec2_instance"
    assert read["inferred_aws_region"] == REGION
    assert read["bound_iam_role_arn"] == [world.role["Arn"]]

    client = server.client(token=None)
    client.auth.aws.iam_login(
        world.keys.access_key, world.keys.secret_key, world.keys.session_token, role=ROLE
    )
    me = client.auth.token.lookup_self()["data"]
    assert me["policies"] == ["default", "web"]
    assert me["meta"]["inferred_entity_id"] == world.instance_id
    assert me["meta"]["inferred_entity_type"] == "ec2_instance"
    assert me["meta"]["inferred_hostname"] == world.running.private_dns_name
    assert me["meta"]["inferred_aws_region"] == REGION
    assert client.auth.token.renew_self()["auth"]["client_token"] == client.token

    intruder = moto.assume_role(world.intruder["Arn"], world.instance_id)
    with pytest.raises(hvac.exceptions.InvalidRequest) as info:
        server.client(token=None).auth.aws.iam_login(
            intruder.access_key, intruder.secret_key, intruder.session_token, role=ROLE
        )
    assert info.value.errors == [
        f'error validating instance: the caller\'s role "{world.intruder["RoleName"]}" is '
        f'not the role of instance "{world.instance_id}"\'s instance profile'
    ]
    admin.auth.aws.create_role(ROLE, bound_ami_id=[OTHER_AMI])
    with pytest.raises(hvac.exceptions.InvalidRequest) as info:
        server.client(token=None).auth.aws.iam_login(
            world.keys.access_key, world.keys.secret_key, world.keys.session_token, role=ROLE
        )
    assert info.value.errors == [
        f'error validating instance: AMI ID "{world.image_id}" does not belong to role "{ROLE}"'
    ]
