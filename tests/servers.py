"""Object store servers that the test suite starts itself, on 127.0.0.1 only.

* ``moto_server``: moto's ``ThreadedMotoServer`` (S3 with conditional writes), in
  this process, on a free port. ``moto_control`` can stop and restart it.
* ``swift_server``: OpenStack Swift from Debian's packages (account, container,
  object and proxy servers) with its S3 layer (s3api + tempauth), a one-replica
  ring and a storage folder in a temporary directory. Swift's s3api responds to
  conditional PUTs with 501 Not Implemented and requires Content-MD5 on
  DeleteObjects. Startup is bounded by ``SWIFT_START_TIMEOUT_S``; the fixture
  stops every process it started. When the Swift packages are missing the
  fixture skips with the install command.

Each fixture yields an :class:`S3Endpoint` with credentials that only these
local servers accept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tiering.s3store import S3Config

SWIFT_START_TIMEOUT_S = 30.0
SWIFT_BINARIES = (
    "memcached",
    "swift-ring-builder",
    "swift-account-server",
    "swift-container-server",
    "swift-object-server",
    "swift-proxy-server",
)
PROXY_PIPELINE = (
    "catch_errors", "gatekeeper", "healthcheck", "proxy-logging", "cache", "listing_formats",
    "s3api", "tempauth", "copy", "slo", "dlo", "proxy-logging", "proxy-server",
)
SWIFT_INSTALL = (
    "apt-get install -y swift swift-proxy swift-object swift-container swift-account memcached"
)


@dataclass(frozen=True)
class S3Endpoint:
    """A local S3-compatible server and credentials it accepts."""

    name: str
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    conditional_writes: bool

    def client(self) -> object:
        """Return a plain boto3 S3 client for setting up buckets in tests."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def new_bucket(self) -> str:
        """Create a bucket with a unique name and return the name."""
        bucket = f"tiering-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        return bucket

    def config(self, bucket: str, **settings: object) -> S3Config:
        """Return an S3Config for ``bucket`` on this server with short timeouts."""
        defaults: dict[str, object] = {
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "connect_timeout_s": 2.0,
            "read_timeout_s": 10.0,
            "max_attempts": 2,
            "single_writer": not self.conditional_writes,
        }
        defaults.update(settings)
        return S3Config(bucket=bucket, **defaults)  # type: ignore[arg-type]


def swift_python() -> str:
    """Return the interpreter Debian's Swift scripts run with (from their shebang)."""
    script = shutil.which("swift-ring-builder")
    if script is not None:
        first_line = Path(script).read_text(errors="replace").splitlines()[0]
        if first_line.startswith("#!"):
            return first_line[2:].strip().split()[0]
    return "/usr/bin/python3"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# moto ---------------------------------------------------------------------------


class MotoControl:
    """A moto S3 server on 127.0.0.1 that tests can stop and start again on one port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._factory = ThreadedMotoServer
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False

    @property
    def endpoint(self) -> S3Endpoint:
        return S3Endpoint(
            name="moto",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            access_key_id="testing",
            secret_access_key="testing",
            conditional_writes=True,
        )

    def start(self) -> None:
        if not self.running:
            self._server = self._factory(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            self.running = True

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False


# Test modules import these fixtures, and pytest then makes one session fixture per
# module; the servers themselves are started once per process and shared.
_shared: dict[str, object] = {}


@pytest.fixture(scope="session")
def moto_control() -> Iterator[MotoControl]:
    """A moto S3 server for the whole session; moto keeps its state in this process."""
    control = _shared.get("moto")
    if not isinstance(control, MotoControl):
        control = _shared["moto"] = MotoControl()
    control.start()
    try:
        yield control
    finally:
        control.stop()


@pytest.fixture
def moto_server(moto_control: MotoControl) -> S3Endpoint:
    """The session's moto server, started again if a previous test stopped it."""
    moto_control.start()
    return moto_control.endpoint


# OpenStack Swift ----------------------------------------------------------------


class SwiftCluster:
    """A one-node, one-replica Swift cluster with the S3 layer, in a temporary folder."""

    def __init__(self, root: Path):
        self.root = root
        self.ports = {
            name: free_port() for name in ("proxy", "account", "container", "object", "memcached")
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        # Swift logs to syslog; a datagram socket in the folder collects those lines.
        self.log_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.log_socket.bind(str(root / "log.sock"))
        self.log_socket.setblocking(False)

    @property
    def endpoint(self) -> S3Endpoint:
        return S3Endpoint(
            name="swift",
            endpoint_url=f"http://127.0.0.1:{self.ports['proxy']}",
            access_key_id="test:tester",
            secret_access_key="testing",
            conditional_writes=False,
        )

    def write_config(self) -> None:
        devices = self.root / "devices"
        (devices / "d1").mkdir(parents=True)
        (self.root / "run").mkdir()
        common = textwrap.dedent(
            f"""\
            [DEFAULT]
            bind_ip = 127.0.0.1
            devices = {devices}
            mount_check = false
            swift_dir = {self.root}
            workers = 0
            log_level = WARNING
            log_facility = LOG_LOCAL0
            log_address = {self.root / "log.sock"}
            """
        )
        (self.root / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_suffix = tiering-test\n"
            "swift_hash_path_prefix = tiering-test\n\n"
            "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
        )
        for server, app in (("account", "account"), ("container", "container"), ("object", "object")):
            (self.root / f"{server}-server.conf").write_text(
                common
                + f"bind_port = {self.ports[server]}\n\n"
                + f"[pipeline:main]\npipeline = {app}-server\n\n"
                + f"[app:{app}-server]\nuse = egg:swift#{app}\n\n"
                + f"[{app}-replicator]\n\n[{app}-auditor]\n\n[{app}-updater]\n"
            )
        (self.root / "proxy-server.conf").write_text(
            common
            + f"bind_port = {self.ports['proxy']}\n\n"
            + textwrap.dedent(
                """\
                [pipeline:main]
                pipeline = {pipeline}

                [app:proxy-server]
                use = egg:swift#proxy
                account_autocreate = true

                [filter:cache]
                use = egg:swift#memcache
                memcache_servers = 127.0.0.1:{memcached_port}

                [filter:catch_errors]
                use = egg:swift#catch_errors

                [filter:gatekeeper]
                use = egg:swift#gatekeeper

                [filter:healthcheck]
                use = egg:swift#healthcheck

                [filter:proxy-logging]
                use = egg:swift#proxy_logging

                [filter:listing_formats]
                use = egg:swift#listing_formats

                [filter:s3api]
                use = egg:swift#s3api
                location = us-east-1
                s3_acl = false
                max_multi_delete_objects = 1000

                [filter:tempauth]
                use = egg:swift#tempauth
                user_test_tester = testing .admin

                [filter:copy]
                use = egg:swift#copy

                [filter:slo]
                use = egg:swift#slo

                [filter:dlo]
                use = egg:swift#dlo
                """
            ).format(memcached_port=self.ports["memcached"], pipeline=" ".join(PROXY_PIPELINE))
        )

    def build_rings(self) -> None:
        # One interpreter builds all three rings; nine swift-ring-builder calls take
        # several seconds each on a loaded machine.
        rings = [(server, self.ports[server]) for server in ("account", "container", "object")]
        script = textwrap.dedent(
            """\
            import json, sys
            from swift.common.ring import RingBuilder
            for server, port in json.loads(sys.argv[1]):
                builder = RingBuilder(6, 1, 1)
                builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
                                 "port": port, "device": "d1", "weight": 100})
                builder.rebalance()
                builder.save(f"{sys.argv[2]}/{server}.builder")
                builder.get_ring().save(f"{sys.argv[2]}/{server}.ring.gz")
            """
        )
        subprocess.run(
            [swift_python(), "-c", script, json.dumps(rings), str(self.root)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        environment = dict(os.environ, SWIFT_CONF_FILE=str(self.root / "swift.conf"))
        log = (self.root / "servers.log").open("ab")
        # tempauth keeps tokens in memcached, so the S3 layer cannot work without it.
        self.processes.append(
            subprocess.Popen(
                ["memcached", "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0",
                 "-m", "16", "-u", "root"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        for server in ("account", "container", "object", "proxy"):
            self.processes.append(
                subprocess.Popen(
                    [f"swift-{server}-server", str(self.root / f"{server}-server.conf")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    start_new_session=True,
                )
            )
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + SWIFT_START_TIMEOUT_S
        url = f"http://127.0.0.1:{self.ports['proxy']}/healthcheck"
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"Swift server {process.args} exited with {process.returncode}:\n"
                        + self.log_tail()
                    )
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200 and self._all_listening():
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"Swift did not answer on {url} within {SWIFT_START_TIMEOUT_S} s:\n" + self.log_tail()
        )

    def _all_listening(self) -> bool:
        for port in self.ports.values():  # memcached included
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        return True

    def log_tail(self) -> str:
        lines = []
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                lines.append(self.log_socket.recv(65536).decode(errors="replace"))
        path = self.root / "servers.log"
        output = path.read_text(errors="replace") if path.exists() else ""
        return (output + "\n".join(lines))[-4000:]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()
        self.log_socket.close()


@pytest.fixture(scope="session")
def swift_server() -> Iterator[S3Endpoint]:
    """A Swift cluster with the S3 layer for the whole session (skips if not installed)."""
    missing = [binary for binary in SWIFT_BINARIES if shutil.which(binary) is None]
    if missing:
        pytest.skip(f"OpenStack Swift is not installed ({', '.join(missing)} missing); "
                    f"run: {SWIFT_INSTALL}")
    if "swift_error" in _shared:
        pytest.fail(f"Swift did not start earlier in this session: {_shared['swift_error']}")
    cluster = _shared.get("swift")
    if isinstance(cluster, SwiftCluster):
        yield cluster.endpoint
        return
    root = Path(tempfile.mkdtemp(prefix="tiering-swift-"))
    cluster = SwiftCluster(root)
    try:
        try:
            cluster.write_config()
            cluster.build_rings()
            cluster.start()
        except Exception as exc:
            _shared["swift_error"] = str(exc)
            raise
        _shared["swift"] = cluster
        yield cluster.endpoint
    finally:
        _shared.pop("swift", None)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def python_executable() -> str:
    """Return the interpreter running the tests, for child processes."""
    return sys.executable


# Fault injection ---------------------------------------------------------------


@dataclass
class FaultRule:
    """Requests whose method matches and whose path contains ``path_part`` are disturbed."""

    method: str
    path_part: str
    status: int = 503
    delay_s: float = 0.0
    remaining: int = 1_000_000


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of an S3 server that injects errors and delays.

    Requests that match a rule get the rule's status and an S3 error body
    (or forwarded after ``delay_s``); everything else is forwarded unchanged. The proxy
    keeps the client's Host header, so it only suits servers that do not check
    signatures against their own address (moto does not).
    """

    def __init__(self, target_url: str):
        import http.client
        import http.server
        import threading
        from urllib.parse import urlparse

        target = urlparse(target_url)
        self.rules: list[FaultRule] = []
        self.disturbed: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy._match(self.command, self.path)
                if rule is not None and rule.delay_s:
                    time.sleep(rule.delay_s)
                if rule is not None and rule.status:
                    proxy.disturbed.append(f"{self.command} {self.path}")
                    error = (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable"
                        b"</Code><Message>Injected by the test proxy.</Message></Error>"
                    )
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(error)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(error)
                    return
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    if self.command == "HEAD":
                        self.send_header("Content-Length", response.getheader("Content-Length", "0"))
                    else:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _match(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and rule.path_part in path and rule.remaining > 0:
                    rule.remaining -= 1
                    return rule
        return None

    def fail(self, method: str, path_part: str, status: int = 503, times: int = 1_000_000) -> None:
        """Respond to the next ``times`` matching requests with ``status``."""
        with self._lock:
            self.rules.append(FaultRule(method, path_part, status=status, remaining=times))

    def delay(self, method: str, path_part: str, delay_s: float, times: int = 1_000_000) -> None:
        """Forward matching requests only after ``delay_s`` seconds."""
        with self._lock:
            self.rules.append(FaultRule(method, path_part, status=0, delay_s=delay_s, remaining=times))

    def clear(self) -> None:
        """Forward everything unchanged from now on."""
        with self._lock:
            self.rules.clear()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fault_proxy(moto_server: S3Endpoint) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's moto server."""
    proxy = FaultProxy(moto_server.endpoint_url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
