"""Timelines of real 200 kB loopback transfers, drawn at 80 columns.

Each test records its own transfer with tcpdump on lo, filtered on its own
address and port, and draws it with ``tcpwatch timeline``. A reader with a
small receive buffer that reads slowly makes the sender fill its window, so
the timeline has marks to keep and to count in its folds.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.cells import cell_len

from tcpwatch.capture.pcapfile import open_capture

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("tcpdump") is None,
        reason="needs root and tcpdump to capture on lo",
    ),
]

ADDRESS_V4 = f"127.88.{os.getpid() % 250}.{1 + os.getpid() // 250 % 250}"
"""A loopback address no other test process filters on at the same time."""
TRANSFER = 200_000
WIDTH = 80


def record_transfer(path: Path, host: str, slow: bool) -> None:
    """Record one connection that sends TRANSFER bytes from server to client."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family)
    server.bind((host, 0))
    server.listen(1)
    server.settimeout(10)
    port = server.getsockname()[1]
    # -Z root lets tcpdump write into the test's private directory.
    command = ["tcpdump", "-i", "lo", "-U", "-n", "--immediate-mode", "-Z", "root"]
    command += ["-w", str(path), f"host {host} and tcp port {port}"]
    tcpdump = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert tcpdump.stderr is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "listening on" in tcpdump.stderr.readline():
                break
        sender = threading.Thread(target=send_all, args=(server,), daemon=True)
        sender.start()
        receive_all(family, (host, port), slow)
        sender.join(timeout=10)
        time.sleep(0.3)
    finally:
        server.close()
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)


def send_all(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        conn.recv(64)
        conn.sendall(b"x" * TRANSFER)


def receive_all(family: int, address: tuple[str, int], slow: bool) -> None:
    with socket.socket(family) as client:
        if slow:
            # Set before connect, so the window offered in the SYN is small.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        client.settimeout(10)
        client.connect(address)
        client.sendall(b"GET /\r\n")
        received = 0
        while chunk := client.recv(4096 if slow else 65536):
            received += len(chunk)
            if slow:
                time.sleep(0.002)
        assert received == TRANSFER


def timeline_text(path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "timeline", str(path), "-n", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": str(WIDTH)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def between_lifelines(text: str) -> list[str]:
    """Return what lies between the lifelines on rows without an arrow."""
    rows = []
    for line in text.splitlines():
        if "▶" in line or "◀" in line:
            continue
        match = re.fullmatch(r"\s*│(.*)│.*", line)
        if match:
            rows.append(match.group(1).strip())
    return rows


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow-reader"])
@pytest.mark.parametrize("host", [ADDRESS_V4, "::1"], ids=["ipv4", "ipv6"])
def test_timeline_loopback_fits_80_columns(tmp_path: Path, host: str, slow: bool):
    path = tmp_path / "transfer.pcap"
    record_transfer(path, host, slow)
    with open_capture(str(path)) as capture:
        packets = sum(1 for _ in capture)
    assert packets > 10
    text = timeline_text(path)
    for line in text.splitlines():
        assert cell_len(line) <= WIDTH, line
    folded = 0
    for row in between_lifelines(text):
        fold = re.fullmatch(r"… (\d+) segments\b.* …", row)
        if fold:
            folded += int(fold.group(1))
            continue
        # Besides folds, only whole marks sit below an arrow: no stray "…",
        # and no label field such as "win=65536" on a line of its own.
        assert re.fullmatch(r"(\[[^]]+\] ?)+", row), row
    arrows = [line for line in text.splitlines() if "▶" in line or "◀" in line]
    assert folded + len(arrows) == packets


@pytest.mark.parametrize("host", [ADDRESS_V4, "::1"], ids=["ipv4", "ipv6"])
def test_timeline_loopback_keeps_window_full_visible(tmp_path: Path, host: str):
    path = tmp_path / "slow.pcap"
    record_transfer(path, host, slow=True)
    text = timeline_text(path)
    assert "[window full]" in text
