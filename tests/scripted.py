"""Scripted TCP conversations for tracker tests: segments without packets.

A ``Conversation`` keeps each side's next sequence number, so a test reads as
the exchange it describes::

    talk = Conversation()
    talk.client(SYN)
    talk.server(SYN | ACK)
    talk.client(ACK)
"""

import struct

from tcpwatch.capture.segment import ACK, FIN, RST, SYN, Segment
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker

CLIENT = bytes([10, 0, 0, 1])
SERVER = bytes([10, 0, 0, 2])
MSS_WS_SACK = bytes([2, 4, 5, 0xB4, 1, 3, 3, 7, 4, 2])
"""SYN options: MSS 1460, NOP, window scale 7, SACK permitted."""


class Conversation:
    """Build segments between one client and one server, tracking numbers."""

    def __init__(
        self,
        client_isn: int = 1000,
        server_isn: int = 5000,
        client_port: int = 40000,
        server_port: int = 80,
        step: float = 0.001,
    ) -> None:
        self.next_seq = {True: client_isn, False: server_isn}
        self.ports = {True: client_port, False: server_port}
        self.time = 0.0
        self.step = step
        self.segments: list[Segment] = []

    def client(self, flags: int, length: int = 0, **fields: object) -> Segment:
        return self.send(True, flags, length, **fields)

    def server(self, flags: int, length: int = 0, **fields: object) -> Segment:
        return self.send(False, flags, length, **fields)

    def send(
        self,
        from_client: bool,
        flags: int,
        length: int = 0,
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int = 65535,
        options: bytes = b"",
        at: float | None = None,
        advance: bool = True,
        payload: bytes = b"",
    ) -> Segment:
        """Append one segment; ``seq`` and ``ack`` default to the expected values."""
        self.time = at if at is not None else self.time + self.step
        own_seq = self.next_seq[from_client] if seq is None else seq
        if ack is None:
            ack = self.next_seq[not from_client] if flags & ACK else 0
        if flags & SYN and not options:
            options = MSS_WS_SACK
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        sport, dport = self.ports[from_client], self.ports[not from_client]
        segment = Segment(
            self.time,
            src,
            dst,
            sport,
            dport,
            own_seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            flags,
            window,
            length,
            40 + len(options) + length,
            options,
            payload[:64],
        )
        if advance and seq is None:
            consumed = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            if flags & RST:
                consumed = 0
            self.next_seq[from_client] = own_seq + consumed
        self.segments.append(segment)
        return segment

    def handshake(self) -> None:
        self.client(SYN)
        self.server(SYN | ACK)
        self.client(ACK)


def track(segments: list[Segment], **options: object) -> list[dict[str, object]]:
    """Run segments through a new tracker and return the records, first seen first."""
    tracker = FlowTracker(**options)  # type: ignore[arg-type]
    for segment in segments:
        tracker.process(segment)
    finished = tracker.flush()
    return [build_record(conn) for conn in sorted(finished, key=lambda c: c.number)]


def track_one(segments: list[Segment], **options: object) -> dict[str, object]:
    records = track(segments, **options)
    assert len(records) == 1, f"expected one connection, got {len(records)}"
    return records[0]


def to_bytes(segment: Segment) -> bytes:
    """Return ``segment`` as the bytes of an IPv4 or IPv6 packet (built by scapy)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    if len(segment.src) == 4:
        ip = IP(src=_text(segment.src), dst=_text(segment.dst))
    else:
        ip = IPv6(src=_text(segment.src), dst=_text(segment.dst))
    options = segment.options + b"\x00" * (-len(segment.options) % 4)
    tcp = TCP(
        sport=segment.sport,
        dport=segment.dport,
        seq=segment.seq,
        ack=segment.ack,
        flags=segment.flags,
        window=segment.window,
        dataofs=5 + len(options) // 4,
    )
    payload = segment.payload.ljust(segment.payload_len, b"x")
    return bytes(ip / tcp / Raw(options + payload))


def write_pcap(segments: list[Segment], path: str) -> None:
    """Write ``segments`` to a nanosecond raw-IP pcap file, in list order."""
    with open(path, "wb") as stream:
        # Magic for nanosecond timestamps, version 2.4, snaplen, LINKTYPE_RAW.
        stream.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 101))
        for segment in segments:
            data = to_bytes(segment)
            seconds = int(segment.ts)
            nanos = round((segment.ts - seconds) * 1e9)
            stream.write(struct.pack("<IIII", seconds, nanos, len(data), len(data)))
            stream.write(data)


def _text(address: bytes) -> str:
    from tcpwatch.flow.connection import format_address

    return format_address(address)
