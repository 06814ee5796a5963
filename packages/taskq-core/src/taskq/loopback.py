"""Whether a host is reachable only from this machine: what safe defaults of servers check."""

from __future__ import annotations

import ipaddress

#: Host names that resolve to loopback on any usual system.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name, or an IPv4 or IPv6 address, brackets allowed) is loopback.

    Anything else, ``0.0.0.0``, ``*``, an interface or a host name included, counts as
    reachable from other hosts.
    """
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
