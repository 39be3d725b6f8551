"""``tiering serve`` as a real process on 127.0.0.1: readiness, one upsert and search, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from redis_server import free_port

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def test_serve_process_answers_and_stops(tmp_path):
    port = free_port()
    environ = {
        **os.environ,
        "TIERING_BACKEND": "memory",
        "TIERING_DIM": "4",
        "TIERING_METRIC": "l2",
        "TIERING_COLD_DIR": str(tmp_path / "cold"),
        "TIERING_HOST": "127.0.0.1",
        "TIERING_PORT": str(port),
        "TIERING_INTERVAL_S": "0",
        "TIERING_LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from tiering.cli import main; main()", "serve"],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_ready(base, process)
        with httpx.Client(base_url=base, timeout=5.0) as client:
            upsert = client.post("/v1/upsert", json={"ids": [1, 2], "vectors": [[0, 0, 0, 1], [1, 0, 0, 0]]})
            search = client.post("/v1/search", json={"vector": [0.9, 0, 0, 0], "k": 1})
        process.send_signal(signal.SIGTERM)
        return_code = process.wait(timeout=STOP_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
    log_text = log_path.read_text()

    assert ready, log_text
    assert upsert.status_code == 200
    assert search.json()["hits"][0]["id"] == 2
    # uvicorn shuts down gracefully, then raises the captured signal again, so -SIGTERM is a clean exit.
    assert return_code in (0, -signal.SIGTERM)
    assert "Replica" in log_text
    assert "stopped" in log_text
    assert (tmp_path / "cold" / "state" / "access.npz").exists()


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False
