"""The table of genuine STS hosts, computed from botocore's STS endpoint rules.

For every partition botocore knows and every region it lists (pseudo-regions such as
``aws-global`` skipped) we resolve the regional, FIPS, dual-stack and FIPS+dual-stack
endpoints with botocore's own rules engine, plus each partition's global endpoint.
No host is written by hand. The table is built once, on first use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs
from botocore.endpoint_provider import EndpointProvider
from botocore.loaders import create_loader

from aws_iam_backend.login.partitions import Partition, partitions


@attrs.frozen
class StsHost:
    """One genuine STS host name."""

    host: str
    partition: str
    region: str  # for a global host: the partition's implicit global region
    is_global: bool = False
    fips: bool = False
    dualstack: bool = False


_HOST_CHARS = re.compile(r"[a-z0-9.-]+", re.ASCII)


def _listed_regions(partition: Partition) -> list[str]:
    """Real regions of a partition: pseudo-regions (``aws-global``, ...) left out."""
    return sorted(r for r in partition.regions if not r.endswith("-global"))


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


@attrs.frozen
class _Table:
    hosts: Mapping[str, StsHost]
    regional: Mapping[str, str]


@functools.cache
def _table() -> _Table:
    loader = create_loader()
    provider = EndpointProvider(
        loader.load_service_model("sts", "endpoint-rule-set-1"),
        loader.load_data("partitions"),
    )

    def resolve(region: str, fips: bool, dualstack: bool, use_global: bool) -> str:
        endpoint = provider.resolve_endpoint(
            Region=region, UseFIPS=fips, UseDualStack=dualstack, UseGlobalEndpoint=use_global
        )
        return _host_of(endpoint.url)

    hosts: dict[str, StsHost] = {}
    regional: dict[str, str] = {}
    for partition in partitions():
        for region in _listed_regions(partition):
            for fips in (False, True):
                for dualstack in (False, True):
                    host = resolve(region, fips, dualstack, False)
                    if not _HOST_CHARS.fullmatch(host):
                        continue
                    if not fips and not dualstack:
                        regional[region] = host
                    known = hosts.get(host)
                    if known is None:
                        hosts[host] = StsHost(host, partition.id, region, False, fips, dualstack)
                    else:
                        hosts[host] = attrs.evolve(
                            known, fips=known.fips or fips, dualstack=known.dualstack or dualstack
                        )
        global_region = partition.implicit_global_region
        host = resolve(global_region, False, False, True)
        if _HOST_CHARS.fullmatch(host) and host not in hosts:
            hosts[host] = StsHost(host, partition.id, global_region, is_global=True)
    return _Table(hosts=hosts, regional=regional)


def all_sts_hosts() -> tuple[StsHost, ...]:
    """Every host in the table."""
    return tuple(_table().hosts.values())


def lookup_sts_host(host: str) -> StsHost | None:
    """The table entry for ``host`` (exact, case-sensitive match), or None."""
    return _table().hosts.get(host)


def regional_sts_host(region: str) -> str | None:
    """The plain regional STS host of a listed region (partition-aware), or None."""
    return _table().regional.get(region)


def is_listed_region(region: str) -> bool:
    """True if botocore lists ``region`` as a real region of some partition."""
    return region in _table().regional


def partition_of_region(region: str) -> str | None:
    """The partition id of a listed region, or None."""
    host = regional_sts_host(region)
    if host is None:
        return None
    entry = lookup_sts_host(host)
    return entry.partition if entry is not None else None


def partition_of_host(host: str) -> str | None:
    """The partition a (configured) endpoint host belongs to, by DNS suffix; else None.

    STS table hosts give their own partition. For other hosts (VPC endpoints, proxies
    under an AWS domain) the longest matching DNS suffix wins; when several partitions
    share it (``aws`` and ``aws-us-gov``), a listed region among the host's labels
    decides. Loopback, IP addresses and foreign domains give None.
    """
    if not _HOST_CHARS.fullmatch(host):
        return None
    entry = lookup_sts_host(host)
    if entry is not None:
        return entry.partition
    best_len = 0
    candidates: list[str] = []
    for partition in partitions():
        for suffix in (partition.dns_suffix, partition.dual_stack_dns_suffix):
            if not host.endswith("." + suffix):
                continue
            if len(suffix) > best_len:
                best_len, candidates = len(suffix), [partition.id]
            elif len(suffix) == best_len and partition.id not in candidates:
                candidates.append(partition.id)
    if not candidates:
        return None
    if len(candidates) > 1:
        for label in host.split("."):
            owner = partition_of_region(label)
            if owner in candidates:
                return owner
    return candidates[0]
