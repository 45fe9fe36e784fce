"""AWS partitions and regions, read from botocore's own data (never a hand-written list)."""

from __future__ import annotations

import functools

import attrs
from botocore.loaders import create_loader


@attrs.frozen
class Partition:
    """One partition of ``botocore/data/partitions.json``."""

    id: str
    dns_suffix: str
    dual_stack_dns_suffix: str
    implicit_global_region: str
    regions: frozenset[str]


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
