"""Independent capture files analysed in parallel worker processes."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tcpwatch.errors import CaptureFileError, TruncatedCaptureError
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.parallel import read_separately
from tcpwatch.pipeline import ReadResult

ROOT = Path(__file__).resolve().parent.parent


def _write_exchanges(path: Path, ports: list[int], start: float) -> None:
    """Write one clean SYN-to-FIN exchange per client port to a pcap."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    packets = []
    for index, port in enumerate(ports):
        flags_and_numbers = [
            ("c", "S", 100, 0, b""),
            ("s", "SA", 900, 101, b""),
            ("c", "A", 101, 901, b""),
            ("c", "PA", 101, 901, b"hello"),
            ("s", "FA", 901, 106, b""),
            ("c", "FA", 106, 902, b""),
            ("s", "A", 902, 107, b""),
        ]
        for step, (side, flags, seq, ack, data) in enumerate(flags_and_numbers):
            client = ("10.0.0.1", port)
            server = ("10.0.0.2", 80)
            src, dst = (client, server) if side == "c" else (server, client)
            packet = (
                Ether()
                / IP(src=src[0], dst=dst[0])
                / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
                / data
            )
            packet.time = start + index + step * 0.001
            packets.append(packet)
    wrpcap(str(path), packets)


def _read(paths: list[Path], jobs: int) -> tuple[list[Connection], ReadResult]:
    finished: list[Connection] = []
    result = read_separately(
        [str(path) for path in paths],
        partial(FlowTracker),
        finished.append,
        jobs=jobs,
    )
    return finished, result


def test_read_separately_numbers_in_file_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first.pcap", tmp_path / "second.pcap"
    _write_exchanges(first, [40001, 40002], start=1000.0)
    _write_exchanges(second, [50001, 50002, 50003], start=10.0)

    finished, result = _read([first, second], jobs=2)

    assert [conn.number for conn in finished] == [1, 2, 3, 4, 5]
    assert [conn.orig_p for conn in finished] == [40001, 40002, 50001, 50002, 50003]
    assert result.connections == 5


def test_read_separately_adds_counters(tmp_path: Path) -> None:
    first, second = tmp_path / "first.pcap", tmp_path / "second.pcap"
    _write_exchanges(first, [40001], start=1000.0)
    _write_exchanges(second, [50001, 50002], start=10.0)

    _, result = _read([first, second], jobs=1)

    assert result.stats.frames == 21
    assert result.stats.tcp == 21
    assert result.paths == [str(first), str(second)]


def test_read_separately_truncated_file_keeps_others(tmp_path: Path) -> None:
    first, second = tmp_path / "first.pcap", tmp_path / "second.pcap"
    _write_exchanges(first, [40001, 40002], start=1000.0)
    _write_exchanges(second, [50001], start=10.0)
    whole = first.read_bytes()
    first.write_bytes(whole[: len(whole) - 10])  # cut inside the last record

    finished, result = _read([first, second], jobs=2)

    errors = result.errors

    assert len(errors) == 1
    assert isinstance(errors[0], TruncatedCaptureError)
    assert errors[0].path == str(first)
    assert [conn.orig_p for conn in finished] == [40001, 40002, 50001]


def test_read_separately_missing_file_keeps_others(tmp_path: Path) -> None:
    present = tmp_path / "present.pcap"
    _write_exchanges(present, [40001], start=1000.0)
    missing = tmp_path / "missing.pcap"

    finished, result = _read([present, missing], jobs=2)

    assert [conn.orig_p for conn in finished] == [40001]
    assert len(result.errors) == 1
    assert result.errors[0].path == str(missing)
    assert "file not found" in str(result.errors[0])


def test_read_separately_no_readable_file_raises(tmp_path: Path) -> None:
    finished: list[Connection] = []

    with pytest.raises(CaptureFileError, match="file not found"):
        read_separately(
            [str(tmp_path / "missing.pcap"), str(tmp_path / "also-missing.pcap")],
            partial(FlowTracker),
            finished.append,
            jobs=2,
        )
    assert finished == []


def _tcpwatch(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "tcpwatch", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


@pytest.mark.root
def test_separate_output_matches_each_file_alone(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("recording in a network namespace needs root")
    captures = []
    for seed, packets in ((1, 3000), (2, 2000), (3, 2500)):
        capture = tmp_path / f"loopback-{seed}.pcap"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.corpus", "--packets", str(packets)]
            + ["--seed", str(seed), "--out", str(capture), "--max-seconds", "60"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        captures.append(str(capture))

    alone = "".join(_tcpwatch("read", path, "-F", "json") for path in captures)
    parallel = _tcpwatch("read", *captures, "--separate", "--jobs", "2", "-F", "json")
    serial = _tcpwatch("read", *captures, "--separate", "-F", "json")

    assert len(alone.splitlines()) > 100
    assert parallel == alone
    assert serial == alone


def test_separate_names_each_file_and_its_connections(tmp_path: Path) -> None:
    first, second = tmp_path / "first.pcap", tmp_path / "second.pcap"
    _write_exchanges(first, [40001, 40002], 1_000.0)
    _write_exchanges(second, [50001, 50002, 50003], 2_000.0)
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(first), str(second)]
        + ["--separate", "--jobs", "2", "-F", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stderr.splitlines()
    assert f"{first}: connections 1 to 2; 14 frames" in lines[0]
    assert f"{second}: connections 3 to 5; 21 frames" in lines[1]
    assert lines[2].startswith("5 connections;")


def test_jobs_without_separate_is_refused(tmp_path: Path) -> None:
    capture = tmp_path / "one.pcap"
    _write_exchanges(capture, [40001], 1_000.0)
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(capture), "--jobs", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--jobs 2 analyses files in parallel only with --separate" in done.stderr
    assert done.stdout == ""
