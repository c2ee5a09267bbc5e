"""The offline pipeline: capture files through the decoder into the tracker."""

import gc
import random
from pathlib import Path

import pytest
from scripted import Conversation, write_pcap

from tcpwatch.capture.decoder import Decoder
from tcpwatch.capture.pcapfile import MergedCapture
from tcpwatch.capture.segment import ACK, Segment
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.reorder import ReorderBuffer
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import ReadResult, read_captures


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


def tracked_times(path: Path) -> tuple[list[float], ReadResult]:
    """Read ``path``; return the timestamps in the order the tracker got them.

    The capture holds one connection, whose kept segments are in that order.
    """
    conns: list[Connection] = []
    result = read_captures([str(path)], FlowTracker(keep_segments=True), conns.append)
    assert len(conns) == 1
    segments = conns[0].segments or []
    return [view.segment.ts for view in segments], result


@pytest.mark.parametrize("seed", range(6))
def test_read_captures_orders_like_reorder_buffer(tmp_path: Path, seed: int) -> None:
    # In order for a while, so that the inline in-order path runs first,
    # then some segments moved back by up to 0.2 s, a few by 3 s (too late
    # to be put back), and the first segment of all as a late arrival too.
    rng = random.Random(seed)
    talk = Conversation(step=0.01)
    talk.time = 1000.0
    for _ in range(150):
        talk.client(ACK, 10)
    segments = list(talk.segments)
    for index in range(100, len(segments)):
        if rng.random() < 0.2:
            shift = 3.0 if rng.random() < 0.1 else rng.uniform(0, 0.2)
            segments[index] = segments[index]._replace(ts=segments[index].ts - shift)
    segments.append(segments[0])
    path = tmp_path / "shuffled.pcap"
    write_pcap(segments, str(path))
    buffer = ReorderBuffer()
    expected = [segment.ts for segment in buffer.ordered(read_segments(path))]

    seen, result = tracked_times(path)

    assert seen == expected
    assert result.reordered == buffer.reordered
    assert result.reordered_late == buffer.late
    assert buffer.late > 0


def test_read_captures_in_order_file(tmp_path: Path) -> None:
    talk = Conversation(step=0.01)
    for _ in range(200):
        talk.client(ACK, 10)
    path = tmp_path / "ordered.pcap"
    write_pcap(talk.segments, str(path))

    seen, result = tracked_times(path)

    assert seen == [segment.ts for segment in read_segments(path)]
    assert result.reordered == 0


def read_segments(path: Path) -> list[Segment]:
    with MergedCapture([str(path)]) as capture:
        return list(Decoder().segments(capture))
