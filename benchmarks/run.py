"""Time tcpwatch, tshark and tcptrace on the same capture files in one run.

Every tool reads every file several times, the runs interleaved so that a busy
moment on the machine hits all tools alike, and the median wall time counts.
Peak memory is the child's maximum resident set size from ``wait4``. Results
are printed as a table with packets per second and tcpwatch's ratios to
tshark and tcptrace, and saved as JSON under ``benchmarks/results/``.

    python -m benchmarks.run [--runs 5] [--no-compiled] [FILE ...]

With no files, the standard corpus is used and recorded first when missing
(see ``benchmarks.corpus``). tcpwatch runs twice over: as installed (pure
Python, unless ``make compile`` was run) and, unless ``--no-compiled``, from a
mypyc-compiled copy of the package built under ``benchmarks/build/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
COMPILED_DIR = ROOT / "benchmarks" / "build" / "compiled"

# Packets copied from the front of the first file into the start-up test file.
SMALL_FILE_PACKETS = 200


@dataclass
class Tool:
    name: str
    command: list[str]
    """The command, with ``{file}`` where the capture path goes."""
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, path: Path) -> list[str]:
        return [part.replace("{file}", str(path)) for part in self.command]


@dataclass
class Measurement:
    seconds: float
    """Wall time."""
    cpu_seconds: float
    """User plus system CPU time of the process and its waited-for children."""
    max_rss_kib: int


@dataclass
class Result:
    tool: str
    file: str
    packets: int
    runs: list[Measurement]

    @property
    def median_seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def median_cpu_seconds(self) -> float:
        return statistics.median(run.cpu_seconds for run in self.runs)

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.median_seconds

    @property
    def packets_per_cpu_second(self) -> float:
        return self.packets / self.median_cpu_seconds

    @property
    def peak_mib(self) -> float:
        return max(run.max_rss_kib for run in self.runs) / 1024


def measure(argv: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run ``argv`` with output to /dev/null; return its wall time and peak RSS.

    ``ru_maxrss`` from ``wait4`` is the largest resident set of the process and
    of the descendants it waited for, so a tool's worker processes count too.
    """
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env={**os.environ, **(env or {})},
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace")[-2000:]
            raise SystemExit(
                f"bench: {argv[0]} failed with status {process.returncode}:\n{message}"
            )
    return Measurement(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def count_packets(path: Path) -> int:
    """Return the number of records in a pcap file (not pcapng)."""
    with path.open("rb") as capture:
        magic = capture.read(24)[:4]
        order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        record = struct.Struct(order + "IIII")
        count = 0
        while header := capture.read(16):
            caplen = record.unpack(header)[2]
            capture.seek(caplen, os.SEEK_CUR)
            count += 1
    return count


def write_small_file(source: Path, target: Path, packets: int) -> None:
    """Copy the first ``packets`` records of pcap ``source`` into ``target``."""
    with source.open("rb") as reader, target.open("wb") as writer:
        header = reader.read(24)
        order = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        record = struct.Struct(order + "IIII")
        writer.write(header)
        for _ in range(packets):
            head = reader.read(16)
            if len(head) < 16:
                break
            writer.write(head + reader.read(record.unpack(head)[2]))


def tools(compiled: bool) -> list[Tool]:
    # -P keeps the working directory off sys.path, so PYTHONPATH decides which
    # copy of tcpwatch runs.
    read = [sys.executable, "-P", "-m", "tcpwatch", "read", "{file}", "-F", "json"]
    result = [Tool("tcpwatch", read)]
    if compiled:
        pythonpath = {"PYTHONPATH": str(COMPILED_DIR)}
        result.append(Tool("tcpwatch (mypyc)", read, pythonpath))
    fields = ["-e", "tcp.stream", "-e", "tcp.flags", "-e", "tcp.analysis.flags"]
    result += [
        Tool("tshark fields", ["tshark", "-r", "{file}", "-T", "fields", *fields]),
        Tool("tshark conv", ["tshark", "-r", "{file}", "-q", "-z", "conv,tcp"]),
        Tool("tcptrace -n -l", ["tcptrace", "-n", "-l", "{file}"]),
    ]
    return result


def benchmark(files: list[Path], tool_list: list[Tool], runs: int) -> list[Result]:
    results = []
    for path in files:
        packets = count_packets(path)
        print(f"bench: {path.name}: {packets:,} packets", file=sys.stderr)
        measured: dict[str, list[Measurement]] = {tool.name: [] for tool in tool_list}
        for round_number in range(runs):
            for tool in tool_list:
                run = measure(tool.argv(path), tool.env)
                measured[tool.name].append(run)
                print(
                    f"bench:   run {round_number + 1}/{runs} {tool.name}: "
                    f"{run.seconds:.2f} s wall, {run.cpu_seconds:.2f} s CPU, "
                    f"{run.max_rss_kib / 1024:.0f} MiB",
                    file=sys.stderr,
                )
        for tool in tool_list:
            results.append(Result(tool.name, path.name, packets, measured[tool.name]))
    return results


def startup(small: Path, runs: int = 5) -> dict[str, object]:
    """Time ``tcpwatch --help`` and ``tcpwatch read`` on a small file.

    Also list the heavy modules each imports, from ``python -X importtime``.
    """
    tcpwatch = [sys.executable, "-P", "-m", "tcpwatch"]
    commands = {
        "tcpwatch --help": [*tcpwatch, "--help"],
        f"tcpwatch read ({SMALL_FILE_PACKETS} packets)": [
            *tcpwatch,
            "read",
            str(small),
        ],
        f"tcpwatch read -F json ({SMALL_FILE_PACKETS} packets)": [
            *tcpwatch,
            "read",
            str(small),
            "-F",
            "json",
        ],
    }
    report: dict[str, object] = {}
    for name, argv in commands.items():
        runs_measured = [measure(argv) for _ in range(runs)]
        seconds = statistics.median(run.seconds for run in runs_measured)
        cpu_seconds = statistics.median(run.cpu_seconds for run in runs_measured)
        imported = subprocess.run(
            [argv[0], "-X", "importtime", *argv[1:]],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        heavy = sorted(
            {
                module
                for module in ("scapy", "pyshark")
                if re.search(rf"\|\s+{module}(\.|$)", imported, re.MULTILINE)
            }
        )
        report[name] = {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "heavy_imports": heavy,
        }
    return report


def machine() -> dict[str, str]:
    """Describe the machine: CPU model, cores, memory, software versions."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    tshark = subprocess.run(
        ["tshark", "--version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    tcptrace = subprocess.run(["tcptrace", "-v"], capture_output=True, text=True)
    tcptrace_version = (tcptrace.stdout + tcptrace.stderr).strip().splitlines()[0]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": datetime.date.today().isoformat(),
        "commit": commit or "unknown",
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{total_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tshark": tshark,
        "tcptrace": tcptrace_version,
    }


def build_compiled() -> bool:
    """Build the mypyc-compiled copy of tcpwatch; return False when it fails."""
    command = [sys.executable, str(ROOT / "tools" / "compile.py"), "--out"]
    completed = subprocess.run(
        [*command, str(COMPILED_DIR)], capture_output=True, text=True
    )
    if completed.returncode != 0:
        print(
            "bench: the mypyc build failed, so only pure Python is measured:\n"
            + completed.stderr[-2000:],
            file=sys.stderr,
        )
        return False
    return True


def print_report(results: list[Result]) -> None:
    by_file: dict[str, dict[str, Result]] = {}
    for result in results:
        by_file.setdefault(result.file, {})[result.tool] = result
    for file, row in by_file.items():
        packets = next(iter(row.values())).packets
        print(f"\n{file} ({packets:,} packets)")
        print(
            f"  {'tool':18s} {'wall s':>7s} {'packets/s':>10s} "
            f"{'CPU s':>7s} {'packets/CPU s':>13s} {'peak MiB':>8s}"
        )
        for result in row.values():
            print(
                f"  {result.tool:18s} {result.median_seconds:7.2f} "
                f"{result.packets_per_second:10,.0f} "
                f"{result.median_cpu_seconds:7.2f} "
                f"{result.packets_per_cpu_second:13,.0f} {result.peak_mib:8.0f}"
            )
        for name in ("tcpwatch", "tcpwatch (mypyc)"):
            if name in row:
                print(f"  {name}: " + _ratios(row, name))


def _ratios(row: dict[str, Result], name: str) -> str:
    """Return tcpwatch's throughput ratios, by wall time and by CPU time."""
    ours = row[name]
    parts = []
    for other, target in (("tshark fields", "5x"), ("tcptrace -n -l", "0.7x")):
        wall = ours.packets_per_second / row[other].packets_per_second
        cpu = ours.packets_per_cpu_second / row[other].packets_per_cpu_second
        parts.append(f"{wall:.2f}x {other} (CPU {cpu:.2f}x; target {target})")
    return ", ".join(parts)


def print_startup(start: dict[str, object]) -> None:
    print("\nstart-up (median of 5 runs)")
    for name, entry in start.items():
        assert isinstance(entry, dict)
        heavy = ", ".join(entry["heavy_imports"]) or "no scapy, no pyshark"
        print(
            f"  {name:36s} {entry['seconds']:.2f} s wall, "
            f"{entry['cpu_seconds']:.2f} s CPU   imports: {heavy}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=5, help="runs per tool and file")
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="skip building and timing the mypyc-compiled copy",
    )
    args = parser.parse_args(argv)
    for command in ("tshark", "tcptrace"):
        if shutil.which(command) is None:
            raise SystemExit(f"bench: {command} not found; `make bench` installs it")
    files = args.files
    if not files:
        from benchmarks.corpus import ensure_standard

        files = ensure_standard()
    compiled = not args.no_compiled and build_compiled()
    results = benchmark(files, tools(compiled), args.runs)
    with tempfile.TemporaryDirectory() as scratch:
        small = Path(scratch) / "small.pcap"
        write_small_file(files[0], small, SMALL_FILE_PACKETS)
        start = startup(small)
    info = machine()
    print(
        f"\n{info['date']}: {info['cpu']}, {info['cores']} cores, {info['memory']}, "
        f"Linux {info['kernel']}, Python {info['python']}"
    )
    print(f"{info['tshark']}; {info['tcptrace']}; tcpwatch at {info['commit']}")
    print_report(results)
    print_startup(start)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    saved = RESULTS_DIR / f"bench-{stamp}.json"
    payload = {
        "machine": info,
        "results": [
            {
                **asdict(result),
                "median_seconds": result.median_seconds,
                "median_cpu_seconds": result.median_cpu_seconds,
            }
            for result in results
        ],
        "startup": start,
    }
    saved.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nsaved {saved.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
