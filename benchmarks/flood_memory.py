"""Peak memory of ``tcpwatch read`` on a SYN flood: many half-open connections.

    python -m benchmarks.flood_memory [--sizes 10000 100000 1000000] [--runs 1]
        [--max-connections N]

For each size N the benchmark writes a pcap of N SYN segments from N distinct
source addresses to one server port, one microsecond apart, with no SYN-ACK
ever sent back. So all N connections are half-open and tracked at once until
the capture ends. It then runs ``tcpwatch read FILE --format json
--max-connections N`` as a child process (N is 0, no limit, unless given) and
takes its peak memory, the maximum resident set size that
``wait4`` reports. The same command on a one-SYN file gives the baseline
(the interpreter and imports), and the difference divided by N is the memory
per tracked connection. The JSON output is counted, to check that every
connection was reported.

Results are printed as a Markdown table and saved as JSON under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)

# pcap file header: magic (microseconds), version 2.4, thiszone, sigfigs,
# snaplen, LINKTYPE_ETHERNET.
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
_RECORD = struct.Struct("<IIII")
_SERVER = bytes([10, 255, 255, 1])
_SERVER_PORT = 80
_START = 1_700_000_000


def syn_frame_template() -> bytearray:
    """Return an Ethernet, IPv4 and TCP SYN frame with an MSS option.

    The source address is at bytes 26 to 29 and the source port at 34 and
    35. Checksums are left 0, as tcpwatch does not check them by default.
    """
    tcp = struct.pack(
        "!HHIIBBHHH4s", 0, _SERVER_PORT, 1000, 0, 6 << 4, 0x02, 64240, 0, 0,
        bytes([2, 4, 5, 0xB4]),
    )  # fmt: skip
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
        bytes(4), _SERVER,
    )  # fmt: skip
    ethernet = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    return bytearray(ethernet + ip + tcp)


def write_flood(path: Path, count: int) -> None:
    """Write ``count`` SYNs from distinct sources, one microsecond apart."""
    frame = syn_frame_template()
    length = len(frame)
    with open(path, "wb") as stream:
        stream.write(_PCAP_HEADER)
        for index in range(count):
            # Sources count up from 10.0.0.1, and the source port varies as
            # flood tools vary it.
            frame[26:30] = (0x0A000001 + index).to_bytes(4, "big")
            frame[34:36] = (1024 + index % 64000).to_bytes(2, "big")
            seconds, micros = divmod(index, 1_000_000)
            stream.write(_RECORD.pack(_START + seconds, micros, length, length))
            stream.write(frame)


@dataclass
class Run:
    connections: int
    records: int
    evicted: int
    seconds: float
    max_rss_kib: int


def read_flood(path: Path, max_connections: int) -> Run:
    """Run ``tcpwatch read --format json`` on ``path`` and measure it."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "tcpwatch", "read", str(path), "--format", "json"]
    command += ["--max-connections", str(max_connections)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    records = sum(1 for _ in process.stdout)
    stderr = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"tcpwatch read failed on {path}: {stderr}")
    connections = int(stderr.split(" ", 1)[0].replace(",", ""))
    evicted = re.search(r"([\d,]+) connections? evicted", stderr)
    evicted_count = int(evicted.group(1).replace(",", "")) if evicted else 0
    # ru_maxrss is in KiB on Linux.
    return Run(connections, records, evicted_count, seconds, int(usage.ru_maxrss))


@dataclass
class Result:
    size: int
    max_connections: int
    connections: int
    records: int
    evicted: int
    seconds: float
    max_rss_mib: float
    baseline_mib: float
    bytes_per_connection: float


def measure(
    size: int, runs: int, baseline_kib: int, directory: Path, max_connections: int
) -> Result:
    path = directory / f"flood-{size}.pcap"
    write_flood(path, size)
    measured = [read_flood(path, max_connections) for _ in range(runs)]
    path.unlink()
    peak = int(statistics.median(run.max_rss_kib for run in measured))
    first = measured[0]
    return Result(
        size=size,
        max_connections=max_connections,
        connections=first.connections,
        records=first.records,
        evicted=first.evicted,
        seconds=statistics.median(run.seconds for run in measured),
        max_rss_mib=peak / 1024,
        baseline_mib=baseline_kib / 1024,
        bytes_per_connection=(peak - baseline_kib) * 1024 / size,
    )


def markdown(results: list[Result]) -> str:
    lines = [
        "| SYNs | --max-connections | reported | evicted | time | peak RSS "
        "| above baseline | per SYN |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        above = result.max_rss_mib - result.baseline_mib
        limit = f"{result.max_connections:,}" if result.max_connections else "none"
        lines.append(
            f"| {result.size:,} | {limit} | {result.records:,} "
            f"| {result.evicted:,} | {result.seconds:.1f} s "
            f"| {result.max_rss_mib:,.0f} MiB | {above:,.0f} MiB "
            f"| {result.bytes_per_connection:,.0f} B |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--runs", type=int, default=1, help="runs per size (median)")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=0,
        help="passed to tcpwatch read; 0 (the default here) tracks every SYN",
    )
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="tcpwatch-flood-") as name:
        directory = Path(name)
        one = directory / "one.pcap"
        write_flood(one, 1)
        baseline = int(
            statistics.median(read_flood(one, 0).max_rss_kib for _ in range(3))
        )
        for size in args.sizes:
            result = measure(size, args.runs, baseline, directory, args.max_connections)
            print(
                f"{size:,} SYNs: peak {result.max_rss_mib:,.0f} MiB, "
                f"{result.bytes_per_connection:,.0f} B per connection, "
                f"{result.seconds:.1f} s",
                file=sys.stderr,
            )
            results.append(result)

    print(markdown(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    saved = RESULTS_DIR / f"flood-{stamp}.json"
    saved.write_text(
        json.dumps(
            {
                "benchmark": "flood_memory",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "results": [asdict(result) for result in results],
            },
            indent=2,
        )
    )
    print(f"saved {saved.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
