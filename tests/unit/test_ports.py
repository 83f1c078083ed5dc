"""The test harness's ports: free, and never where outgoing connections take theirs."""

from __future__ import annotations

import socket

from tests.hub_process import free_port_base
from tests.ports import ephemeral_range, free_port


def test_ports_for_servers_are_free_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    for _ in range(50):
        base = free_port_base()
        for port in (base, base + 1, base + 81, free_port()):
            assert not low <= port <= high, port
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))


def test_an_outgoing_connection_takes_its_local_port_from_the_ephemeral_range() -> None:
    """Why the above matters: the range the kernel gives clients is the one we avoid."""
    low, high = ephemeral_range()
    with socket.socket() as server:
        server.bind(("127.0.0.1", free_port()))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            assert low <= client.getsockname()[1] <= high
