"""Record the sample captures in this folder from real TCP traffic on loopback.

Run as root, because tcpdump opens a packet socket on ``lo``:

    sudo python3 captures/record.py [--out captures/] [--only FILE ...]

For each scenario the script binds its listeners on 127.0.0.1 or ::1 (the kernel
picks the ports), starts ``tcpdump -i lo`` with a filter on those ports, waits
for tcpdump's "listening on" line, runs the scenario with plain sockets, stops
tcpdump with SIGINT so that it flushes the file, and checks that the file
contains packets. Payload contents and sizes are fixed, but ports, sequence
numbers, timestamps and the exact ACK pattern change from run to run.

The script needs only the standard library and the ``tcpdump`` program.
``mixed.pcapng`` is written too when ``editcap`` (Wireshark) is installed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

IPV4_LOOPBACK = "127.0.0.1"
IPV6_LOOPBACK = "::1"

# Maximum time for any one socket operation, tcpdump start-up or tcpdump exit.
IO_TIMEOUT = 10.0
# Time between the end of a scenario and SIGINT to tcpdump, so that tcpdump
# has read the last packets from its capture buffer before it stops.
SETTLE_TIME = 0.5
# Largest reply any client accepts, so that every receive loop is bounded.
MAX_REPLY_BYTES = 2 * 1024 * 1024

# tcpdump's snapshot lengths: 0 keeps whole packets, and 128 keeps the headers
# plus about 60 payload bytes, so that a 1 MiB transfer stays small on disk.
FULL_SNAPLEN = 0
HEADERS_SNAPLEN = 128

REQUEST = b"GET /sample HTTP/1.0\r\nHost: tcpwatch.test\r\n\r\n"
HEADER_END = b"\r\n\r\n"

CLEAN_BODY_SIZE = 4096
ABORT_BODY_SIZE = 1024
BULK_BODY_SIZE = 1024 * 1024
# The server sends these replies one chunk per send() call, with TCP_NODELAY
# and a pause after each call, so that every chunk becomes its own segment.
CHUNK_SIZE = 1024
CLEAN_CHUNK_PAUSE = 0.01
HALF_CLOSE_CHUNKS = 5
HALF_CLOSE_CHUNK_PAUSE = 0.05
# Clean exchanges that run in parallel in mixed.pcap.
MIXED_EXCHANGES = 3

# pcap magic number for microsecond timestamps. tcpdump writes it and the
# record headers in the host's byte order.
PCAP_MAGIC_MICROSECONDS = 0xA1B2C3D4
PCAP_HEADER_SIZE = 24


def make_body(size: int, label: str) -> bytes:
    """Return ``size`` bytes of numbered text lines, the same on every run."""
    line_length = len(f"{label} line {0:06d}\n")
    line_count = -(-size // line_length)
    lines = (f"{label} line {number:06d}\n" for number in range(line_count))
    return "".join(lines).encode("ascii")[:size]


def make_reply(body: bytes) -> bytes:
    """Return an HTTP/1.0-style response that carries ``body``."""
    header = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
    return header.encode("ascii") + body


CLEAN_REPLY = make_reply(make_body(CLEAN_BODY_SIZE, "clean"))
ABORT_REPLY = make_reply(make_body(ABORT_BODY_SIZE, "abort"))
HALF_CLOSE_BODY = make_body(HALF_CLOSE_CHUNKS * CHUNK_SIZE, "half-close")
BULK_REPLY = make_reply(make_body(BULK_BODY_SIZE, "bulk"))


class RecordingError(Exception):
    """Failure of a scenario or of the tcpdump capture around it."""


# Socket helpers


def open_listener(host: str) -> socket.socket:
    """Return a TCP socket listening on ``host`` at a port the kernel picks."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.settimeout(IO_TIMEOUT)
    listener.bind((host, 0))
    listener.listen()
    return listener


def reserve_closed_port(host: str) -> socket.socket:
    """Return a socket bound to a free port on ``host`` that does not listen.

    The kernel responds to a SYN for that port with RST-ACK, and keeping the
    port bound keeps any other program from listening on it while we record.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.bind((host, 0))
    return reserved


def connect(address: tuple[str, int]) -> socket.socket:
    """Open a TCP connection to ``address`` with a timeout of ``IO_TIMEOUT`` s."""
    return socket.create_connection(address, timeout=IO_TIMEOUT)


def send_in_chunks(sock: socket.socket, data: bytes, pause: float) -> None:
    """Send ``data`` in ``CHUNK_SIZE`` pieces with ``pause`` seconds after each."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for start in range(0, len(data), CHUNK_SIZE):
        sock.sendall(data[start : start + CHUNK_SIZE])
        time.sleep(pause)


def receive_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read until ``marker`` arrives and return everything read so far."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RecordingError(f"peer closed before sending {marker!r}: {data!r}")
        data += chunk
        if len(data) > MAX_REPLY_BYTES:
            raise RecordingError(f"no {marker!r} in the first {len(data)} bytes")
    return data


def receive_until_eof(sock: socket.socket) -> bytes:
    """Read until the peer's FIN and return the bytes read."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        if len(data) > MAX_REPLY_BYTES:
            raise RecordingError(f"peer sent more than {MAX_REPLY_BYTES} bytes")
    return data


def receive_reply(sock: socket.socket) -> bytes:
    """Read one response framed by its Content-Length header and return it."""
    data = receive_until(sock, HEADER_END)
    header, _, body = data.partition(HEADER_END)
    match = re.search(rb"Content-Length: (\d+)", header)
    if match is None:
        raise RecordingError(f"response has no Content-Length header: {header!r}")
    length = int(match.group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RecordingError(f"peer closed after {len(body)} of {length} bytes")
        body += chunk
    return header + HEADER_END + body


def expect_equal(received: bytes, expected: bytes, description: str) -> None:
    """Raise RecordingError unless ``received`` is ``expected``."""
    if received != expected:
        raise RecordingError(
            f"{description}: received {len(received)} bytes, expected {len(expected)}"
        )


# Server handlers: each runs in its own thread on one accepted connection.


def serve_chunked_reply(conn: socket.socket) -> None:
    """Read a request, send the reply in several segments, close after the FIN."""
    receive_until(conn, HEADER_END)
    send_in_chunks(conn, CLEAN_REPLY, CLEAN_CHUNK_PAUSE)
    expect_equal(receive_until_eof(conn), b"", "data after the reply")
    conn.close()


def serve_until_reset(conn: socket.socket) -> None:
    """Read a request, send the reply, then wait for the client's RST."""
    receive_until(conn, HEADER_END)
    conn.sendall(ABORT_REPLY)
    try:
        data = conn.recv(65536)
    except ConnectionResetError:
        conn.close()
        return
    raise RecordingError(f"expected a RST from the client, received {data!r}")


def serve_after_half_close(conn: socket.socket) -> None:
    """Read the request up to the client's FIN, then send data slowly and close."""
    expect_equal(receive_until_eof(conn), REQUEST, "request")
    send_in_chunks(conn, HALF_CLOSE_BODY, HALF_CLOSE_CHUNK_PAUSE)
    conn.close()


def serve_bulk_then_close(conn: socket.socket) -> None:
    """Read a request, send 1 MiB and close first, as an HTTP/1.0 server does."""
    receive_until(conn, HEADER_END)
    conn.sendall(BULK_REPLY)
    conn.close()


# Client scenarios


def run_exchange(address: tuple[str, int]) -> None:
    """Send a request, read the reply, then close first with FIN."""
    with connect(address) as sock:
        sock.sendall(REQUEST)
        expect_equal(receive_reply(sock), CLEAN_REPLY, "clean reply")


def run_refused(address: tuple[str, int]) -> None:
    """Connect to a port with no listener and expect ECONNREFUSED."""
    try:
        sock = connect(address)
    except ConnectionRefusedError:
        return
    sock.close()
    raise RecordingError(f"connection to {address} was accepted, expected refused")


def run_abort(address: tuple[str, int]) -> None:
    """Exchange data, then close with SO_LINGER (on, 0 s) so the kernel sends RST."""
    with connect(address) as sock:
        sock.sendall(REQUEST)
        expect_equal(receive_reply(sock), ABORT_REPLY, "reply before the reset")
        linger_on_zero_seconds = struct.pack("ii", 1, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_on_zero_seconds)


def run_half_close(address: tuple[str, int]) -> None:
    """Send the request with FIN right after it, then read until the server's FIN."""
    with connect(address) as sock:
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        expect_equal(receive_until_eof(sock), HALF_CLOSE_BODY, "half-close data")


def run_bulk(address: tuple[str, int]) -> None:
    """Request 1 MiB, read it up to the server's FIN, then close."""
    with connect(address) as sock:
        sock.sendall(REQUEST)
        expect_equal(receive_until_eof(sock), BULK_REPLY, "bulk reply")


# Threads


def run_in_threads(tasks: list[Callable[[], None]]) -> None:
    """Run every task in its own thread and raise the first error any of them hit."""
    errors: list[BaseException] = []

    def run_task(task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException as error:  # raised again in the calling thread
            errors.append(error)

    threads = [threading.Thread(target=run_task, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 3 * IO_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise RecordingError("a scenario thread did not finish in time")
    if errors:
        raise RecordingError(f"scenario failed: {errors[0]!r}") from errors[0]


def accept_and_serve(
    listener: socket.socket, handler: Callable[[socket.socket], None], count: int
) -> list[Callable[[], None]]:
    """Return tasks that together accept ``count`` connections and serve each.

    Each task accepts one connection and runs ``handler`` on it, so parallel
    clients get parallel servers.
    """

    def accept_one() -> None:
        conn, _ = listener.accept()
        conn.settimeout(IO_TIMEOUT)
        with conn:
            handler(conn)

    return [accept_one] * count


def endpoint(sock: socket.socket) -> tuple[str, int]:
    """Return the (host, port) that ``sock`` is bound to."""
    host, port = sock.getsockname()[:2]
    return host, port


# Each prepare_* function binds the sockets of one scenario and returns them
# with the tasks to run while tcpdump listens. The capture filter is built from
# the ports of those sockets.

Prepared = tuple[list[socket.socket], list[Callable[[], None]]]


@dataclass
class Scenario:
    """One capture file and the traffic recorded into it."""

    file_name: str
    description: str
    host: str
    snaplen: int
    prepare: Callable[[str], Prepared]


def prepare_exchange(host: str) -> Prepared:
    listener = open_listener(host)
    address = endpoint(listener)
    tasks = accept_and_serve(listener, serve_chunked_reply, 1)
    return [listener], [*tasks, lambda: run_exchange(address)]


def prepare_refused(host: str) -> Prepared:
    reserved = reserve_closed_port(host)
    address = endpoint(reserved)
    return [reserved], [lambda: run_refused(address)]


def prepare_abort(host: str) -> Prepared:
    listener = open_listener(host)
    address = endpoint(listener)
    tasks = accept_and_serve(listener, serve_until_reset, 1)
    return [listener], [*tasks, lambda: run_abort(address)]


def prepare_half_close(host: str) -> Prepared:
    listener = open_listener(host)
    address = endpoint(listener)
    tasks = accept_and_serve(listener, serve_after_half_close, 1)
    return [listener], [*tasks, lambda: run_half_close(address)]


def prepare_mixed(host: str) -> Prepared:
    exchange_listener = open_listener(host)
    abort_listener = open_listener(host)
    half_close_listener = open_listener(host)
    bulk_listener = open_listener(host)
    reserved = reserve_closed_port(host)

    exchange_address = endpoint(exchange_listener)
    abort_address = endpoint(abort_listener)
    half_close_address = endpoint(half_close_listener)
    bulk_address = endpoint(bulk_listener)
    refused_address = endpoint(reserved)

    tasks = [
        *accept_and_serve(exchange_listener, serve_chunked_reply, MIXED_EXCHANGES),
        *accept_and_serve(abort_listener, serve_until_reset, 1),
        *accept_and_serve(half_close_listener, serve_after_half_close, 1),
        *accept_and_serve(bulk_listener, serve_bulk_then_close, 1),
        *[lambda: run_exchange(exchange_address)] * MIXED_EXCHANGES,
        lambda: run_refused(refused_address),
        lambda: run_abort(abort_address),
        lambda: run_half_close(half_close_address),
        lambda: run_bulk(bulk_address),
    ]
    sockets = [
        exchange_listener,
        abort_listener,
        half_close_listener,
        bulk_listener,
        reserved,
    ]
    return sockets, tasks


SCENARIOS = [
    Scenario(
        "clean-exchange.pcap",
        "request, 4 KiB reply in 1 KiB segments, FIN from both sides",
        IPV4_LOOPBACK,
        FULL_SNAPLEN,
        prepare_exchange,
    ),
    Scenario(
        "refused.pcap",
        "SYN to a port with no listener, answered by RST-ACK",
        IPV4_LOOPBACK,
        FULL_SNAPLEN,
        prepare_refused,
    ),
    Scenario(
        "abort-rst.pcap",
        "request and reply, then the client closes with RST (SO_LINGER 0)",
        IPV4_LOOPBACK,
        FULL_SNAPLEN,
        prepare_abort,
    ),
    Scenario(
        "half-close.pcap",
        "client sends FIN after its request, server sends 5 KiB more, then FIN",
        IPV4_LOOPBACK,
        FULL_SNAPLEN,
        prepare_half_close,
    ),
    Scenario(
        "mixed.pcap",
        "3 clean exchanges, 1 refused, 1 reset, 1 half-close and 1 MiB in parallel",
        IPV4_LOOPBACK,
        HEADERS_SNAPLEN,
        prepare_mixed,
    ),
    Scenario(
        "ipv6-exchange.pcap",
        "the clean exchange over ::1",
        IPV6_LOOPBACK,
        FULL_SNAPLEN,
        prepare_exchange,
    ),
]


# tcpdump


@dataclass
class CaptureStats:
    """tcpdump's closing counts for one capture."""

    captured: int
    dropped_by_kernel: int


class Tcpdump:
    """One tcpdump process writing packets from ``lo`` to a pcap file."""

    def __init__(self, path: Path, bpf_filter: str, snaplen: int) -> None:
        self.command = [
            "tcpdump",
            "-i",
            "lo",
            "-U",
            # Without immediate mode, libpcap hands packets over in blocks
            # after a timeout of about 1 s, so a short scenario could end
            # before any packet reached the file.
            "--immediate-mode",
            "-s",
            str(snaplen),
            "-w",
            str(path),
            bpf_filter,
        ]
        self.process: subprocess.Popen[str] | None = None
        self.stderr_lines: list[str] = []
        self.listening = threading.Event()
        self.reader: threading.Thread | None = None

    def start(self) -> None:
        """Start tcpdump and return once it prints "listening on"."""
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + IO_TIMEOUT
        while not self.listening.wait(0.05):
            if self.process.poll() is not None:
                self.reader.join(IO_TIMEOUT)
                raise RecordingError(
                    f"tcpdump exited with status {self.process.returncode} before "
                    f"it started listening (capturing on lo needs root or "
                    f"CAP_NET_RAW): {self._stderr_text()}"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RecordingError(
                    f"tcpdump did not start listening within {IO_TIMEOUT} s: "
                    f"{self._stderr_text()}"
                )

    def stop(self) -> CaptureStats:
        """Stop tcpdump with SIGINT, so it flushes the file, and return its counts."""
        assert self.process is not None and self.reader is not None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(IO_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RecordingError(
                f"tcpdump did not exit within {IO_TIMEOUT} s of SIGINT"
            ) from None
        self.reader.join(IO_TIMEOUT)
        if self.process.returncode != 0:
            raise RecordingError(
                f"tcpdump exited with status {self.process.returncode}: "
                f"{self._stderr_text()}"
            )
        return self._parse_stats()

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self.listening.set()

    def _stderr_text(self) -> str:
        return " | ".join(self.stderr_lines) or "(no output)"

    def _parse_stats(self) -> CaptureStats:
        text = "\n".join(self.stderr_lines)
        captured = re.search(r"(\d+) packets? captured", text)
        dropped = re.search(r"(\d+) packets? dropped by kernel", text)
        if captured is None or dropped is None:
            raise RecordingError(f"tcpdump printed no packet counts: {text!r}")
        return CaptureStats(int(captured.group(1)), int(dropped.group(1)))


def count_pcap_records(path: Path) -> int:
    """Return the number of packet records in a microsecond pcap file."""
    data = path.read_bytes()
    if len(data) < PCAP_HEADER_SIZE:
        raise RecordingError(f"{path} is shorter than a pcap file header")
    for byte_order in "<>":
        if struct.unpack_from(f"{byte_order}I", data)[0] == PCAP_MAGIC_MICROSECONDS:
            break
    else:
        raise RecordingError(f"{path} does not start with the pcap magic a1b2c3d4")
    record_header = struct.Struct(f"{byte_order}IIII")

    count = 0
    offset = PCAP_HEADER_SIZE
    while offset < len(data):
        if offset + record_header.size > len(data):
            raise RecordingError(f"{path} ends inside a record header")
        captured_length = record_header.unpack_from(data, offset)[2]
        offset += record_header.size + captured_length
        if offset > len(data):
            raise RecordingError(f"{path} ends inside a packet")
        count += 1
    return count


def capture_filter(sockets: list[socket.socket], host: str) -> str:
    """Return a BPF filter for TCP to or from the ports of ``sockets`` on ``host``."""
    ports = " or ".join(f"port {endpoint(sock)[1]}" for sock in sockets)
    return f"tcp and host {host} and ({ports})"


def record(scenario: Scenario, path: Path) -> int:
    """Record ``scenario`` into ``path`` and return the number of packets."""
    sockets, tasks = scenario.prepare(scenario.host)
    try:
        tcpdump = Tcpdump(
            path, capture_filter(sockets, scenario.host), scenario.snaplen
        )
        tcpdump.start()
        try:
            run_in_threads(tasks)
            time.sleep(SETTLE_TIME)
        finally:
            stats = tcpdump.stop()
    finally:
        for sock in sockets:
            sock.close()

    if stats.dropped_by_kernel:
        raise RecordingError(
            f"{path.name}: the kernel dropped {stats.dropped_by_kernel} packets; "
            "run the script again"
        )
    records = count_pcap_records(path)
    if records == 0:
        raise RecordingError(f"{path.name}: the capture file contains no packets")
    if records != stats.captured:
        raise RecordingError(
            f"{path.name}: the file contains {records} packets, "
            f"but tcpdump reported {stats.captured}"
        )
    return records


def convert_to_pcapng(source: Path, target: Path) -> bool:
    """Convert ``source`` to pcapng at ``target`` with editcap.

    Return False, and write nothing, when editcap is not installed.
    """
    if shutil.which("editcap") is None:
        return False
    subprocess.run(
        ["editcap", "-F", "pcapng", str(source), str(target)],
        check=True,
        timeout=IO_TIMEOUT,
    )
    return True


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Record tcpwatch's sample captures from TCP traffic on lo."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        metavar="DIR",
        help="folder to write the capture files to (default: the script's folder)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[scenario.file_name for scenario in SCENARIOS],
        metavar="FILE",
        help="record only this capture file; repeat to record several "
        "(default: all of them)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if shutil.which("tcpdump") is None:
        print(
            "error: tcpdump not found; install it, e.g. apt-get install tcpdump",
            file=sys.stderr,
        )
        return 1
    # A shell starts background jobs with SIGINT ignored, and tcpdump keeps that
    # setting, so our SIGINT would not stop it. With a Python handler installed
    # here, exec() resets SIGINT to its default action in the child.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    args.out.mkdir(parents=True, exist_ok=True)
    selected = [s for s in SCENARIOS if not args.only or s.file_name in args.only]
    # tcpdump records into a scratch folder, and only a checked file is copied
    # to --out, so a failed run keeps the previous capture. The copy also
    # belongs to the user running this script: Debian's tcpdump 4.99 switches
    # to its "tcpdump" user and leaves its own file owned by that user.
    with tempfile.TemporaryDirectory(prefix="tcpwatch-captures-") as scratch:
        scratch_dir = Path(scratch)
        for scenario in selected:
            scratch_path = scratch_dir / scenario.file_name
            try:
                packets = record(scenario, scratch_path)
            except (RecordingError, OSError) as error:
                print(
                    f"error: recording {scenario.file_name} failed: {error}",
                    file=sys.stderr,
                )
                return 1
            target = args.out / scenario.file_name
            shutil.copyfile(scratch_path, target)
            size = target.stat().st_size
            print(f"{target}: {packets} packets, {size} bytes: {scenario.description}")

            if scenario.file_name == "mixed.pcap":
                pcapng = args.out / "mixed.pcapng"
                if convert_to_pcapng(target, pcapng):
                    print(f"{pcapng}: converted with editcap")
                else:
                    print(f"{pcapng}: skipped because editcap is not installed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
