"""Faults during ``tcpwatch live``: the interface goes away, the disk fills up.

Each test builds its own network namespaces (a veth pair between two of
them, or a namespace's own loopback) and, for the disk, a 64 KiB tmpfs, so
no traffic leaves the machine and no other capture is disturbed. The command
runs as a real process. After a fault it must print a clear error, exit
non-zero, print the records of the connections seen so far, and leave a
``-w`` file that reads back as a valid capture of what the error reports as
kept.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and tmpfs need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 not installed"),
]

SERVER_PORT = 8080

# A server that sends ``size`` bytes on each connection and closes it, except
# on the one whose request is "HOLD", which it keeps open.
SERVER = f"""
import socket, sys, threading
host, size = sys.argv[1], int(sys.argv[2])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, {SERVER_PORT}))
listener.listen()
held = []
def serve(conn):
    request = conn.recv(100)
    if request == b"HOLD":
        held.append(conn)
        return
    conn.sendall(b"x" * size)
    conn.close()
print("ready", flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# A client that makes ``count`` exchanges, then opens one connection and keeps
# it open until killed.
CLIENT = f"""
import socket, sys, time
host, count = sys.argv[1], int(sys.argv[2])
for _ in range(count):
    with socket.create_connection((host, {SERVER_PORT}), timeout=5) as conn:
        conn.sendall(b"GET")
        while conn.recv(65536):
            pass
    time.sleep(0.05)
held = socket.create_connection((host, {SERVER_PORT}), timeout=5)
held.sendall(b"HOLD")
print("holding", flush=True)
time.sleep(60)
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def in_namespace(
    namespace: str, *command: str, **options: object
) -> "subprocess.Popen[str]":
    return subprocess.Popen(  # type: ignore[call-overload]
        ["ip", "netns", "exec", namespace, *command], text=True, **options
    )


class Veth:
    """Two namespaces joined by a veth pair: the capture side and the server side."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.capture_ns = f"tw-cap-{tag}"
        self.server_ns = f"tw-srv-{tag}"
        self.capture_if = f"twc{tag}"
        self.server_if = f"tws{tag}"
        self.capture_ip = "10.77.0.1"
        self.server_ip = "10.77.0.2"
        ip("netns", "add", self.capture_ns)
        ip("netns", "add", self.server_ns)
        peer = ("peer", "name", self.server_if)
        ip("link", "add", self.capture_if, "type", "veth", *peer)
        ip("link", "set", self.capture_if, "netns", self.capture_ns)
        ip("link", "set", self.server_if, "netns", self.server_ns)
        for namespace, name, address in (
            (self.capture_ns, self.capture_if, self.capture_ip),
            (self.server_ns, self.server_if, self.server_ip),
        ):
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", name)
            ip("-n", namespace, "link", "set", name, "up")
            ip("-n", namespace, "link", "set", "lo", "up")

    def delete(self) -> None:
        for namespace in (self.capture_ns, self.server_ns):
            subprocess.run(["ip", "netns", "del", namespace], check=False)


@pytest.fixture
def veth() -> Iterator[Veth]:
    pair = Veth()
    try:
        yield pair
    finally:
        pair.delete()


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"tw-lo-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        check=True,
        timeout=10,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


class Processes:
    """Background processes of one test, killed at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, namespace: str, *command: str) -> "subprocess.Popen[str]":
        process = in_namespace(
            namespace,
            *command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.started.append(process)
        return process

    def kill(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)


@pytest.fixture
def processes() -> Iterator[Processes]:
    group = Processes()
    try:
        yield group
    finally:
        group.kill()


def wait_for_line(process: "subprocess.Popen[str]", text: str, stream: str) -> None:
    pipe = process.stdout if stream == "stdout" else process.stderr
    assert pipe is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = pipe.readline()
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{text!r} not seen; exit status {process.poll()}")


def start_live(
    processes: Processes,
    namespace: str,
    interface: str,
    write: Path,
    listening: bool = True,
) -> "subprocess.Popen[str]":
    live = processes.start(
        namespace,
        sys.executable,
        "-m",
        "tcpwatch",
        "live",
        interface,
        "--format",
        "json",
        "--write",
        str(write),
    )
    if listening:
        wait_for_line(live, "listening on", "stderr")
    return live


def finish(live: "subprocess.Popen[str]", timeout: float = 20) -> tuple[int, str, list]:
    """Wait for ``tcpwatch live`` to end by itself; return status, stderr, records."""
    try:
        stdout, stderr = live.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        live.send_signal(signal.SIGINT)
        stdout, stderr = live.communicate(timeout=10)
        message = f"tcpwatch live kept running after the fault: {stderr}"
        raise AssertionError(message) from None
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return live.returncode, stderr, records


def read_back(path: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(path), "-F", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


def frames_in(summary: str) -> int:
    found = re.search(r"([\d,]+) frames", summary)
    assert found is not None, summary
    return int(found.group(1).replace(",", ""))


def run_until_fault(veth: Veth, processes: Processes, tmp_path: Path, fault: list[str]):
    server = processes.start(
        veth.server_ns, sys.executable, "-c", SERVER, veth.server_ip, "3000"
    )
    wait_for_line(server, "ready", "stdout")
    saved = tmp_path / "live.pcap"
    live = start_live(processes, veth.capture_ns, veth.capture_if, saved)
    client = processes.start(
        veth.capture_ns, sys.executable, "-c", CLIENT, veth.server_ip, "2"
    )
    wait_for_line(client, "holding", "stdout")
    time.sleep(0.5)

    ip("-n", veth.capture_ns, *fault)

    status, stderr, records = finish(live)
    return status, stderr, records, saved


def test_live_interface_removed(veth: Veth, processes: Processes, tmp_path: Path):
    fault = ["link", "del", veth.capture_if]

    status, stderr, records, saved = run_until_fault(veth, processes, tmp_path, fault)

    assert status != 0
    assert "Traceback" not in stderr
    assert veth.capture_if in stderr
    assert "removed" in stderr
    assert len(records) == 3
    assert sum(record["history"].startswith("ShAD") for record in records) == 3
    read_status, read_stderr = read_back(saved)
    assert read_status == 0, read_stderr
    assert f"{frames_in(read_stderr):,} packets captured" in stderr


def test_live_interface_down(veth: Veth, processes: Processes, tmp_path: Path):
    fault = ["link", "set", veth.capture_if, "down"]

    status, stderr, records, saved = run_until_fault(veth, processes, tmp_path, fault)

    assert status != 0
    assert "Traceback" not in stderr
    assert veth.capture_if in stderr
    assert "went down" in stderr
    assert len(records) == 3
    read_status, read_stderr = read_back(saved)
    assert read_status == 0, read_stderr


# The -w file -----------------------------------------------------------------------


def test_live_write_disk_full(
    namespace: str, processes: Processes, tiny_disk: Path
) -> None:
    saved = tiny_disk / "live.pcap"
    # 60 exchanges of about 4 KB fill the 64 KiB disk part way through.
    server = processes.start(
        namespace, sys.executable, "-c", SERVER, "127.0.0.1", "3000"
    )
    wait_for_line(server, "ready", "stdout")
    live = start_live(processes, namespace, "lo", saved)
    client = processes.start(namespace, sys.executable, "-c", CLIENT, "127.0.0.1", "60")
    wait_for_line(client, "holding", "stdout")

    status, stderr, records = finish(live)

    assert status != 0
    assert "Traceback" not in stderr
    assert str(saved) in stderr
    assert "No space left on device" in stderr
    assert len(records) >= 1
    kept = re.search(r"keeps the first ([\d,]+) packets", stderr)
    assert kept is not None, stderr
    read_status, read_stderr = read_back(saved)
    assert read_status == 0, read_stderr
    assert frames_in(read_stderr) == int(kept.group(1).replace(",", ""))


def test_live_write_read_only_file_system(
    namespace: str, processes: Processes, tmp_path: Path
) -> None:
    mount = tmp_path / "readonly"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)],
        check=True,
        timeout=10,
    )
    try:
        live = start_live(
            processes, namespace, "lo", mount / "live.pcap", listening=False
        )
        status, stderr, records = finish(live)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)

    assert status == 2
    assert "Traceback" not in stderr
    assert "live.pcap" in stderr
    assert "Read-only file system" in stderr
    assert records == []


def test_live_write_to_full_device(namespace: str, processes: Processes) -> None:
    """/dev/full fails every write with ENOSPC, the file header's first."""
    live = start_live(processes, namespace, "lo", Path("/dev/full"), listening=False)

    status, stderr, records = finish(live)

    assert status == 2
    assert "Traceback" not in stderr
    assert "/dev/full" in stderr
    assert "No space left on device" in stderr
