"""BotocoreIamLookups against moto's server (signature checking on), and UniqueIdArnCache."""

from __future__ import annotations

import json
import uuid

import pytest

from aws_iam_backend import errors
from aws_iam_backend.io.iam import BotocoreIamLookups, UniqueIdArnCache
from aws_iam_backend.io.protocols import AwsAccess
from aws_iam_backend.login.arn import parse_iam_arn
from tests.support.moto_server import ADMIN_POLICY, MotoServer

ACCOUNT = "123456789012"


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def access(moto: MotoServer) -> AwsAccess:
    return AwsAccess(
        access_key=moto.admin.access_key,
        secret_key=moto.admin.secret_key,
        iam_endpoint=moto.endpoint,
        sts_endpoint=moto.endpoint,
    )


@pytest.fixture
def lookups() -> BotocoreIamLookups:
    return BotocoreIamLookups()


def test_user_with_path(moto: MotoServer, access: AwsAccess, lookups: BotocoreIamLookups) -> None:
    user, _ = moto.create_user(name("alice"), path="/team/dev/")
    entity = parse_iam_arn(f"arn:aws:iam::{ACCOUNT}:user/{user['UserName']}")
    assert lookups.unique_id(entity, access) == user["UserId"]
    assert lookups.full_arn(entity, access) == user["Arn"]
    assert "/team/dev/" in user["Arn"]


def test_role_and_assumed_role(
    moto: MotoServer, access: AwsAccess, lookups: BotocoreIamLookups
) -> None:
    role = moto.create_role(name("app"), path="/svc/")
    entity = parse_iam_arn(f"arn:aws:iam::{ACCOUNT}:role/{role['RoleName']}")
    assert lookups.unique_id(entity, access) == role["RoleId"]
    assumed = parse_iam_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/{role['RoleName']}/s1")
    assert lookups.full_arn(assumed, access) == role["Arn"]
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.unique_id(assumed, access)
    assert info.value.message == 'unrecognized error type "assumed-role"'


def test_instance_profile(moto: MotoServer, access: AwsAccess, lookups: BotocoreIamLookups) -> None:
    profile = moto.iam.create_instance_profile(InstanceProfileName=name("prof"))["InstanceProfile"]
    entity = parse_iam_arn(
        f"arn:aws:iam::{ACCOUNT}:instance-profile/{profile['InstanceProfileName']}"
    )
    assert lookups.unique_id(entity, access) == profile["InstanceProfileId"]
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.full_arn(entity, access)
    assert info.value.message == "unrecognized entity type: instance-profile"


def test_cross_account_refused_without_sts_role(
    access: AwsAccess, lookups: BotocoreIamLookups
) -> None:
    entity = parse_iam_arn("arn:aws:iam::999999999999:role/app")
    for lookup in (lookups.full_arn, lookups.unique_id):
        with pytest.raises(errors.InvalidRequestError) as info:
            lookup(entity, access)
        assert info.value.message == (
            'unable to fetch client for account ID "999999999999" -- '
            f'default client is for account "{ACCOUNT}"'
        )


def test_assume_role_path(moto: MotoServer, access: AwsAccess) -> None:
    lookup_role = moto.create_role(name("lookup"))
    moto.iam.put_role_policy(
        RoleName=lookup_role["RoleName"], PolicyName="all", PolicyDocument=ADMIN_POLICY
    )
    user, _ = moto.create_user(name("bob"), path="/p/")
    via_role = AwsAccess(
        access_key=access.access_key,
        secret_key=access.secret_key,
        iam_endpoint=moto.endpoint,
        sts_endpoint=moto.endpoint,
        sts_role=lookup_role["Arn"],
        external_id="ext-1",
    )
    lookups = BotocoreIamLookups()
    entity = parse_iam_arn(f"arn:aws:iam::{ACCOUNT}:user/{user['UserName']}")
    assert lookups.full_arn(entity, via_role) == user["Arn"]
    assert lookups.unique_id(entity, via_role) == user["UserId"]


def test_resolved_arn_must_be_in_callers_account(moto: MotoServer, access: AwsAccess) -> None:
    """CVE-2025-11621 class: an sts_role answering for another account is not trusted."""
    lookup_role = moto.create_role(name("lookup"))
    moto.iam.put_role_policy(
        RoleName=lookup_role["RoleName"], PolicyName="all", PolicyDocument=ADMIN_POLICY
    )
    role = moto.create_role(name("app"))
    wrong = AwsAccess(
        access_key=access.access_key,
        secret_key=access.secret_key,
        iam_endpoint=moto.endpoint,
        sts_endpoint=moto.endpoint,
        sts_role=lookup_role["Arn"],
    )
    entity = parse_iam_arn(f"arn:aws:iam::999999999999:role/{role['RoleName']}")
    with pytest.raises(errors.UpstreamError) as info:
        BotocoreIamLookups().full_arn(entity, wrong)
    assert "999999999999" in info.value.message
    assert ACCOUNT in info.value.message


def test_client_error_mapped(access: AwsAccess, lookups: BotocoreIamLookups) -> None:
    entity = parse_iam_arn(f"arn:aws:iam::{ACCOUNT}:user/{name('ghost')}")
    with pytest.raises(errors.UpstreamError) as info:
        lookups.full_arn(entity, access)
    assert info.value.message.startswith("NoSuchEntity: ")
    assert access.secret_key not in info.value.message


def test_bad_credentials_mapped(moto: MotoServer) -> None:
    bad = AwsAccess(
        access_key=moto.admin.access_key,
        secret_key="not-the-secret",
        iam_endpoint=moto.endpoint,
        sts_endpoint=moto.endpoint,
        max_retries=0,
    )
    entity = parse_iam_arn(f"arn:aws:iam::{ACCOUNT}:user/anyone")
    with pytest.raises(errors.UpstreamError) as info:
        BotocoreIamLookups().full_arn(entity, bad)
    assert "not-the-secret" not in info.value.message
    assert json.dumps(info.value.message)  # one plain line


def test_unknown_partition(access: AwsAccess, lookups: BotocoreIamLookups) -> None:
    entity = parse_iam_arn("arn:aws-mars:iam::123456789012:user/x")
    with pytest.raises(errors.InvalidRequestError) as info:
        lookups.full_arn(entity, access)
    assert info.value.message == 'unable to resolve partition "aws-mars" to a region'


def test_unique_id_arn_cache_keys_and_bounds() -> None:
    now = [0.0]
    cache = UniqueIdArnCache(ttl=10, maxsize=2, timer=lambda: now[0])
    cache.put(("aws", "111111111111", "AROA1"), "arn:aws:iam::111111111111:role/app")
    assert cache.get(("aws", "111111111111", "AROA1")) == "arn:aws:iam::111111111111:role/app"
    assert cache.get(("aws", "999999999999", "AROA1")) is None
    assert cache.get(("aws-cn", "111111111111", "AROA1")) is None
    cache.put(("aws", "1", "a"), "x")
    cache.put(("aws", "1", "b"), "y")
    assert cache.get(("aws", "111111111111", "AROA1")) is None  # evicted: size bound
    now[0] = 11
    assert cache.get(("aws", "1", "b")) is None  # expired


def test_upstream_error_texts_redact_urls() -> None:
    """botocore quotes endpoint URLs in its errors; none reaches a message with userinfo
    or a query (security review finding 4)."""
    from aws_iam_backend.io.aws_clients import safe_message as _safe

    text = _safe(
        'Could not connect to the endpoint URL: "https://AKIAX:s3cr3t@iam.example.com/?q=z"'
    )
    for secret in ("s3cr3t", "AKIAX", "q=z"):
        assert secret not in text
    assert "iam.example.com" in text
