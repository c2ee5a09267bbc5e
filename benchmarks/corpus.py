"""Record benchmark captures of real kernel TCP traffic on loopback.

The traffic runs in a network namespace created for the recording, on its own
loopback device, so nothing else on the machine ends up in the capture and
nothing leaves the namespace. The namespace's loopback gets an Ethernet MTU
(1500) and has segmentation and receive offloads turned off with ethtool, so
tcpdump sees packets of Ethernet size, as on a real network, rather than the
64 KiB super-packets that loopback passes by default.

Inside the namespace, servers listen on several 127.0.1.x addresses and
ports, and worker threads connect from several 127.0.2.x addresses. Each
worker picks a scenario per connection from a seeded random generator:
request/response exchanges closed by either side, half-closes, bulk uploads
and downloads, connections refused by a closed port, and connections reset by
either side. tcpdump stops after the requested number of packets (``-c``).

Usage, as root (namespaces and packet capture need it):

    python -m benchmarks.corpus --packets 200000 --out benchmarks/corpus/x.pcap
    python -m benchmarks.corpus --standard    # the two benchmark files, if absent
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

# The benchmark files, as (file name, packet count).
STANDARD_SIZES = (("loopback-200k.pcap", 200_000), ("loopback-2m.pcap", 2_000_000))

DEFAULT_SEED = 6
DEFAULT_WORKERS = 8
DEFAULT_MAX_SECONDS = 900.0

SERVER_ADDRESSES = ("127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4")
SERVER_PORTS = (80, 5432, 8080, 9000)
CLIENT_ADDRESSES = ("127.0.2.1", "127.0.2.2", "127.0.2.3", "127.0.2.4")
# Ports with no listener: a SYN to them is answered with RST (refused).
CLOSED_PORTS = (81, 3306, 8081)

# Request header sent by the client: server mode, request bytes that follow,
# response bytes the server sends back.
HEADER = struct.Struct("!BII")

# Server modes.
SERVER_CLOSES = 1  # send the response, then close first
CLIENT_CLOSES = 2  # send the response, then wait for the client's FIN
SERVER_RESETS = 3  # read the request, then abort with RST

SOCKET_TIMEOUT = 10.0
# Linux's IP_BIND_ADDRESS_NO_PORT (linux/in.h), missing from Python 3.11's socket.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
_PAYLOAD = os.urandom(1 << 20)

# Scenario weights per connection. With Ethernet-sized segments this mix
# averages about 20 packets per connection.
SCENARIOS = (
    ("exchange_server_closes", 36),
    ("exchange_client_closes", 36),
    ("half_close", 6),
    ("refused", 8),
    ("client_reset", 5),
    ("server_reset", 5),
    ("upload", 0.15),
    ("download", 0.15),
)


# -- traffic, run inside the namespace ---------------------------------------


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    """Return an integer between ``low`` and ``high``, spread evenly in log scale."""
    return int(low * (high / low) ** rng.random())


def _send_bytes(sock: socket.socket, count: int) -> None:
    view = memoryview(_PAYLOAD)
    while count > 0:
        chunk = min(count, len(view))
        sock.sendall(view[:chunk])
        count -= chunk


def _receive(sock: socket.socket, count: int | None) -> bool:
    """Read ``count`` bytes, or until EOF when None. Return False on early EOF."""
    while count is None or count > 0:
        size = 65536 if count is None else min(count, 65536)
        data = sock.recv(size)
        if not data:
            return count is None
        if count is not None:
            count -= len(data)
    return True


def _abort(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, which makes the kernel send RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _serve_connection(sock: socket.socket) -> None:
    with contextlib.suppress(OSError), sock:
        sock.settimeout(SOCKET_TIMEOUT)
        header = sock.recv(HEADER.size, socket.MSG_WAITALL)
        if len(header) < HEADER.size:
            return
        mode, request_len, response_len = HEADER.unpack(header)
        if not _receive(sock, request_len):
            return
        if mode == SERVER_RESETS:
            _abort(sock)
            return
        _send_bytes(sock, response_len)
        if mode == CLIENT_CLOSES:
            _receive(sock, None)


def _listen(address: str, port: int, stop: threading.Event) -> None:
    server = socket.create_server((address, port), backlog=512)
    server.settimeout(0.5)
    with server:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                continue
            handler = threading.Thread(target=_serve_connection, args=(conn,))
            handler.daemon = True
            handler.start()


def _connect(rng: random.Random, port: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(SOCKET_TIMEOUT)
    # Choose the source port at connect(), per destination, not at bind():
    # otherwise the TIME_WAIT sockets of a long recording use up every port of
    # the source address.
    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((rng.choice(CLIENT_ADDRESSES), 0))
    target_port = port if port is not None else rng.choice(SERVER_PORTS)
    try:
        sock.connect((rng.choice(SERVER_ADDRESSES), target_port))
    except OSError:
        sock.close()
        raise
    return sock


def _run_scenario(name: str, rng: random.Random) -> None:
    if name == "refused":
        with contextlib.suppress(ConnectionRefusedError):
            _connect(rng, rng.choice(CLOSED_PORTS)).close()
        return
    request_len = _log_uniform(rng, 40, 2000)
    response_len = _log_uniform(rng, 100, 40000)
    mode = SERVER_CLOSES
    if name == "upload":
        request_len = _log_uniform(rng, 500_000, 4_000_000)
        response_len = 64
    elif name == "download":
        response_len = _log_uniform(rng, 500_000, 4_000_000)
    elif name in ("exchange_client_closes", "half_close"):
        mode = CLIENT_CLOSES
    elif name == "server_reset":
        mode = SERVER_RESETS
    sock = _connect(rng)
    with sock:
        sock.sendall(HEADER.pack(mode, request_len, response_len))
        if name == "client_reset":
            _send_bytes(sock, request_len // 2)
            _abort(sock)
            return
        _send_bytes(sock, request_len)
        if name == "half_close":
            sock.shutdown(socket.SHUT_WR)
        if name == "exchange_client_closes":
            _receive(sock, response_len)
        else:
            _receive(sock, None)


def _work(seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    names = [name for name, _ in SCENARIOS]
    weights = [weight for _, weight in SCENARIOS]
    while not stop.is_set():
        name = rng.choices(names, weights)[0]
        try:
            _run_scenario(name, rng)
        except (ConnectionError, TimeoutError):
            continue  # resets and refusals are part of the mix
        except OSError:
            # No free source port, for example: wait rather than spin.
            time.sleep(0.05)


def generate(seed: int, workers: int, max_seconds: float) -> None:
    """Run servers and client workers for ``max_seconds``.

    The recorder ends this process with SIGTERM once tcpdump has its packets.
    """
    stop = threading.Event()
    listeners = [
        threading.Thread(target=_listen, args=(address, port, stop), daemon=True)
        for address in SERVER_ADDRESSES
        for port in SERVER_PORTS
    ]
    for thread in listeners:
        thread.start()
    time.sleep(0.5)  # let every server reach listen()
    clients = [
        threading.Thread(target=_work, args=(seed * 1000 + index, stop), daemon=True)
        for index in range(workers)
    ]
    for thread in clients:
        thread.start()
    time.sleep(max_seconds)
    stop.set()


# -- recording, run as root outside the namespace ----------------------------


@dataclass
class Recording:
    path: Path
    packets: int
    dropped: int
    """Packets the kernel dropped before tcpdump read them, as tcpdump reports."""
    seconds: float


def _run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def namespace() -> Iterator[str]:
    """Create a network namespace with loopback up at MTU 1500, offloads off."""
    name = f"tcpwatch-bench-{os.getpid()}"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "mtu", "1500")
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        if shutil.which("ethtool"):
            offloads = ("tso", "off", "gso", "off", "gro", "off")
            _run("ip", "netns", "exec", name, "ethtool", "-K", "lo", *offloads)
        else:
            print(
                "corpus: ethtool not found, so loopback keeps its offloads and the "
                "capture holds packets larger than the MTU",
                file=sys.stderr,
            )
        yield name
    finally:
        subprocess.run(("ip", "netns", "del", name), check=False)


def record(
    path: Path,
    packets: int,
    *,
    seed: int = DEFAULT_SEED,
    workers: int = DEFAULT_WORKERS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Recording:
    """Record ``packets`` packets of generated traffic into the pcap ``path``.

    The recording stops early, with fewer packets, after ``max_seconds``.
    """
    if os.geteuid() != 0:
        raise SystemExit("corpus: recording needs root (network namespace, tcpdump)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    started = time.monotonic()
    with namespace() as name:
        inside = ("ip", "netns", "exec", name)
        tcpdump = subprocess.Popen(
            (
                *inside,
                "tcpdump",
                "-i",
                "lo",
                "-n",
                "-B",
                "32768",
                "-Z",
                "root",
                "-c",
                str(packets),
                "-w",
                str(partial),
                "tcp",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        generator = None
        try:
            assert tcpdump.stderr is not None
            tcpdump.stderr.readline()  # "listening on lo, ..." once it captures
            generator = subprocess.Popen(
                (
                    *inside,
                    sys.executable,
                    "-m",
                    "benchmarks.corpus",
                    "generate",
                    "--seed",
                    str(seed),
                    "--workers",
                    str(workers),
                    "--max-seconds",
                    str(max_seconds),
                ),
                cwd=Path(__file__).resolve().parent.parent,
            )
            try:
                tcpdump.wait(timeout=max_seconds + 5)
            except subprocess.TimeoutExpired:
                tcpdump.send_signal(signal.SIGINT)
            report = tcpdump.stderr.read()
            tcpdump.wait()
        finally:
            if generator is not None:
                generator.terminate()
                try:
                    generator.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    generator.kill()
                    generator.wait()
            if tcpdump.poll() is None:
                tcpdump.kill()
                tcpdump.wait()
    partial.rename(path)
    captured = _count_line(report, "packets captured")
    dropped = _count_line(report, "packets dropped by kernel")
    return Recording(path, captured, dropped, time.monotonic() - started)


def _count_line(report: str, suffix: str) -> int:
    for line in report.splitlines():
        if line.endswith(suffix):
            return int(line.split()[0])
    return 0


def ensure_standard(max_seconds: float = DEFAULT_MAX_SECONDS) -> list[Path]:
    """Record the standard benchmark files that do not exist yet; return all."""
    paths = []
    for name, packets in STANDARD_SIZES:
        path = CORPUS_DIR / name
        if not path.exists():
            print(f"corpus: recording {path} ({packets:,} packets)", file=sys.stderr)
            result = record(path, packets, max_seconds=max_seconds)
            print(_describe(result), file=sys.stderr)
        paths.append(path)
    return paths


def _describe(result: Recording) -> str:
    return (
        f"corpus: {result.path}: {result.packets:,} packets in "
        f"{result.seconds:.0f} s, {result.dropped:,} dropped by the kernel"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus")
    sub = parser.add_subparsers(dest="command")
    inner = sub.add_parser("generate", help="run the traffic (inside a namespace)")
    for target in (parser, inner):
        target.add_argument("--seed", type=int, default=DEFAULT_SEED)
        target.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
        target.add_argument(
            "--max-seconds",
            type=float,
            default=DEFAULT_MAX_SECONDS,
            help="stop the recording after this many seconds",
        )
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--standard",
        action="store_true",
        help="record the benchmark files missing from benchmarks/corpus/",
    )
    args = parser.parse_args(argv)
    if args.command == "generate":
        generate(args.seed, args.workers, args.max_seconds)
    elif args.standard:
        ensure_standard(args.max_seconds)
    else:
        out = args.out or CORPUS_DIR / f"loopback-{args.packets}.pcap"
        result = record(
            out,
            args.packets,
            seed=args.seed,
            workers=args.workers,
            max_seconds=args.max_seconds,
        )
        print(_describe(result), file=sys.stderr)


if __name__ == "__main__":
    main()
