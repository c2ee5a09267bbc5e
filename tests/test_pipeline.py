"""The offline pipeline: capture files through the decoder into the tracker."""

import gc
from pathlib import Path

import pytest

from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import read_captures


def _write_handshakes(path: Path, count: int) -> None:
    """Write ``count`` connections that each send one SYN answered by RST."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    packets = []
    for index in range(count):
        port = 40000 + index
        syn = Ether() / IP(src="10.0.0.1", dst="10.0.0.2")
        syn /= TCP(sport=port, dport=81, flags="S", seq=1000)
        rst = Ether() / IP(src="10.0.0.2", dst="10.0.0.1")
        rst /= TCP(sport=81, dport=port, flags="RA", seq=0, ack=1001)
        syn.time, rst.time = 100.0 + index, 100.0 + index + 0.0002
        packets += [syn, rst]
    wrpcap(str(path), packets)


def test_read_captures_restores_gc_settings(tmp_path: Path) -> None:
    capture = tmp_path / "refused.pcap"
    _write_handshakes(capture, 3)
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    seen: list[tuple[int, ...]] = []

    def finished(conn: Connection) -> None:
        seen.append(gc.get_threshold())

    result = read_captures([str(capture)], FlowTracker(), finished)

    assert result.connections == 3
    assert seen[0][0] > thresholds[0]  # tuned while reading
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen


def test_read_captures_restores_gc_after_error(tmp_path: Path) -> None:
    capture = tmp_path / "refused.pcap"
    _write_handshakes(capture, 2)
    thresholds = gc.get_threshold()

    def finished(conn: Connection) -> None:
        raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer failed"):
        read_captures([str(capture)], FlowTracker(), finished)
    assert gc.get_threshold() == thresholds
