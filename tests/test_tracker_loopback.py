"""Idle timeouts and a full connection table on real kernel TCP traffic.

Each test records its own loopback exchange with tcpdump, filtered on a
127.x.y.z address of its own, and reads the file back.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tcpwatch.flow.connection import Connection
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import read_captures

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("tcpdump") is None,
        reason="needs root and tcpdump to capture on lo",
    ),
]

ADDRESS = f"127.86.{os.getpid() % 250}.{1 + os.getpid() // 250 % 250}"
"""A loopback address no other test process filters on at the same time."""
PINGS = 5
PAUSE = 0.4
IDLE_TIMEOUT = "0.1"


def record(path: Path, exchange: Callable[[], Callable[[], None]]) -> None:
    """Capture ``exchange`` on lo into ``path``, only packets to or from ADDRESS.

    ``exchange`` returns a function that releases what must stay open until
    the capture has stopped.
    """
    # -Z root lets tcpdump write into the test's private directory, and
    # --immediate-mode keeps the last packets from waiting in the kernel ring.
    command = ["tcpdump", "-i", "lo", "-U", "-n", "--immediate-mode", "-Z", "root"]
    command += ["-w", str(path), f"host {ADDRESS}"]
    tcpdump = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert tcpdump.stderr is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "listening on" in tcpdump.stderr.readline():
                break
        release = exchange()
        time.sleep(0.3)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
    release()


def listener() -> socket.socket:
    server = socket.socket()
    server.bind((ADDRESS, 0))
    server.listen(8)
    server.settimeout(10)
    return server


def ping_with_pauses() -> Callable[[], None]:
    """One connection: PINGS request-response pairs, PAUSE seconds apart."""
    server = listener()

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(100):
                conn.sendall(data)

    thread = threading.Thread(target=echo)
    thread.start()
    with socket.create_connection(server.getsockname(), timeout=10) as client:
        for index in range(PINGS):
            if index:
                time.sleep(PAUSE)
            client.sendall(b"ping %d" % index)
            assert client.recv(100) == b"ping %d" % index
    thread.join(timeout=10)
    server.close()
    return lambda: None


def open_clean_refused_reset() -> Callable[[], None]:
    """An open connection, then a clean, a refused and a reset one, in turn."""
    server = listener()
    open_accepted: list[socket.socket] = []

    def serve() -> None:
        for _ in range(3):
            conn, _ = server.accept()
            request = conn.recv(100)
            if request == b"hold":
                open_accepted.append(conn)
                conn.sendall(request)
            elif request == b"reset":
                # SO_LINGER with a zero timeout makes close() send a RST.
                linger = struct.pack("ii", 1, 0)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                conn.close()
            else:
                conn.sendall(request)
                conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    address = server.getsockname()
    open_client = socket.create_connection(address, timeout=10)
    open_client.sendall(b"hold")
    assert open_client.recv(100) == b"hold"
    with socket.create_connection(address, timeout=10) as clean:
        clean.sendall(b"hello")
        assert clean.recv(100) == b"hello"
    time.sleep(0.05)
    closed = listener()
    closed_address = closed.getsockname()
    closed.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(closed_address, timeout=10)
    with socket.create_connection(address, timeout=10) as reset:
        reset.sendall(b"reset")
        with pytest.raises(ConnectionResetError):
            reset.recv(100)
    thread.join(timeout=10)

    def release() -> None:
        # The first connection is still open when the capture stops.
        open_client.close()
        for conn in open_accepted:
            conn.close()
        server.close()

    return release


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    directory = tmp_path_factory.mktemp("loopback")
    paths = {"pauses": directory / "pauses.pcap", "table": directory / "table.pcap"}
    record(paths["pauses"], ping_with_pauses)
    record(paths["table"], open_clean_refused_reset)
    yield paths


def read_records(path: Path, tracker: FlowTracker) -> list[dict[str, object]]:
    conns: list[Connection] = []
    read_captures([str(path)], tracker, conns.append)
    return [build_record(conn) for conn in sorted(conns, key=lambda c: c.number)]


def read_json(path: Path, *options: str) -> tuple[list[dict[str, object]], str]:
    """Run ``tcpwatch read -F json`` as a process, and return records and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(path), "-F", "json", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def test_tracker_loopback_pauses_default_timeout(captures: dict[str, Path]):
    records = read_records(captures["pauses"], FlowTracker())
    assert len(records) == 1
    assert records[0]["conn_state"] == "SF"
    assert records[0]["end_reason"] == "closed"


def test_tracker_loopback_short_idle_timeout(captures: dict[str, Path]):
    records, _ = read_json(captures["pauses"], "--idle-timeout", IDLE_TIMEOUT)

    # One record per ping: the handshake goes with the first, the FINs with
    # the last.
    assert len(records) == PINGS
    reasons = [record["end_reason"] for record in records]
    assert reasons == ["idle_timeout"] * (PINGS - 1) + ["closed"]
    assert records[0]["handshake"] == "complete"
    assert [record["handshake"] for record in records[1:]] == ["not_seen"] * 4
    assert records[-1]["teardown"] == "fin"
    assert [record["orig_bytes"] for record in records] == [6] * PINGS
    assert [record["resp_bytes"] for record in records] == [6] * PINGS


def test_tracker_loopback_full_table(captures: dict[str, Path]):
    records, summary = read_json(captures["table"], "--max-connections", "1")

    states = [record["conn_state"] for record in records]
    reasons = [record["end_reason"] for record in records]
    assert states[:4] == ["S1", "SF", "REJ", "RSTR"]
    assert reasons[:4] == ["evicted", "closed", "closed", "closed"]
    assert records[0]["verdict"] == (
        "still open after 8 B; tracking stopped early: the connection table "
        "was full (--max-connections)"
    )
    assert records[1]["verdict"].startswith("closed cleanly")
    assert records[2]["verdict"].startswith("server refused")
    assert records[3]["verdict"].startswith("reset by the server")
    assert "; 1 connection evicted at the --max-connections limit" in summary


def test_tracker_loopback_table_without_limit(captures: dict[str, Path]):
    records, summary = read_json(captures["table"])

    assert [record["end_reason"] for record in records] == ["open"] + ["closed"] * 3
    assert "evicted" not in summary
