"""AWS partitions and regions, read from botocore's own data (never a hand-written list)."""

from __future__ import annotations

import functools
import re

import attrs
from botocore.loaders import create_loader


@attrs.frozen
class Partition:
    """One partition of ``botocore/data/partitions.json``."""

    id: str
    dns_suffix: str
    dual_stack_dns_suffix: str
    implicit_global_region: str
    region_regex: str
    regions: frozenset[str]

    def has_region(self, region: str) -> bool:
        """True if ``region`` is listed for, or has the shape of, this partition's regions."""
        if region in self.regions:
            return True
        return re.fullmatch(self.region_regex, region, re.ASCII) is not None


@functools.cache
def partitions() -> tuple[Partition, ...]:
    """All partitions botocore knows, in botocore's order."""
    data = create_loader().load_data("partitions")
    result = []
    for entry in data["partitions"]:
        outputs = entry["outputs"]
        result.append(
            Partition(
                id=entry["id"],
                dns_suffix=outputs["dnsSuffix"],
                dual_stack_dns_suffix=outputs["dualStackDnsSuffix"],
                implicit_global_region=outputs["implicitGlobalRegion"],
                region_regex=entry["regionRegex"],
                regions=frozenset(entry["regions"]),
            )
        )
    return tuple(result)


def partition_by_id(partition_id: str) -> Partition | None:
    """The partition called ``partition_id`` (``aws``, ``aws-cn``, ...), or None."""
    for partition in partitions():
        if partition.id == partition_id:
            return partition
    return None


_REGION_SHAPE = re.compile(r"[a-z]{2,5}(-[a-z]+)+-[0-9]{1,2}", re.ASCII)


def partition_for_region(region: str) -> Partition | None:
    """The partition a region belongs to: listed regions first, then region regexes.

    The region must be ASCII lower-case ``<geo>-<area>-<n>``; anything else gives None.
    """
    if _REGION_SHAPE.fullmatch(region) is None:
        return None
    for partition in partitions():
        if region in partition.regions:
            return partition
    for partition in partitions():
        if re.fullmatch(partition.region_regex, region, re.ASCII):
            return partition
    return None
