"""stationwatch.broker.free_port: a port for a server, outside the range the system gives
outgoing connections as their local ends."""

from __future__ import annotations

import socket

import port_for

from stationwatch import broker


def test_a_free_port_is_outside_the_ephemeral_range_and_can_be_listened_on() -> None:
    ephemeral = port_for.ephemeral.port_ranges()
    for _ in range(20):
        port = broker.free_port()
        assert not any(low <= port <= high for low, high in ephemeral)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_another_host_gets_a_port_the_system_picks() -> None:
    port = broker.free_port("0.0.0.0")  # noqa: S104 - a test of binding to all addresses
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", port))  # noqa: S104
