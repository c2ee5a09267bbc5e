"""Floods of hostile segments on one connection: the tracker's memory stays flat.

After a short exchange, one kind of segment is repeated 12,000 times on the
same connection: RSTs or FINs at ever new sequence numbers, SYN-ACKs with
alternating sequence numbers, duplicate ACKs, retransmissions, out-of-order
data, zero windows, keep-alives, ACKs for unseen data. The memory the tracker
holds must stop growing once the kept segments reach ``max_segments``, and the
record's history must stay short.
"""

import json
import struct
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from scripted import Conversation

from tcpwatch.capture.live_feed import CaptureStatus, FrameFeed
from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN, Frame, Segment
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker

SEGMENTS = 12_000
MAX_SEGMENTS = 1_000
# Growth allowed over the last three quarters of the flood. Allocator noise
# measured under 1 KiB; one list entry per segment would be 72 KiB.
MAX_GROWTH = 32 * 1024
MAX_HISTORY = 100

Flood = Callable[[int, list[Segment]], Segment]


def _at(index: int) -> float:
    return 1.0 + index * 1e-4


FLOODS: dict[str, Flood] = {
    "rst": lambda i, s: s[3]._replace(
        ts=_at(i), flags=RST, seq=(1101 + i * 7919) & 0xFFFFFFFF
    ),
    "fin": lambda i, s: s[3]._replace(
        ts=_at(i), flags=FIN | ACK, seq=(1101 + i * 7919) & 0xFFFFFFFF, payload_len=0
    ),
    "syn-ack": lambda i, s: s[1]._replace(ts=_at(i), seq=5000 + (i % 2) * 7),
    "syn": lambda i, s: s[0]._replace(ts=_at(i)),
    "duplicate ack": lambda i, s: s[4]._replace(ts=_at(i)),
    "retransmission": lambda i, s: s[3]._replace(ts=_at(i)),
    "out of order": lambda i, s: s[3]._replace(
        ts=_at(i), seq=(1401 + (i * 300) % 3_000_000) & 0xFFFFFFFF
    ),
    "zero window": lambda i, s: s[4]._replace(
        ts=_at(i), window=0, ack=s[4].ack + i % 3
    ),
    "keep-alive": lambda i, s: s[4]._replace(
        ts=_at(i), seq=s[4].seq - 1, payload_len=i % 2
    ),
    "acked unseen": lambda i, s: s[4]._replace(
        ts=_at(i), ack=(s[4].ack + 1000 + i * 100) & 0xFFFFFFFF
    ),
}


def exchange() -> list[Segment]:
    """Return a handshake, 100 bytes from the client, and the server's ACK."""
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 100, payload=b"x" * 100)
    talk.server(ACK)
    return talk.segments


def flood(kind: str, keep_segments: bool) -> tuple[int, int]:
    """Return (bytes the tracker grew by in the last 3/4, history length)."""
    segments = exchange()
    tracker = FlowTracker(keep_segments=keep_segments, max_segments=MAX_SEGMENTS)
    for segment in segments:
        conn = tracker.process(segment)
    make = FLOODS[kind]
    tracemalloc.start()
    try:
        start = 0
        for index in range(SEGMENTS):
            tracker.process(make(index, segments))
            tracker.pop_finished()
            if index == SEGMENTS // 4:
                start = tracemalloc.get_traced_memory()[0]
        end = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return end - start, len(build_record(conn)["history"])


@pytest.mark.parametrize("keep_segments", [False, True], ids=["counted", "kept"])
@pytest.mark.parametrize("kind", FLOODS)
def test_fuzz_tracker_flood_memory_flat(kind: str, keep_segments: bool) -> None:
    growth, history = flood(kind, keep_segments)

    assert growth < MAX_GROWTH
    assert history <= MAX_HISTORY


# A long live capture: many short connections through FrameFeed ------------------

ROUNDS = 30
ROUND_SECONDS = 0.5
# Growth allowed from the peak of rounds 12-20 to the peak of rounds 21-29.
# The close delay (5 s) keeps about ten rounds of connections, so by round 12
# the tracker holds as many as it ever will. Memory then swings by about 1 MiB
# with each sweep (every 1 s), and its peaks by about 50 KiB with the table's
# resizes. Keeping the connections of one round would add about 600 KiB.
MAX_LONG_RUN_GROWTH = 256 * 1024

_SERVER = bytes([10, 0, 0, 2])


def frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
          flags: int, payload: int, ts: float) -> Frame:  # fmt: skip
    """Return an Ethernet, IPv4 and TCP frame as a capture source yields it."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40 + payload, 0, 0x4000, 64, 6, 0, src, dst
    )
    data = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + bytes(payload)
    return (ts, 1, data, len(data), 0)


def short_connection(index: int, ts: float) -> list[Frame]:
    """Return a request of 100 bytes and a reply of 300, closed with FINs."""
    client = (0x0A010000 + index % 60000).to_bytes(4, "big")
    port = 1024 + index % 60000
    out = lambda seq, ack, flags, size, step: frame(  # noqa: E731
        client, _SERVER, port, 80, seq, ack, flags, size, ts + step * 1e-4
    )
    back = lambda seq, ack, flags, size, step: frame(  # noqa: E731
        _SERVER, client, 80, port, seq, ack, flags, size, ts + step * 1e-4
    )
    return [
        out(1000, 0, SYN, 0, 0),
        back(5000, 1001, SYN | ACK, 0, 1),
        out(1001, 5001, ACK, 0, 2),
        out(1001, 5001, PSH | ACK, 100, 3),
        back(5001, 1101, PSH | ACK, 300, 4),
        out(1101, 5301, FIN | ACK, 0, 5),
        back(5301, 1102, FIN | ACK, 0, 6),
        out(1102, 5302, ACK, 0, 7),
    ]


def syn_from(index: int, ts: float) -> Frame:
    client = (0x0B000000 + index).to_bytes(4, "big")
    return frame(client, _SERVER, 1024 + index % 60000, 80, 1000, 0, SYN, 0, ts)


def feed_rounds(
    feed: FrameFeed, make_batch: Callable[[int, float], list[Frame]]
) -> list[int]:
    """Run the feed on ``ROUNDS`` batches; return the traced memory after each."""
    samples: list[int] = []

    def batches() -> Iterator[list[Frame]]:
        for number in range(ROUNDS):
            yield make_batch(number, 1000.0 + number * ROUND_SECONDS)
            # The feed asks for the next batch once this one is tracked.
            samples.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        feed.run(batches())
    finally:
        tracemalloc.stop()
    return samples


def peak_growth(samples: list[int]) -> int:
    """Return how far the peak of the last rounds is above that of the middle."""
    return max(samples[21:]) - max(samples[12:21])


def test_fuzz_tracker_long_capture_memory_flat() -> None:
    written = []
    tracker = FlowTracker(keep_segments=True)
    feed = FrameFeed(tracker, CaptureStatus(source="test"), None)
    # As tcpwatch live -F json: each record is written out, then dropped.
    feed.on_finished = lambda conn: written.append(len(json.dumps(build_record(conn))))
    per_round = 200

    def batch(number: int, start: float) -> list[Frame]:
        frames = []
        for offset in range(per_round):
            index = number * per_round + offset
            frames += short_connection(index, start + offset * 1e-3)
        return frames

    samples = feed_rounds(feed, batch)

    assert len(written) == ROUNDS * per_round
    assert peak_growth(samples) < MAX_LONG_RUN_GROWTH


def test_fuzz_tracker_syn_flood_memory_flat_at_limit() -> None:
    tracker = FlowTracker(max_connections=2_000)
    feed = FrameFeed(tracker, CaptureStatus(source="test"), lambda conn: None)
    per_round = 2_000

    def batch(number: int, start: float) -> list[Frame]:
        return [
            syn_from(number * per_round + offset, start + offset * 1e-5)
            for offset in range(per_round)
        ]

    samples = feed_rounds(feed, batch)

    assert tracker.evicted == (ROUNDS - 1) * per_round
    assert peak_growth(samples) < MAX_LONG_RUN_GROWTH
