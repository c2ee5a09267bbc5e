"""The tshark backend against the native decoder, on the same capture files.

Both must turn every frame into the same ``Segment`` (or into nothing, for
the same reason), so that both give the same connection records.
"""

import gzip
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from tcpwatch.capture.decoder import Decoder
from tcpwatch.capture.pcapfile import open_capture
from tcpwatch.capture.segment import Segment
from tcpwatch.capture.tshark import (
    SegmentConverter,
    dumpcap_error,
    file_segments,
    require_tshark,
    tshark_error_line,
)
from tcpwatch.errors import CaptureFileError, TsharkMissingError

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
TCPWATCH = [sys.executable, "-m", "tcpwatch"]

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def native_segments(
    path: Path, validate: bool = False
) -> tuple[list[Segment], Decoder]:
    decoder = Decoder(validate_checksums=validate)
    with open_capture(str(path)) as capture:
        segments = [decoder.decode(*frame) for frame in capture]
    return [segment for segment in segments if segment is not None], decoder


def tshark_segments(
    path: Path, validate: bool = False
) -> tuple[list[Segment], SegmentConverter]:
    converter = SegmentConverter(validate_checksums=validate)
    return list(file_segments(str(path), converter)), converter


def project_captures() -> list[Path]:
    return sorted(CAPTURES.glob("*.pcap*"))


@pytest.mark.parametrize("path", project_captures(), ids=lambda path: path.name)
def test_tshark_segments_match_decoder(path: Path) -> None:
    native, decoder = native_segments(path)
    dissected, converter = tshark_segments(path)
    assert dissected == native
    assert converter.stats.frames == decoder.stats.frames


def edge_packets() -> list[tuple[Packet, int | None]]:
    """Frames with what tshark and the decoder could disagree on.

    Each comes with the snaplen to cut it to, or None to keep it whole.
    """
    client, server = "192.0.2.1", "192.0.2.2"
    ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    options = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b"")]
    syn = TCP(sport=40000, dport=80, seq=1000, flags="S", options=options)
    data = TCP(sport=40000, dport=80, seq=1001, ack=5001, flags="PA", window=502)
    inner = IP(src=server, dst=client) / TCP(sport=80, dport=40000, flags="SA")
    packets: list[tuple[Packet, int | None]] = [
        (ether / IP(src=client, dst=server) / syn, None),
        (
            ether / IP(src=client, dst=server) / data / Raw(b"GET / HTTP/1.1\r\n" * 8),
            None,
        ),
        (ether / IP(src=client, dst=server) / data / Raw(b"x" * 300), 80),
        (
            ether / IP(src=client, dst=server) / UDP(sport=53, dport=53) / Raw(b"q"),
            None,
        ),
        (ether / IP(src=client, dst=server) / ICMP(type=3, code=3) / inner, None),
        (ether / IP(src=client, dst=server, flags="MF") / data / Raw(b"y" * 64), None),
        (ether / IP(src=client, dst=server, frag=8) / Raw(b"z" * 40), None),
        (ether / IPv6(src="2001:db8::1", dst="2001:db8::2") / data / Raw(b"six"), None),
        (
            ether
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / IPv6ExtHdrHopByHop()
            / data
            / Raw(b"hop"),
            None,
        ),
        (
            ether
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / IPv6ExtHdrFragment(m=1, id=5)
            / data
            / Raw(b"first"),
            None,
        ),
        (
            ether
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / IPv6ExtHdrFragment(m=0, offset=0, id=6)
            / data
            / Raw(b"atomic"),
            None,
        ),
        (
            ether / IP(src=client, dst=server) / TCP(sport=40000, dport=80, chksum=1),
            None,
        ),
    ]
    return packets


@pytest.fixture(params=[False, True], ids=["microsecond", "nanosecond"])
def edge_capture(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    nanosecond: bool = request.param
    units = 1_000_000_000 if nanosecond else 1_000_000
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, 1)
    for index, (packet, snaplen) in enumerate(edge_packets()):
        raw = bytes(packet)
        data = raw if snaplen is None else raw[:snaplen]
        fraction = (index * 1_234_567_891) % units
        out += struct.pack(
            "<IIII", 1_700_000_000 + index, fraction, len(data), len(raw)
        )
        out += data
    path = tmp_path / "edges.pcap"
    path.write_bytes(out)
    return path


@pytest.mark.parametrize("validate", [False, True], ids=["plain", "checksums"])
def test_tshark_edge_frames_match_decoder(edge_capture: Path, validate: bool) -> None:
    native, decoder = native_segments(edge_capture, validate)
    dissected, converter = tshark_segments(edge_capture, validate)
    assert dissected == native
    assert converter.stats.frames == decoder.stats.frames
    assert converter.stats.tcp == decoder.stats.tcp
    assert converter.stats.non_tcp == decoder.stats.non_tcp
    assert converter.stats.fragments == decoder.stats.fragments
    assert converter.stats.bad_checksum == decoder.stats.bad_checksum


def test_tshark_edge_frames_checksum_is_flagged(edge_capture: Path) -> None:
    dissected, converter = tshark_segments(edge_capture, validate=True)
    assert converter.stats.bad_checksum == 1
    assert dissected[-1].bad_checksum


def read_json(*args: str, env: dict[str, str] | None = None) -> list[dict]:
    result = subprocess.run(
        [*TCPWATCH, "read", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("name", ["mixed.pcap", "mixed.pcapng", "half-close.pcap"])
def test_tshark_read_command_matches_native(name: str) -> None:
    path = str(CAPTURES / name)
    assert read_json("--backend", "tshark", path) == read_json(path)


def test_tshark_read_merges_files_like_native() -> None:
    paths = [str(CAPTURES / "refused.pcap"), str(CAPTURES / "abort-rst.pcap")]
    assert read_json("--backend", "tshark", *paths) == read_json(*paths)


def test_tshark_read_missing_file_is_an_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*TCPWATCH, "read", "--backend", "tshark", str(tmp_path / "none.pcap")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "none.pcap" in result.stderr


def path_without_tshark() -> dict[str, str]:
    """An environment whose PATH has Python and tcpwatch but no tshark."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent)
    return env


@pytest.mark.parametrize(
    "command",
    [["read", "--backend", "tshark", str(CAPTURES / "mixed.pcap")],
     ["live", "lo", "--backend", "tshark", "-c", "1"]],
    ids=["read", "live"],
)  # fmt: skip
def test_tshark_missing_names_debian_package(command: list[str]) -> None:
    env = path_without_tshark()
    assert shutil.which("tshark", path=env["PATH"]) is None
    result = subprocess.run(
        [*TCPWATCH, *command], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2
    assert "install the Debian package tshark" in result.stderr


def test_tshark_require_finds_installed_tshark() -> None:
    assert require_tshark() == shutil.which("tshark")


def test_tshark_require_raises_without_tshark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(TsharkMissingError, match="apt-get install tshark"):
        require_tshark()


def test_tshark_live_unknown_interface_lists_available() -> None:
    result = subprocess.run(
        [*TCPWATCH, "live", "nosuchif0", "--backend", "tshark", "-c", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "interface 'nosuchif0' not found" in result.stderr


def test_tshark_live_rejects_user_option() -> None:
    result = subprocess.run(
        [*TCPWATCH, "live", "lo", "--backend", "tshark", "--user", "nobody"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--user works with the native backend only" in result.stderr


# -- damaged files: the same outcome as the native reader --------------------


def damaged_files(directory: Path) -> dict[str, Path]:
    """Capture files that break the reader up front or part of the way through."""
    mixed = (CAPTURES / "mixed.pcap").read_bytes()
    refused = (CAPTURES / "refused.pcap").read_bytes()
    files = {
        "empty": b"",
        "ten-bytes": mixed[:10],
        "truncated": mixed[:-30],
        # A record header whose captured length is far past any snaplen.
        "garbage-appended": refused + b"\xff" * 64,
        "truncated-gzip": gzip.compress(mixed)[:3000],
    }
    paths = {}
    for name, data in files.items():
        suffix = ".pcap.gz" if name.endswith("gzip") else ".pcap"
        path = directory / f"{name}{suffix}"
        path.write_bytes(data)
        paths[name] = path
    directory_path = directory / "a-directory"
    directory_path.mkdir()
    paths["directory"] = directory_path
    return paths


DAMAGE_CASES = [
    ("empty", 2),
    ("ten-bytes", 2),
    ("truncated", 1),
    ("garbage-appended", 1),
    ("truncated-gzip", 1),
    ("directory", 2),
]


def run_read(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TCPWATCH, "read", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("tcpwatch: error")]


@pytest.mark.parametrize(
    ("name", "status"), DAMAGE_CASES, ids=[c[0] for c in DAMAGE_CASES]
)
def test_tshark_read_damaged_file_like_native(
    tmp_path: Path, name: str, status: int
) -> None:
    path = str(damaged_files(tmp_path)[name])
    native = run_read(path)
    dissected = run_read("--backend", "tshark", path)
    assert native.returncode == status, native.stderr
    assert dissected.returncode == status, dissected.stderr
    assert dissected.stdout == native.stdout
    assert error_lines(dissected.stderr) == error_lines(native.stderr)
    assert len(error_lines(dissected.stderr)) == 1
    assert name in error_lines(dissected.stderr)[0]


def test_tshark_read_prints_records_before_damage(tmp_path: Path) -> None:
    dissected = run_read(
        "--backend", "tshark", str(damaged_files(tmp_path)["truncated"])
    )
    records = [json.loads(line) for line in dissected.stdout.splitlines()]
    assert len(records) == 7
    assert "the packets before it were analysed" in dissected.stderr


def test_tshark_read_damaged_and_whole_file_merge(tmp_path: Path) -> None:
    damaged = str(damaged_files(tmp_path)["garbage-appended"])
    whole = str(CAPTURES / "abort-rst.pcap")
    native = run_read(damaged, whole)
    dissected = run_read("--backend", "tshark", damaged, whole)
    assert dissected.returncode == 1
    assert dissected.stdout == native.stdout
    assert error_lines(dissected.stderr) == error_lines(native.stderr)


def test_tshark_crash_message_is_tsharks_own(tmp_path: Path) -> None:
    path = damaged_files(tmp_path)["truncated"]
    # Without the native reader's check, tshark itself meets the cut.
    with pytest.raises(CaptureFileError) as caught:
        list(file_segments(str(path), SegmentConverter()))
    message = str(caught.value)
    assert message.startswith(str(path))
    assert "appears to have been cut short" in message
    assert "pid" not in message
    assert "set_debug" not in message


def test_tshark_error_line_without_pyshark_text() -> None:
    crash = RuntimeError(
        "TShark (pid 28962) seems to have crashed (retcode: 2).\n"
        'Last error line: tshark: The file "x.pcap" appears to be damaged.\n'
        "Try rerunning in debug mode [ capture_obj.set_debug() ]"
    )
    assert tshark_error_line(crash) == 'The file "x.pcap" appears to be damaged.'


# -- live capture errors: the same as the native backend's ---------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.mark.root
@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_tshark_live_without_privileges_says_how_to_fix() -> None:
    result = subprocess.run(
        [
            "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            *TCPWATCH, "live", "lo", "--backend", "tshark", "--duration", "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )  # fmt: skip
    assert result.returncode == 2
    assert "needs root or the CAP_NET_RAW capability" in result.stderr
    assert "sudo" in result.stderr
    assert "setcap cap_net_raw,cap_net_admin=ep" in result.stderr
    assert "packets captured" not in result.stderr


@pytest.mark.root
@needs_root
def test_tshark_live_invalid_filter_is_rejected() -> None:
    result = subprocess.run(
        [*TCPWATCH, "live", "lo", "--backend", "tshark", "-f", "tcp port banana",
         "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid capture filter 'tcp port banana'" in result.stderr
    assert "unknown port 'banana'" in result.stderr
    assert "listening on" not in result.stderr


def test_tshark_dumpcap_other_failure_quotes_dumpcap() -> None:
    error = dumpcap_error(
        "eth9", "", 1, ["Capturing on 'eth9'", "dumpcap: The capture session failed."]
    )
    assert "dumpcap failed to capture on 'eth9' (exit status 1)" in str(error)
    assert "The capture session failed." in str(error)


# -- exit: every event loop and pipe closed -------------------------------------

# -X dev shows ResourceWarnings. The live capture's event loop, when left to
# the garbage collector, warned "unclosed event loop" on every run and, in
# some runs, printed "Exception ignored in: <function BaseEventLoop.__del__
# ...> ValueError: Invalid file descriptor: -1".
DEV_MODE = ["-X", "dev", "-W", "always::ResourceWarning"]
EXIT_NOISE = ("unclosed event loop", "Exception ignored", "unclosed file", "Traceback")


def loopback_traffic(address: str, seconds: float) -> threading.Thread:
    """Start a thread that opens a connection to ``address`` every 0.1 s."""
    server = socket.socket()
    server.bind((address, 0))
    server.listen(16)
    server.settimeout(1)
    port = server.getsockname()[1]

    def run() -> None:
        deadline = time.monotonic() + seconds
        with server:
            while time.monotonic() < deadline:
                with socket.create_connection((address, port), timeout=2) as client:
                    accepted, _ = server.accept()
                    with accepted:
                        client.sendall(b"ping")
                        accepted.sendall(accepted.recv(16) * 500)
                time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_tshark_read_exits_with_loops_closed() -> None:
    paths = [str(CAPTURES / "mixed.pcap"), str(CAPTURES / "abort-rst.pcap")]
    result = subprocess.run(
        [sys.executable, *DEV_MODE, "-m", "tcpwatch", "read", "--backend", "tshark",
         *paths, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 8
    for noise in EXIT_NOISE:
        assert noise not in result.stderr


@pytest.mark.root
@needs_root
def test_tshark_live_write_exits_with_loops_closed(tmp_path: Path) -> None:
    address = f"127.87.{os.getpid() % 250}.{1 + os.getpid() // 250 % 250}"
    output = tmp_path / "live.pcap"
    traffic = loopback_traffic(address, 3.0)
    result = subprocess.run(
        [sys.executable, *DEV_MODE, "-m", "tcpwatch", "live", "lo", "--backend",
         "tshark", "-f", f"host {address}", "--duration", "2", "-w", str(output),
         "-F", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    traffic.join(timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"conn_state"') > 0
    assert output.stat().st_size > 24
    for noise in EXIT_NOISE:
        assert noise not in result.stderr
