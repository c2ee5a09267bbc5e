"""Hostile input for the fuzz tests: damaged real frames and lying headers.

Two sources of bad frames:

- ``damage`` corrupts frames of real captures the way ``editcap -E`` does for
  Wireshark's fuzz tests: each captured byte is replaced by a random one with
  a given probability. It also cuts frames short, as a snaplen does (the wire
  length stays) or as a damaged file does (the wire length shrinks too), and
  sets absurd wire lengths.
- ``hostile_frames`` is a Hypothesis strategy of hand-built frames whose
  headers lie in one chosen way, each with the decoder counter it must land
  in.

``run_pipeline`` sends frames through the decoder, the reorder buffer, the
flow tracker and ``build_record``, as ``tcpwatch read`` does, and
``check_pipeline`` checks that every frame was counted and that the records
add up to what was decoded.
"""

import contextlib
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hypothesis import strategies as st

from tcpwatch.capture.decoder import Decoder, DecodeStats
from tcpwatch.capture.pcapfile import open_capture
from tcpwatch.capture.segment import SYN, Frame, Segment
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.options import parse_options
from tcpwatch.flow.record import RECORD_FIELDS, build_record
from tcpwatch.flow.reorder import ReorderBuffer
from tcpwatch.flow.tracker import FlowTracker

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
BUNDLED = sorted(CAPTURES.glob("*.pcap")) + sorted(CAPTURES.glob("*.pcapng"))

ETHERNET = 1
RAW_IP = 101
LINUX_SLL2 = 276
NULL_LOOPBACK = 0

# Outcomes: the ``DecodeStats`` counter a frame must land in.
TCP = "tcp"
NON_TCP = "non_tcp"
TRUNCATED = "truncated"
MALFORMED = "malformed"


def read_frames(path: Path) -> list[Frame]:
    """Return every frame of a capture file."""
    with open_capture(path) as reader:
        return list(reader)


def write_pcap(path: Path, frames: Iterable[Frame], link_type: int) -> Path:
    """Write frames to a microsecond pcap file (all of one link type)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, link_type)]
    for ts, _, data, wire_length, _ in frames:
        seconds, micros = divmod(round(ts * 1e6), 1_000_000)
        out.append(struct.pack("<IIII", seconds, micros, len(data), wire_length))
        out.append(data)
    path.write_bytes(b"".join(out))
    return path


def pcapng_block(block_type: int, body: bytes) -> bytes:
    """Return a little-endian pcapng block: type, length, body padded, length."""
    body += bytes(-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def pcapng_option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def pcapng_bytes(
    frames: Iterable[Frame],
    link_type: int = ETHERNET,
    *,
    section_comment: bytes = b"",
    interface_name: bytes = b"",
    packet_comment: bytes = b"",
) -> bytes:
    """Return a pcapng file of one section and interface, with options.

    Comments (option 1) and the interface name (``if_name``, option 2) are
    written when given; ``packet_comment`` goes on every packet.
    """
    end = pcapng_option(0, b"")
    options = pcapng_option(1, section_comment) + end if section_comment else b""
    out = [
        pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options)
    ]
    options = pcapng_option(2, interface_name) + end if interface_name else b""
    out.append(pcapng_block(1, struct.pack("<HHI", link_type, 0, 262144) + options))
    options = pcapng_option(1, packet_comment) + end if packet_comment else b""
    for ts, _, data, wire_length, _ in frames:
        micros = round(ts * 1e6)
        fixed = struct.pack(
            "<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), wire_length
        )
        padded = data + bytes(-len(data) % 4)
        out.append(pcapng_block(6, fixed + padded + options))
    return b"".join(out)


def bundled_frames() -> list[Frame]:
    """Return the frames of every capture in captures/, in file order."""
    frames: list[Frame] = []
    for path in BUNDLED:
        frames += read_frames(path)
    return frames


# Random damage --------------------------------------------------------------


def corrupt_bytes(data: bytes, rng: random.Random, probability: float) -> bytes:
    """Replace each byte by a random one with ``probability``, as editcap -E."""
    if probability <= 0 or not data:
        return data
    damaged = bytearray(data)
    # Skip from one damaged byte to the next with geometric gaps, which gives
    # the same distribution as one coin toss per byte in fewer calls.
    position = int(rng.expovariate(probability))
    while position < len(damaged):
        damaged[position] = rng.randrange(256)
        position += 1 + int(rng.expovariate(probability))
    return bytes(damaged)


def damage(
    frames: Iterable[Frame], rng: random.Random, probability: float
) -> Iterator[Frame]:
    """Yield each frame with random bytes replaced, and some cut short.

    About one frame in ten is also cut: half of them as a snaplen cuts (the
    wire length stays), half as a damaged file would (the wire length
    shrinks with the data). One in fifty gets a wire length of 4 GiB - 1, the
    largest a pcap record header can hold. One in fifty gets a random
    timestamp from -10**9 to 2**64 seconds, values that pcapng's 64-bit
    timestamps and signed offsets allow.
    """
    for ts, link_type, data, wire_length, interface in frames:
        data = corrupt_bytes(data, rng, probability)
        roll = rng.random()
        if roll < 0.05:
            data = data[: rng.randrange(len(data) + 1)]
        elif roll < 0.10:
            data = data[: rng.randrange(len(data) + 1)]
            wire_length = len(data)
        elif roll < 0.12:
            wire_length = 0xFFFFFFFF
        elif roll < 0.14:
            ts = rng.uniform(-1e9, 2.0**64)
        yield (ts, link_type, data, max(wire_length, len(data)), interface)


# Frame builders --------------------------------------------------------------

CLIENT4 = bytes([10, 9, 0, 1])
SERVER4 = bytes([10, 9, 0, 2])
CLIENT6 = bytes.fromhex("fd000000000000000000000000000001")
SERVER6 = bytes.fromhex("fd000000000000000000000000000002")


def tcp_header(
    *,
    sport: int = 40000,
    dport: int = 80,
    seq: int = 1000,
    ack: int = 0,
    offset: int | None = None,
    flags: int = SYN,
    window: int = 65535,
    options: bytes = b"",
) -> bytes:
    """Return a TCP header; ``offset`` (in 32-bit words) may lie about its size."""
    if offset is None:
        offset = (20 + len(options)) // 4
    fixed = struct.pack(
        "!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, window, 0, 0
    )
    return fixed + options


def ipv4_packet(
    payload: bytes,
    *,
    ihl: int = 5,
    total_length: int | None = None,
    protocol: int = 6,
    fragment: int = 0,
    src: bytes = CLIENT4,
    dst: bytes = SERVER4,
    version: int = 4,
) -> bytes:
    """Return an IPv4 packet; ``ihl`` and ``total_length`` may lie.

    Header bytes past the fixed 20 (for an ``ihl`` above 5) are NOP options.
    """
    options = b"\x01" * max(0, ihl * 4 - 20)
    if total_length is None:
        total_length = 20 + len(options) + len(payload)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        version << 4 | ihl,
        0,
        total_length & 0xFFFF,
        0,
        fragment,
        64,
        protocol,
        0,
        src,
        dst,
    )
    return header + options + payload


def ipv6_packet(
    payload: bytes,
    *,
    next_header: int = 6,
    payload_length: int | None = None,
    src: bytes = CLIENT6,
    dst: bytes = SERVER6,
) -> bytes:
    """Return an IPv6 packet; ``payload_length`` may lie."""
    if payload_length is None:
        payload_length = len(payload)
    header = struct.pack(
        "!IHBB16s16s", 6 << 28, payload_length & 0xFFFF, next_header, 64, src, dst
    )
    return header + payload


def extension_header(next_header: int, units: int = 0, fill: int = 1) -> bytes:
    """Return a generic IPv6 extension header of ``(units + 1) * 8`` bytes.

    ``fill`` is the byte its option area is filled with (1 is PadN's type,
    which is harmless in hop-by-hop and destination options).
    """
    return bytes([next_header, units]) + bytes([fill]) * (6 + units * 8)


def ethernet(packet: bytes, ethertype: int = 0x0800, vlans: int = 0) -> bytes:
    """Return an Ethernet II frame with ``vlans`` stacked 802.1Q tags."""
    tags = b"".join(struct.pack("!HH", 0x8100, 7) for _ in range(vlans))
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack("!H", ethertype) + packet


# Hypothesis strategies --------------------------------------------------------


class HostileFrame(NamedTuple):
    """A built frame and the outcome the decoder must report for it."""

    link_type: int
    data: bytes
    wire_length: int
    expected: str
    """``TCP``, ``NON_TCP``, ``TRUNCATED`` or ``MALFORMED``."""
    kind: str
    """What lies in the frame, for failure messages."""
    segment: tuple[int, int, int, int, int, int] | None = None
    """For ``TCP``: the (sport, dport, seq, ack, flags, payload_len) to decode."""


OPTION_BYTES = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=40),
    # Options whose length byte runs past the header, or is 0 or 1.
    st.sampled_from(
        [
            bytes([2, 40, 5, 0xB4]),
            bytes([8, 0, 0, 0]),
            bytes([5, 1, 0, 0]),
            bytes([3, 3]),
            bytes([1, 1, 1, 8]),
            bytes([34, 255]),
        ]
    ),
)


@st.composite
def _valid_tcp(draw: st.DrawFn) -> tuple[bytes, tuple[int, int, int, int, int, int]]:
    """Draw a TCP header with options (padded to 4) and a payload."""
    options = draw(OPTION_BYTES)
    options += bytes(-len(options) % 4)
    options = options[:40]
    payload = draw(st.binary(max_size=80))
    fields = (
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFF)),
    )
    sport, dport, seq, ack, flags = fields
    header = tcp_header(
        sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, options=options
    )
    return header + payload, (*fields, len(payload))


@st.composite
def _on_link(draw: st.DrawFn, packet: bytes, ipv6: bool) -> tuple[int, bytes]:
    """Draw a link layer for an IP packet: Ethernet (maybe tagged) or raw IP."""
    link_type = draw(st.sampled_from((ETHERNET, RAW_IP, LINUX_SLL2, NULL_LOOPBACK)))
    if link_type == ETHERNET:
        ethertype = 0x86DD if ipv6 else 0x0800
        return link_type, ethernet(packet, ethertype, draw(st.integers(0, 3)))
    if link_type == LINUX_SLL2:
        ethertype = 0x86DD if ipv6 else 0x0800
        return link_type, struct.pack("!H", ethertype) + bytes(18) + packet
    if link_type == NULL_LOOPBACK:
        family = 30 if ipv6 else 2
        return link_type, struct.pack("<I", family) + packet
    return link_type, packet


@st.composite
def valid_frame(draw: st.DrawFn) -> HostileFrame:
    """A well-formed TCP frame, IPv4 or IPv6, with any options and flags."""
    segment, fields = draw(_valid_tcp())
    ipv6 = draw(st.booleans())
    packet = ipv6_packet(segment) if ipv6 else ipv4_packet(segment)
    link_type, data = draw(_on_link(packet, ipv6))
    extra = draw(st.integers(0, 1500))
    return HostileFrame(link_type, data, len(data) + extra, TCP, "valid", fields)


@st.composite
def bad_ihl(draw: st.DrawFn) -> HostileFrame:
    segment, _ = draw(_valid_tcp())
    packet = ipv4_packet(segment, ihl=draw(st.integers(0, 4)))
    link_type, data = draw(_on_link(packet, False))
    return HostileFrame(link_type, data, len(data), MALFORMED, "IHL below 5")


@st.composite
def ihl_past_total_length(draw: st.DrawFn) -> HostileFrame:
    ihl = draw(st.integers(6, 15))
    total = draw(st.integers(0, ihl * 4 - 1))
    # Total length 0 means "taken from the frame" (segmentation offload).
    total = total or 1
    segment, _ = draw(_valid_tcp())
    packet = ipv4_packet(segment, ihl=ihl, total_length=total)
    link_type, data = draw(_on_link(packet, False))
    return HostileFrame(
        link_type, data, len(data), MALFORMED, "IHL past the total length"
    )


@st.composite
def ip_length_past_frame(draw: st.DrawFn) -> HostileFrame:
    """An IP length beyond the whole captured frame, up to the 16-bit maximum."""
    segment, _ = draw(_valid_tcp())
    ipv6 = draw(st.booleans())
    if ipv6:
        length = draw(st.integers(len(segment) + 1, 0xFFFF))
        packet = ipv6_packet(segment, payload_length=length)
    else:
        length = draw(st.integers(20 + len(segment) + 1, 0xFFFF))
        packet = ipv4_packet(segment, total_length=length)
    link_type, data = draw(_on_link(packet, ipv6))
    return HostileFrame(link_type, data, len(data), MALFORMED, "IP length past frame")


@st.composite
def tcp_shorter_than_header(draw: st.DrawFn) -> HostileFrame:
    """An IPv4 total length that leaves fewer than 20 bytes for TCP."""
    segment, _ = draw(_valid_tcp())
    total = draw(st.integers(20, 39))
    packet = ipv4_packet(segment, total_length=total)
    link_type, data = draw(_on_link(packet, False))
    return HostileFrame(link_type, data, len(data), MALFORMED, "no room for TCP")


@st.composite
def bad_data_offset(draw: st.DrawFn) -> HostileFrame:
    """A TCP data offset below 5, or past the end of the segment."""
    below = draw(st.booleans())
    if below:
        payload = draw(st.binary(max_size=60))
        offset = draw(st.integers(0, 4))
    else:
        # Offset 15 (60 bytes) is the largest, so the segment must be shorter.
        payload = draw(st.binary(max_size=36))
        offset = draw(st.integers((20 + len(payload)) // 4 + 1, 15))
    segment = tcp_header(offset=offset) + payload
    ipv6 = draw(st.booleans())
    packet = ipv6_packet(segment) if ipv6 else ipv4_packet(segment)
    link_type, data = draw(_on_link(packet, ipv6))
    kind = "data offset below 5" if below else "data offset past the segment"
    return HostileFrame(link_type, data, len(data), MALFORMED, kind)


@st.composite
def snaplen_cut(draw: st.DrawFn) -> HostileFrame:
    """A valid frame cut before the end of its fixed TCP header, length kept."""
    segment, _ = draw(_valid_tcp())
    ipv6 = draw(st.booleans())
    packet = ipv6_packet(segment) if ipv6 else ipv4_packet(segment)
    link_type, data = draw(_on_link(packet, ipv6))
    # The segment ends the frame, and its fixed header is its first 20 bytes.
    fixed_header_end = len(data) - len(segment) + 20
    cut = draw(st.integers(0, fixed_header_end - 1))
    wire_length = draw(st.integers(len(data), 0xFFFFFFFF))
    return HostileFrame(link_type, data[:cut], wire_length, TRUNCATED, "snaplen cut")


@st.composite
def zero_length(draw: st.DrawFn) -> HostileFrame:
    """An empty frame: truncated if the wire had bytes, malformed if not."""
    link_type = draw(st.sampled_from((ETHERNET, RAW_IP, LINUX_SLL2, NULL_LOOPBACK)))
    wire_length = draw(st.sampled_from((0, 0, 1, 60, 0xFFFFFFFF)))
    expected = TRUNCATED if wire_length else MALFORMED
    return HostileFrame(link_type, b"", wire_length, expected, "zero-length frame")


@st.composite
def ipv6_extension_loop(draw: st.DrawFn) -> HostileFrame:
    """More IPv6 extension headers than RFC 8200 allows, each naming the next."""
    count = draw(st.integers(13, 40))
    kind = draw(st.sampled_from((0, 60, 43)))
    segment, _ = draw(_valid_tcp())
    chain = b"".join(extension_header(kind) for _ in range(count - 1))
    chain += extension_header(6)
    packet = ipv6_packet(chain + segment, next_header=kind)
    link_type, data = draw(_on_link(packet, True))
    return HostileFrame(
        link_type, data, len(data), MALFORMED, "IPv6 extension header loop"
    )


@st.composite
def ipv6_extension_overrun(draw: st.DrawFn) -> HostileFrame:
    """An IPv6 extension header whose length runs past the payload length."""
    segment, _ = draw(_valid_tcp())
    units = draw(st.integers(0, 255))
    header = extension_header(6, units)
    # The payload length stops short of the header's own end.
    payload_length = draw(st.integers(2, len(header) - 1))
    packet = ipv6_packet(header + segment, next_header=60)
    packet = packet[:4] + struct.pack("!H", payload_length) + packet[6:]
    packet = packet[: 40 + payload_length]
    link_type, data = draw(_on_link(packet, True))
    return HostileFrame(
        link_type, data, len(data), MALFORMED, "IPv6 extension header overrun"
    )


@st.composite
def ipv6_jumbogram_past_frame(draw: st.DrawFn) -> HostileFrame:
    """A jumbogram (RFC 2675) whose Jumbo Payload length exceeds the frame."""
    segment, _ = draw(_valid_tcp())
    jumbo = draw(st.integers(65536, 0xFFFFFFFF))
    hop_by_hop = bytes([6, 0, 0xC2, 4]) + struct.pack("!I", jumbo)
    packet = ipv6_packet(hop_by_hop + segment, next_header=0, payload_length=0)
    link_type, data = draw(_on_link(packet, True))
    return HostileFrame(link_type, data, len(data), MALFORMED, "jumbogram past frame")


@st.composite
def jumbo_wire_length(draw: st.DrawFn) -> HostileFrame:
    """A valid frame whose wire length claims up to 4 GiB: a snaplen cut."""
    frame = draw(valid_frame())
    wire_length = draw(st.integers(65536, 0xFFFFFFFF))
    return frame._replace(wire_length=wire_length, kind="jumbo wire length")


@st.composite
def offloaded_giant(draw: st.DrawFn) -> HostileFrame:
    """IPv4 total length 0 (captured before offload), wire length up to 4 GiB.

    The decoder takes the IP length from the wire length, so the segment
    claims a payload of about 4 GiB.
    """
    segment, fields = draw(_valid_tcp())
    packet = ipv4_packet(segment, total_length=0)
    data = ethernet(packet)
    wire_length = draw(st.integers(len(data), 0xFFFFFFFF))
    payload_len = wire_length - 14 - 20 - (len(segment) - fields[-1])
    fields = (*fields[:-1], payload_len)
    return HostileFrame(ETHERNET, data, wire_length, TCP, "offloaded giant", fields)


@st.composite
def version_mismatch(draw: st.DrawFn) -> HostileFrame:
    segment, _ = draw(_valid_tcp())
    version = draw(st.integers(0, 15).filter(lambda value: value != 4))
    data = ethernet(ipv4_packet(segment, version=version))
    return HostileFrame(ETHERNET, data, len(data), MALFORMED, "IP version")


@st.composite
def not_tcp(draw: st.DrawFn) -> HostileFrame:
    """UDP, ICMP, a fragment or an unknown EtherType: counted as other."""
    segment, _ = draw(_valid_tcp())
    choice = draw(st.sampled_from(("udp", "fragment", "ethertype")))
    if choice == "udp":
        packet = ipv4_packet(segment, protocol=draw(st.sampled_from((1, 17, 50))))
        data = ethernet(packet)
    elif choice == "fragment":
        fragment = draw(st.integers(1, 0x3FFF))
        data = ethernet(ipv4_packet(segment, fragment=fragment))
    else:
        ethertype = draw(st.sampled_from((0x0806, 0x88CC, 0xFFFF, 0x0000)))
        data = ethernet(segment, ethertype)
    return HostileFrame(ETHERNET, data, len(data), NON_TCP, choice)


HOSTILE_KINDS = (
    valid_frame,
    bad_ihl,
    ihl_past_total_length,
    ip_length_past_frame,
    tcp_shorter_than_header,
    bad_data_offset,
    snaplen_cut,
    zero_length,
    ipv6_extension_loop,
    ipv6_extension_overrun,
    ipv6_jumbogram_past_frame,
    jumbo_wire_length,
    offloaded_giant,
    version_mismatch,
    not_tcp,
)


def hostile_frames() -> st.SearchStrategy[HostileFrame]:
    """Frames of every kind in ``HOSTILE_KINDS``."""
    return st.one_of(*(kind() for kind in HOSTILE_KINDS))


def _fix_wire_length(frame: HostileFrame) -> HostileFrame:
    return frame._replace(wire_length=max(frame.wire_length, len(frame.data)))


def hostile_frame_lists(max_size: int = 40) -> st.SearchStrategy[list[HostileFrame]]:
    return st.lists(
        hostile_frames().map(_fix_wire_length), min_size=1, max_size=max_size
    )


def counter_of(stats: DecodeStats, expected: str) -> int:
    return int(getattr(stats, expected))


def check_segment(segment: Segment, frame: HostileFrame) -> None:
    """Check that a decoded segment carries what the frame was built with."""
    assert frame.segment is not None
    sport, dport, seq, ack, flags, payload_len = frame.segment
    assert (segment.sport, segment.dport) == (sport, dport), frame.kind
    assert (segment.seq, segment.ack) == (seq, ack), frame.kind
    assert segment.flags == flags, frame.kind
    assert segment.payload_len == payload_len, frame.kind
    assert len(segment.payload) <= min(payload_len, 64), frame.kind
    assert len(segment.options) <= 40, frame.kind
    # Option parsing stops quietly at a malformed option.
    parse_options(segment.options)


# The pipeline -----------------------------------------------------------------


@dataclass
class PipelineRun:
    """What one run of the offline pipeline produced."""

    frames: int
    stats: DecodeStats
    records: list[dict[str, Any]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    segments: int = 0
    """Segments handed to the tracker."""
    ip_bytes: int = 0
    """Sum of the IP lengths of the segments the tracker counts."""
    tracker_connections: int = 0


def run_pipeline(
    frames: Iterable[Frame],
    *,
    validate_checksums: bool = False,
    idle_timeout: float = 300.0,
    keep_segments: bool = True,
) -> PipelineRun:
    """Decode, reorder, track and build a record for every connection."""
    decoder = Decoder(validate_checksums=validate_checksums)
    tracker = FlowTracker(idle_timeout=idle_timeout, keep_segments=keep_segments)
    frame_list = list(frames)
    run = PipelineRun(frames=len(frame_list), stats=decoder.stats)

    def counted(segments: Iterable[Segment]) -> Iterator[Segment]:
        for segment in segments:
            run.segments += 1
            if not segment.bad_checksum:
                run.ip_bytes += segment.ip_len
            yield segment

    ordered = ReorderBuffer().ordered(counted(decoder.segments(frame_list)))
    for segment in ordered:
        tracker.process(segment)
        run.connections += tracker.pop_finished()
    run.connections += tracker.flush()
    run.tracker_connections = tracker.connections
    run.records = [build_record(conn) for conn in run.connections]
    return run


def check_counted(stats: DecodeStats, frames: int) -> None:
    """Check that every frame landed in exactly one counter."""
    assert stats.frames == frames
    unsupported = sum(stats.unsupported_link.values())
    total = stats.tcp + stats.non_tcp + stats.truncated + stats.malformed
    assert total + unsupported == frames


def check_pipeline(run: PipelineRun) -> None:
    """Check that the records account for every segment the tracker saw."""
    check_counted(run.stats, run.frames)
    assert len(run.records) == run.tracker_connections
    assert len({record["uid"] for record in run.records}) == len(run.records)
    counted = run.segments - run.stats.bad_checksum
    packets = sum(record["orig_pkts"] + record["resp_pkts"] for record in run.records)
    assert packets == counted
    ip_bytes = sum(
        record["orig_ip_bytes"] + record["resp_ip_bytes"] for record in run.records
    )
    assert ip_bytes == run.ip_bytes
    for record in run.records:
        assert tuple(record) == RECORD_FIELDS
        assert record["duration"] >= 0
        assert record["orig_bytes"] >= 0
        assert record["resp_bytes"] >= 0
        assert record["missed_bytes"] >= 0


# Loopback recordings -----------------------------------------------------------


class Recording(NamedTuple):
    path: Path
    connections: int


def record_loopback(path: Path, *, snaplen: int = 4096) -> Recording:
    """Record real kernel TCP traffic on ``lo`` with tcpdump; needs root.

    The traffic: IPv4 and IPv6 exchanges of about a kilobyte closed with FIN,
    a refused connection, and one aborted with RST. No packet is longer than
    the default ``snaplen``.
    """
    if shutil.which("tcpdump") is None:
        raise RuntimeError("tcpdump is not installed")
    listeners = [_listen("127.0.0.1"), _listen("::1")]
    refused = _closed_port()
    ports = [sock.getsockname()[1] for sock in listeners] + [refused]
    expression = " or ".join(f"tcp port {port}" for port in ports)
    # Immediate mode hands each packet over at once. With the default buffer
    # and snaplen, tcpdump dropped up to two thirds of these short bursts on
    # a loaded 2-core machine. With 16 MiB (``-B`` is in KiB) and a snaplen
    # of 4096 it dropped none.
    command = ["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-B", "16384"]
    command += ["-s", str(snaplen), "-w", str(path), expression]
    tcpdump = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_until_listening(tcpdump)
        servers = [
            threading.Thread(target=_serve, args=(sock,), daemon=True)
            for sock in listeners
        ]
        for server in servers:
            server.start()
        connections = 0
        for index in range(6):
            listener = listeners[index % 2]
            _exchange(listener.getsockname()[:2], abort=index == 5)
            connections += 1
        try:
            socket.create_connection(("127.0.0.1", refused), timeout=2).close()
        except ConnectionRefusedError:
            connections += 1
        for sock in listeners:
            sock.close()
        time.sleep(0.3)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        _, stderr = tcpdump.communicate(timeout=10)
    if not re.search(r"^0 packets dropped by kernel", stderr, re.MULTILINE):
        raise RuntimeError(f"tcpdump dropped packets: {stderr!r}")
    return Recording(path, connections)


def _listen(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(8)
    sock.settimeout(5)
    return sock


def _closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def _wait_until_listening(tcpdump: subprocess.Popen[str]) -> None:
    assert tcpdump.stderr is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = tcpdump.stderr.readline()
        if "listening on" in line:
            return
        if not line and tcpdump.poll() is not None:
            break
    raise RuntimeError("tcpdump did not start listening on lo")


def _serve(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        # The client that aborts resets the connection.
        with conn, contextlib.suppress(ConnectionResetError):
            _answer(conn)


def _answer(conn: socket.socket) -> None:
    request = conn.recv(4096)
    if request.startswith(b"ABORT"):
        conn.recv(4096)
        return
    conn.sendall(b"reply " + request * 40)
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(4096):
        pass


def _exchange(address: tuple[str, int], abort: bool) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        if abort:
            sock.sendall(b"ABORT")
            time.sleep(0.05)
            # SO_LINGER with a zero timeout makes close() send RST.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            return
        sock.sendall(b"GET /fuzz [bold red]\x1b[2J\r\n")
        while sock.recv(65536):
            pass
