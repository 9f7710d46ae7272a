"""free_port: ports for the servers a launcher, the bench or a test starts on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

from services.common.embedded import LOOPBACK, free_port


def ephemeral_low() -> int:
    path = Path("/proc/sys/net/ipv4/ip_local_port_range")
    return int(path.read_text().split()[0]) if path.exists() else 32768


def test_ports_are_never_handed_out_twice_and_stay_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < ephemeral_low() for port in ports)


def test_a_free_preferred_port_is_kept_and_a_taken_one_is_not() -> None:
    with socket.socket() as listening:
        listening.bind((LOOPBACK, 0))
        listening.listen()
        taken = listening.getsockname()[1]
        other = free_port(preferred=taken)
        assert other != taken
    preferred = free_port()
    assert free_port(preferred=preferred) == preferred
