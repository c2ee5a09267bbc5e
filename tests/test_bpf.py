"""Filtering capture files with pcap-filter(7) expressions, checked against tcpdump."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tcpwatch.capture.bpf import FrameFilter
from tcpwatch.capture.pcapfile import MergedCapture
from tcpwatch.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "captures").glob("*.pcap*"))
EXPRESSIONS = [
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "ip6",
    "port 54185",
    "not port 54185 and greater 100",
    "vlan and port 8080",
]

needs_tcpdump = pytest.mark.skipif(
    shutil.which("tcpdump") is None, reason="tcpdump is not installed"
)


def kept(paths: list[Path], expression: str) -> tuple[int, int]:
    """Return how many frames the filter keeps and rejects in ``paths``."""
    frame_filter = FrameFilter(expression)
    capture = MergedCapture([str(path) for path in paths], on_error=lambda _: None)
    count = sum(1 for _ in frame_filter.frames(capture))
    frame_filter.close()
    return count, frame_filter.rejected


def tcpdump_count(path: Path, expression: str) -> int:
    done = subprocess.run(
        ["tcpdump", "-n", "-r", str(path), expression],
        capture_output=True,
        text=True,
        check=True,
    )
    return len(done.stdout.splitlines())


@needs_tcpdump
@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: path.name)
def test_filter_keeps_what_tcpdump_prints(path: Path, expression: str) -> None:
    count, rejected = kept([path], expression)
    assert count == tcpdump_count(path, expression)
    assert count + rejected == tcpdump_count(path, "")


def write_vlan_and_raw(tmp_path: Path) -> tuple[Path, Path]:
    """Write a VLAN-tagged Ethernet pcap and a raw-IP pcap of a few segments."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.utils import wrpcap

    segments = [
        IP(src="10.1.0.1", dst="10.1.0.2") / TCP(sport=40000 + n, dport=port)
        for n, port in enumerate([8080, 443, 8080, 22])
    ]
    tagged = tmp_path / "tagged.pcap"
    raw = tmp_path / "raw.pcap"
    wrpcap(str(tagged), [Ether() / Dot1Q(vlan=7) / s for s in segments])
    wrpcap(str(raw), segments, linktype=101)
    return tagged, raw


@needs_tcpdump
def test_filter_vlan_tagged_frames(tmp_path: Path) -> None:
    tagged, _ = write_vlan_and_raw(tmp_path)
    assert kept([tagged], "vlan and port 8080") == (2, 2)
    assert tcpdump_count(tagged, "vlan and port 8080") == 2


@needs_tcpdump
def test_filter_raw_ip_link_type(tmp_path: Path) -> None:
    _, raw = write_vlan_and_raw(tmp_path)
    assert kept([raw], "port 443") == (1, 3)
    assert tcpdump_count(raw, "port 443") == 1


def test_filter_compiles_once_per_link_type(tmp_path: Path) -> None:
    tagged, raw = write_vlan_and_raw(tmp_path)
    # The two files are merged into one stream with two link types; a
    # program compiled for Ethernet would misread the raw-IP frames.
    assert kept([tagged, raw], "port 22 or port 443") == (2, 6)


def test_filter_invalid_expression_names_it() -> None:
    with pytest.raises(UsageError) as caught:
        FrameFilter("tcp port banana")
    message = str(caught.value)
    assert "'tcp port banana'" in message
    assert "pcap-filter(7)" in message


def test_filter_notes_link_types_it_cannot_apply_to(tmp_path: Path) -> None:
    _, raw = write_vlan_and_raw(tmp_path)
    frame_filter = FrameFilter("ether host 02:00:00:00:00:01")
    capture = MergedCapture([str(raw)], on_error=lambda _: None)
    assert list(frame_filter.frames(capture)) == []
    assert frame_filter.rejected == 4
    assert "ethernet addresses" in frame_filter.unusable[101]
