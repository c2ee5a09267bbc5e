"""``tcpwatch live --policy``: auditing real loopback traffic as it is captured."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root"),
]

SERVER = "127.8.7.10"
ALLOWED_CLIENT = "127.8.7.20"
OTHER_CLIENT = "127.8.7.30"

POLICY = f"""
[groups.web]
hosts = ["{SERVER}"]
inbound = [{{ ports = 443, from = ["{ALLOWED_CLIENT}/32"] }}]

[groups.clients]
hosts = ["{ALLOWED_CLIENT}", "{OTHER_CLIENT}"]
"""


def serve_once(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.recv(100)
        conn.sendall(b"reply")


def connect_from(source: str, port: int) -> None:
    with socket.create_connection((SERVER, port), source_address=(source, 0)) as sock:
        sock.sendall(b"request")
        sock.recv(100)


def listen(port: int) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((SERVER, port))
    listener.listen(4)
    return listener


def test_live_policy_reports_hole(tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    allowed_port, hole_port = 443, 8443
    listeners = [listen(allowed_port), listen(hole_port)]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tcpwatch",
            "live",
            "lo",
            "--format",
            "json",
            "-f",
            f"host {SERVER}",
            "--policy",
            str(policy),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr_lines: list[str] = []
    reader = threading.Thread(
        target=lambda: stderr_lines.extend(process.stderr), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("listening on" in line for line in stderr_lines):
            assert process.poll() is None, "".join(stderr_lines)
            assert time.monotonic() < deadline, "capture did not start"
            time.sleep(0.05)
        servers = [
            threading.Thread(target=serve_once, args=(sock,)) for sock in listeners
        ]
        for server in servers:
            server.start()
        connect_from(ALLOWED_CLIENT, allowed_port)
        connect_from(OTHER_CLIENT, hole_port)
        for server in servers:
            server.join(10)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        stdout = process.stdout.read()
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
        for listener in listeners:
            listener.close()
    reader.join(5)
    stderr = "".join(stderr_lines)
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    ports = sorted(record["id.resp_p"] for record in records)
    assert ports == [allowed_port, hole_port]
    assert process.returncode == 1, stderr
    assert "hole" in stderr.lower()
    assert str(hole_port) in stderr


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_live_policy_without_holes_exits_zero(tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    listener = listen(443)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tcpwatch",
            "live",
            "lo",
            "--format",
            "json",
            "-f",
            f"host {SERVER}",
            "--policy",
            str(policy),
            "--duration",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        server = threading.Thread(target=serve_once, args=(listener,))
        server.start()
        connect_from(ALLOWED_CLIENT, 443)
        server.join(10)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        listener.close()
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert [record["id.resp_p"] for record in records] == [443]
    assert process.returncode == 0, stderr
