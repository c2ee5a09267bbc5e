"""How many packets per second ``tcpwatch live`` keeps up with on loopback.

A sender process writes crafted TCP conversations onto ``lo`` through a packet
socket at a fixed rate, and a capture runs on ``lo`` at the same time: first
``tcpdump -w /dev/null``, then ``tcpwatch live`` with full analysis and JSON
records written to /dev/null. Each run ends with SIGINT, and the kernel's
counts are taken from the capture's closing lines ("packets dropped by
kernel"). A rate is sustained when the capture saw every packet sent and the
kernel dropped none.

    sudo python -m benchmarks.live_throughput [--rates 25000,50000,...]
        [--seconds 5] [--tools tcpdump,tcpwatch,tcpwatch-mypyc]

Each conversation is ten packets: handshake, 100 bytes each way with their
ACKs, and a FIN exchange, between 127.77.0.1 and 127.77.0.2 on a new client
port each time. Every IPv4 header checksum is left zero, so the kernel drops
the packets after the capture point and the TCP stack never replies to them.
Results are printed and saved as JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
COMPILED_DIR = ROOT / "benchmarks" / "build" / "compiled"

CLIENT = bytes([127, 77, 0, 1])
SERVER = bytes([127, 77, 0, 2])
SERVER_PORT = 8080
FILTER = "tcp and net 127.77.0.0/16"
RING_KIB = 32768
"""Kernel buffer for both tools: tcpwatch's default ring, tcpdump's -B."""

# One conversation: (from client, flags, payload bytes, relative seq, relative
# ack). Relative numbers count from each side's ISN.
SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10
CONVERSATION = (
    (True, SYN, 0, 0, 0),
    (False, SYN | ACK, 0, 0, 1),
    (True, ACK, 0, 1, 1),
    (True, PSH | ACK, 100, 1, 1),
    (False, ACK, 0, 1, 101),
    (False, PSH | ACK, 100, 1, 101),
    (True, ACK, 0, 101, 101),
    (True, FIN | ACK, 0, 101, 101),
    (False, FIN | ACK, 0, 101, 102),
    (True, ACK, 0, 102, 102),
)


def frame_templates() -> list[tuple[bytearray, bool, int, int]]:
    """Return each packet of a conversation as a frame to patch and send."""
    templates = []
    for from_client, flags, length, rel_seq, rel_ack in CONVERSATION:
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        ethernet = bytes(12) + b"\x08\x00"
        # IPv4: version/IHL, TOS, total length, id, flags/fragment, TTL,
        # protocol, checksum (left 0: invalid on purpose), source, destination.
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 40 + length, 0, 0x4000, 64, 6, 0, src, dst
        )
        # TCP: ports, seq, ack, data offset, flags, window, checksum, urgent.
        tcp = struct.pack("!HHIIBBHHH", 0, 0, 0, 0, 5 << 4, flags, 65535, 0, 0)
        frame = bytearray(ethernet + ip + tcp + b"x" * length)
        templates.append((frame, from_client, rel_seq, rel_ack))
    return templates


def send(rate: int, seconds: float) -> int:
    """Send conversations on ``lo`` at ``rate`` packets/s; return packets sent."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind(("lo", 0))
    templates = frame_templates()
    pack_into = struct.Struct("!HHII").pack_into
    total = int(rate * seconds)
    started = time.perf_counter()
    sent = 0
    conversation = 0
    while sent < total:
        client_port = 10000 + conversation % 50000
        client_isn = (conversation * 2654435761) & 0xFFFFFFFF
        server_isn = (conversation * 40503 + 12345) & 0xFFFFFFFF
        for frame, from_client, rel_seq, rel_ack in templates:
            if from_client:
                ports = (client_port, SERVER_PORT)
                seq, ack = client_isn + rel_seq, server_isn + rel_ack
            else:
                ports = (SERVER_PORT, client_port)
                seq, ack = server_isn + rel_seq, client_isn + rel_ack
            pack_into(frame, 34, *ports, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF)
            sock.send(frame)
        sent += len(templates)
        conversation += 1
        ahead = started + sent / rate - time.perf_counter()
        if ahead > 0.001:
            time.sleep(ahead)
    sock.close()
    return sent


@dataclass
class Run:
    tool: str
    target_rate: int
    sent: int
    send_seconds: float
    captured: int | None
    received: int | None
    dropped: int | None
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.send_seconds

    @property
    def sustained(self) -> bool:
        return self.dropped == 0 and self.captured == self.sent


def capture_command(tool: str) -> tuple[list[str], dict[str, str]]:
    """Return the command line and the environment of a capture tool.

    ``tcpwatch-mypyc`` runs the mypyc-compiled copy of the package that
    ``python -m benchmarks.run`` builds under ``benchmarks/build/compiled``.
    ``-P`` keeps the working directory off ``sys.path``, so the copy is the
    one imported.
    """
    env = dict(os.environ)
    if tool == "tcpdump":
        command = ["tcpdump", "-i", "lo", "-n", "-s", "256", "-B", str(RING_KIB),
                   "-w", "/dev/null", FILTER]  # fmt: skip
        return command, env
    python = [sys.executable]
    if tool == "tcpwatch-mypyc":
        if not COMPILED_DIR.is_dir():
            sys.exit(f"{COMPILED_DIR} is missing: run python -m benchmarks.run first")
        python = [sys.executable, "-P"]
        env["PYTHONPATH"] = str(COMPILED_DIR)
    command = [*python, "-m", "tcpwatch", "live", "lo", "-f", FILTER,
               "--format", "json", "-B", str(RING_KIB)]  # fmt: skip
    return command, env


def measure(tool: str, rate: int, seconds: float) -> Run:
    command, env = capture_command(tool)
    capture = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert capture.stderr is not None
    # Both tools print "listening on" once the capture runs.
    line = capture.stderr.readline()
    while line and "listening on" not in line:
        line = capture.stderr.readline()
    started = time.perf_counter()
    sender = subprocess.run(
        [sys.executable, "-m", "benchmarks.live_throughput", "--send",
         str(rate), str(seconds)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    send_seconds = time.perf_counter() - started
    sent = int(sender.stdout.split()[0])
    sent_seconds = float(sender.stdout.split()[1])
    time.sleep(1.0)  # let the capture drain its buffer
    # The sender has been waited for, so the capture is the only child whose
    # CPU time is still to be added to RUSAGE_CHILDREN.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    capture.send_signal(signal.SIGINT)
    stderr = capture.stderr.read()
    capture.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(
        tool=tool,
        target_rate=rate,
        sent=sent,
        send_seconds=sent_seconds or send_seconds,
        captured=_count(stderr, "packets captured"),
        received=_count(stderr, "packets received by filter"),
        dropped=_count(stderr, "packets dropped by kernel"),
        cpu_seconds=cpu,
    )


def _count(text: str, label: str) -> int | None:
    match = re.search(r"([\d,]+) " + label, text)
    return int(match.group(1).replace(",", "")) if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--send", nargs=2, metavar=("RATE", "SECONDS"))
    parser.add_argument("--rates", default="25000,50000,75000,100000,150000,200000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tools", default="tcpdump,tcpwatch")
    args = parser.parse_args()
    if args.send:
        started = time.perf_counter()
        sent = send(int(args.send[0]), float(args.send[1]))
        print(sent, time.perf_counter() - started)
        return
    if os.geteuid() != 0:
        sys.exit("this benchmark sends and captures on lo: run it as root")
    runs = []
    for rate in [int(value) for value in args.rates.split(",")]:
        for tool in args.tools.split(","):
            run = measure(tool, rate, args.seconds)
            runs.append(run)
            print(
                f"{tool:8} target {rate:>7,}/s  sent {run.sent:>9,} at "
                f"{run.rate:>9,.0f}/s  captured {run.captured or 0:>9,}  "
                f"dropped {run.dropped if run.dropped is not None else '?':>7}  "
                f"cpu {run.cpu_seconds / max(run.sent, 1) * 1e6:5.2f} µs/packet  "
                f"{'ok' if run.sustained else 'LOSS'}",
                flush=True,
            )
    for tool in args.tools.split(","):
        best = max(
            (run.rate for run in runs if run.tool == tool and run.sustained),
            default=0.0,
        )
        print(f"{tool}: highest rate with no loss {best:,.0f} packets/s")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"live-{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "seconds": args.seconds,
                "runs": [asdict(run) | {"rate": run.rate} for run in runs],
            },
            indent=2,
        )
    )
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
