"""A real Redis server for the tests: Debian's redis-server on 127.0.0.1.

``redis_server`` starts one server per test session on a free port, with no
persistence (``--save "" --appendonly no``) and its working folder in a temporary
directory, and stops it by its process id at teardown. ``redis_prefix`` returns a
key prefix no other test uses, so tests share the server without seeing each other's
keys. ``silent_port`` is a port on 127.0.0.1 that accepts connections and never
replies, for timeout tests. When redis-server is missing the fixtures skip with the
install command.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

REDIS_START_TIMEOUT_S = 10.0
REDIS_STOP_TIMEOUT_S = 5.0
_prefixes = itertools.count()


@dataclass(frozen=True)
class RedisEndpoint:
    """A running redis-server started by the test session."""

    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_ping(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {process.returncode} at startup.")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer PING on port {port} within {REDIS_START_TIMEOUT_S} s.")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisEndpoint]:
    """Start redis-server on 127.0.0.1 for the session; stop it by pid at teardown."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: apt-get install -y redis-server")
    workdir = tempfile.mkdtemp(prefix="tiering-redis-")
    port = free_port()
    process = subprocess.Popen(
        [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", workdir, "--protected-mode", "yes", "--loglevel", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_ping(port, process)
        yield RedisEndpoint(port=port, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=REDIS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=REDIS_STOP_TIMEOUT_S)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_prefix() -> str:
    """Return a Redis key prefix that no other test in this session uses."""
    return f"test-{next(_prefixes)}-{time.monotonic_ns()}"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Yield a port on 127.0.0.1 that accepts connections but never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _address = listener.accept()
                accepted.append(conn)

    thread = threading.Thread(target=accept, name="silent-port", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()
