from __future__ import annotations

import time

import pytest

from aws_iam_backend.login import endpoints
from aws_iam_backend.login.endpoints import (
    all_sts_hosts,
    lookup_sts_host,
    partition_of_host,
    regional_sts_host,
)


def test_global_host() -> None:
    entry = lookup_sts_host("sts.amazonaws.com")
    assert entry is not None
    assert entry.is_global
    assert entry.partition == "aws"
    assert entry.region == "us-east-1"


@pytest.mark.parametrize(
    ("host", "partition", "region", "fips", "dualstack"),
    [
        ("sts.us-east-1.amazonaws.com", "aws", "us-east-1", False, False),
        ("sts-fips.us-east-1.amazonaws.com", "aws", "us-east-1", True, False),
        ("sts.us-east-1.api.aws", "aws", "us-east-1", False, True),
        ("sts-fips.us-east-1.api.aws", "aws", "us-east-1", True, True),
        ("sts.eu-west-1.amazonaws.com", "aws", "eu-west-1", False, False),
        ("sts.cn-north-1.amazonaws.com.cn", "aws-cn", "cn-north-1", False, False),
        ("sts.us-gov-west-1.amazonaws.com", "aws-us-gov", "us-gov-west-1", True, False),
    ],
)
def test_regional_hosts(
    host: str, partition: str, region: str, fips: bool, dualstack: bool
) -> None:
    entry = lookup_sts_host(host)
    assert entry is not None
    assert (entry.partition, entry.region, entry.fips, entry.dualstack, entry.is_global) == (
        partition,
        region,
        fips,
        dualstack,
        False,
    )


@pytest.mark.parametrize(
    "host",
    [
        "STS.AMAZONAWS.COM",
        "sts.amazonaws.com.",
        "sts.amazonaws.com.evil.example",
        "sts.s3.amazonaws.com",
        "sts.foo.amazonaws.com",
        "sts.aws-global.amazonaws.com",
        "sts-fips.aws-global.amazonaws.com",
        "sts-fips.us-gov-west-1.amazonaws.com",
        "evil.example",
        "",
        "sts.us-east-1.amazonaws.com\n",
    ],
)
def test_unknown_hosts(host: str) -> None:
    assert lookup_sts_host(host) is None


def test_no_pseudo_regions_and_all_lower_ascii() -> None:
    for entry in all_sts_hosts():
        assert "global" not in entry.region
        assert entry.host.isascii()
        assert entry.host == entry.host.lower()


def test_regional_sts_host() -> None:
    assert regional_sts_host("us-gov-west-1") == "sts.us-gov-west-1.amazonaws.com"
    assert regional_sts_host("cn-north-1") == "sts.cn-north-1.amazonaws.com.cn"
    assert regional_sts_host("us-east-1") == "sts.us-east-1.amazonaws.com"
    assert regional_sts_host("aws-global") is None
    assert regional_sts_host("attacker.example?") is None
    assert regional_sts_host("us-east-1\n") is None


def test_partition_of_host() -> None:
    assert partition_of_host("vpce-1a2b.sts.us-east-1.vpce.amazonaws.com") == "aws"
    assert partition_of_host("vpce-1a2b.sts.us-gov-west-1.vpce.amazonaws.com") == "aws-us-gov"
    assert partition_of_host("sts.us-gov-east-1.amazonaws.com") == "aws-us-gov"
    assert partition_of_host("vpce-1.sts.cn-north-1.vpce.amazonaws.com.cn") == "aws-cn"
    assert partition_of_host("127.0.0.1") is None
    assert partition_of_host("localhost") is None
    assert partition_of_host("amazonaws.com.evil.example") is None


def test_table_is_cached_and_fast() -> None:
    endpoints._table.cache_clear()
    start = time.perf_counter()
    lookup_sts_host("sts.amazonaws.com")
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    for _ in range(10_000):
        lookup_sts_host("sts.us-west-2.amazonaws.com")
    assert time.perf_counter() - start < 0.1
