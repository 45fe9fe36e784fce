"""The client's IP address: the socket peer, or ``X-Forwarded-For`` behind trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aws_iam_backend.errors import InvalidRequestError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(proxies: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or CIDRs as networks; :class:`ValueError` names the first bad entry."""
    networks = []
    for entry in proxies:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"invalid trusted proxy address: {entry!r}") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str | None:
    """The address to check ``token_bound_cidrs`` against.

    ``X-Forwarded-For`` counts only when ``peer`` is a trusted proxy; then the
    right-most entry that is not itself a trusted proxy is the client (the left-most
    entry when every hop is trusted). A malformed entry in a header we would trust is a 400.
    """
    peer_address = _address(peer) if peer else None
    if peer_address is None or not forwarded_for or not _trusted(peer_address, trusted):
        return str(peer_address) if peer_address is not None else peer
    client = peer_address
    for hop in reversed([hop for hop in forwarded_for.split(",") if hop.strip()]):
        address = _address(hop)
        if address is None:
            raise InvalidRequestError("malformed X-Forwarded-For header")
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)
