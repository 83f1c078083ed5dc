"""Free loopback ports for the servers tests start, chosen outside the kernel's ephemeral range.

A port found free is bound by its server only later (a hub: seconds later, after its imports
and database). A port from the ephemeral range, where `bind(("127.0.0.1", 0))` picks, can be
taken in between as the local end of any outgoing connection (a test's HTTP client, a
PostgreSQL or Slurm connection), and the server then fails with "Address already in use": a
CI run lost a hub that way. Ports outside the range are taken only by a program that asks for
that very port.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10000  # below: well-known and registered services of this machine
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections and to bind(0)."""
    try:
        low, high = (int(p) for p in RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_ports(*offsets: int) -> int:
    """A port P with P+o free on 127.0.0.1 for each offset o (default: P alone), all outside
    the ephemeral range."""
    offsets = offsets or (0,)
    low, high = ephemeral_range()
    span = max(offsets)
    ranges = [(LOWEST, low - 1 - span), (high + 1, 65535 - span)]
    ranges = [(a, b) for a, b in ranges if b - a >= 1000]
    if not ranges:
        raise RuntimeError(f"no ports outside the ephemeral range {low}-{high} ({RANGE_FILE})")
    for _ in range(200):
        a, b = random.choice(ranges)
        base = random.randint(a, b)
        try:
            for o in offsets:
                with socket.socket() as s:  # no SO_REUSEADDR: a port in TIME_WAIT counts as taken
                    s.bind(("127.0.0.1", base + o))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports on 127.0.0.1 outside the ephemeral range")


def free_port() -> int:
    """One free port on 127.0.0.1, outside the ephemeral range."""
    return free_ports(0)
