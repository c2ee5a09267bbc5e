"""Tests of the frame decoder on frames crafted with scapy and by hand."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Jumbo,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1Q, Ether
from scapy.packet import Raw

from tcpwatch.capture.decoder import Decoder, DecodeStats
from tcpwatch.capture.segment import ACK, FIN, PAYLOAD_PREVIEW, PSH, SYN, Segment

SYN_OPTIONS = [
    ("MSS", 1460),
    ("NOP", None),
    ("WScale", 7),
    ("NOP", None),
    ("NOP", None),
    ("SAckOK", b""),
]
SYN_OPTION_BYTES = bytes.fromhex("020405b4 01 030307 01 01 0402")


def ether(payload: object) -> bytes:
    """An Ethernet frame. A Raw payload is taken to be an IPv4 packet."""
    header = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if isinstance(payload, Raw):
        header.type = 0x0800
    return bytes(header / payload)


def ipv4_tcp(payload: bytes = b"", **tcp: object) -> IP:
    fields = {"sport": 40000, "dport": 443, "seq": 1000, "ack": 0, "flags": "S"}
    fields.update(tcp)
    return IP(src="10.0.0.1", dst="10.0.0.2") / TCP(**fields) / Raw(payload)


def ipv6_tcp(payload: bytes = b"", **tcp: object) -> TCP:
    fields = {"sport": 40000, "dport": 443, "seq": 1000, "flags": "PA"}
    fields.update(tcp)
    return TCP(**fields) / Raw(payload)


def decode(
    frame: bytes, link_type: int = 1, wire_length: int | None = None
) -> Segment | None:
    """Decode one frame with a fresh decoder, checking the counters add up."""
    decoder = Decoder()
    segment = decoder.decode(1.5, link_type, frame, wire_length or len(frame))
    assert_counters_add_up(decoder.stats)
    return segment


def decode_counted(
    frame: bytes, link_type: int = 1, wire_length: int | None = None
) -> DecodeStats:
    decoder = Decoder()
    decoder.decode(1.5, link_type, frame, wire_length or len(frame))
    assert_counters_add_up(decoder.stats)
    return decoder.stats


def assert_counters_add_up(stats: DecodeStats) -> None:
    total = (
        stats.tcp
        + stats.non_tcp
        + stats.truncated
        + stats.malformed
        + sum(stats.unsupported_link.values())
    )
    assert total == stats.frames
    assert stats.fragments <= stats.non_tcp
    assert stats.bad_checksum <= stats.tcp


# Fields of a segment ------------------------------------------------------


def test_ethernet_ipv4_syn_fields() -> None:
    frame = ether(ipv4_tcp(seq=123456789, window=29200, options=SYN_OPTIONS))

    segment = decode(frame)

    assert segment is not None
    assert segment.ts == 1.5
    assert segment.src == bytes([10, 0, 0, 1])
    assert segment.dst == bytes([10, 0, 0, 2])
    assert segment.sport == 40000
    assert segment.dport == 443
    assert segment.seq == 123456789
    assert segment.ack == 0
    assert segment.flags == SYN
    assert segment.window == 29200
    assert segment.options == SYN_OPTION_BYTES
    assert segment.payload_len == 0
    assert segment.ip_len == 20 + 20 + len(SYN_OPTION_BYTES)
    assert segment.payload == b""
    assert segment.bad_checksum is False


def test_data_segment_payload_and_flags() -> None:
    frame = ether(ipv4_tcp(b"hello world", flags="PA", ack=77))

    segment = decode(frame)

    assert segment is not None
    assert segment.flags == PSH | ACK
    assert segment.ack == 77
    assert segment.payload_len == 11
    assert segment.payload == b"hello world"


def test_payload_preview_is_capped() -> None:
    frame = ether(ipv4_tcp(bytes(range(200)), flags="A"))

    segment = decode(frame)

    assert segment is not None
    assert segment.payload_len == 200
    assert segment.payload == bytes(range(PAYLOAD_PREVIEW))


def test_ethernet_padding_not_counted_as_payload() -> None:
    # A bare ACK is 54 bytes, padded on the wire to the 60-byte minimum.
    frame = ether(ipv4_tcp(flags="A")) + bytes(6)

    segment = decode(frame)

    assert segment is not None
    assert segment.payload_len == 0
    assert segment.payload == b""
    assert segment.ip_len == 40


def test_padding_after_short_payload_excluded() -> None:
    frame = ether(ipv4_tcp(b"ab", flags="PA")) + b"\xee" * 4

    segment = decode(frame)

    assert segment is not None
    assert segment.payload_len == 2
    assert segment.payload == b"ab"


def test_ipv4_options_skipped() -> None:
    # A record-route option makes the IPv4 header 40 bytes long (IHL 10).
    packet = IP(
        src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR(routers=["1.2.3.4"] * 4)]
    )
    frame = ether(packet / TCP(sport=7, dport=8, flags="PA") / Raw(b"opt"))

    segment = decode(frame)

    assert segment is not None
    assert segment.sport == 7
    assert segment.payload == b"opt"
    assert segment.ip_len == 40 + 20 + 3


def test_fin_flag() -> None:
    segment = decode(ether(ipv4_tcp(flags="FA")))

    assert segment is not None
    assert segment.flags == FIN | ACK


# Link types -----------------------------------------------------------------


@pytest.mark.parametrize(
    "tags",
    [
        [0x8100],
        [0x88A8, 0x8100],
        [0x9100, 0x8100],
        [0x88A8, 0x88A8, 0x8100],
    ],
    ids=["802.1Q", "802.1ad QinQ", "0x9100 QinQ", "three tags"],
)
def test_ethernet_vlan_tags_stacked(tags: list[int]) -> None:
    # Each tag is a TPID and a TCI. The EtherType after the last tag is IPv4.
    header = bytes(6) + bytes(6)
    for tpid in tags:
        header += struct.pack("!H", tpid)
        header += struct.pack("!H", 42)
    frame = header + b"\x08\x00" + bytes(ipv4_tcp(b"x", flags="PA"))

    segment = decode(frame)

    assert segment is not None
    assert segment.payload == b"x"
    assert segment.sport == 40000


def test_ethernet_dot1q_built_by_scapy() -> None:
    frame = bytes(Ether() / Dot1Q(vlan=7) / ipv4_tcp(b"q", flags="PA"))

    segment = decode(frame)

    assert segment is not None
    assert segment.payload == b"q"


def test_linux_cooked_v1() -> None:
    frame = bytes(CookedLinux(proto=0x0800) / ipv4_tcp(b"sll", flags="PA"))

    segment = decode(frame, link_type=113)

    assert segment is not None
    assert segment.payload == b"sll"


def test_linux_cooked_v2_ipv6() -> None:
    packet = IPv6(src="::1", dst="::2") / ipv6_tcp(b"sll2")
    frame = bytes(CookedLinuxV2(proto=0x86DD) / packet)

    segment = decode(frame, link_type=276)

    assert segment is not None
    assert segment.src == bytes(15) + b"\x01"
    assert segment.payload == b"sll2"


@pytest.mark.parametrize("link_type", [101, 12, 14])
def test_raw_ip_link_types(link_type: int) -> None:
    v4 = decode(bytes(ipv4_tcp(b"4", flags="PA")), link_type=link_type)
    v6 = decode(bytes(IPv6() / ipv6_tcp(b"6")), link_type=link_type)

    assert v4 is not None
    assert v4.payload == b"4"
    assert v6 is not None
    assert v6.payload == b"6"


def test_linktype_ipv4_and_ipv6() -> None:
    v4 = decode(bytes(ipv4_tcp(b"4", flags="PA")), link_type=228)
    v6 = decode(bytes(IPv6() / ipv6_tcp(b"6")), link_type=229)

    assert v4 is not None
    assert v4.payload == b"4"
    assert v6 is not None
    assert v6.payload == b"6"


def test_linktype_ipv4_with_ipv6_packet_is_malformed() -> None:
    stats = decode_counted(bytes(IPv6() / ipv6_tcp()), link_type=228)

    assert stats.malformed == 1


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("family", [24, 28, 30])
def test_null_loopback_ipv6_families(byteorder: str, family: int) -> None:
    frame = struct.pack(byteorder + "I", family) + bytes(IPv6() / ipv6_tcp(b"n"))

    segment = decode(frame, link_type=0)

    assert segment is not None
    assert segment.payload == b"n"


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_null_loopback_ipv4(byteorder: str) -> None:
    frame = struct.pack(byteorder + "I", 2) + bytes(ipv4_tcp(b"n", flags="PA"))

    segment = decode(frame, link_type=0)

    assert segment is not None
    assert segment.payload == b"n"


def test_loop_linktype_network_byte_order() -> None:
    v4 = decode(struct.pack("!I", 2) + bytes(ipv4_tcp(flags="A")), link_type=108)
    v6 = decode(struct.pack("!I", 30) + bytes(IPv6() / ipv6_tcp()), link_type=108)

    assert v4 is not None
    assert v6 is not None


def test_null_loopback_unknown_family_is_other() -> None:
    stats = decode_counted(struct.pack("<I", 7) + bytes(20), link_type=0)

    assert stats.non_tcp == 1


def test_unsupported_link_type_counted_per_type() -> None:
    decoder = Decoder()
    frame = ether(ipv4_tcp())

    decoder.decode(0.0, 147, frame, len(frame))
    decoder.decode(0.0, 147, frame, len(frame))
    decoder.decode(0.0, 105, frame, len(frame))

    assert decoder.stats.unsupported_link == {147: 2, 105: 1}
    assert decoder.stats.frames == 3
    assert decoder.stats.tcp == 0


# Non-TCP traffic --------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        IP() / UDP(),
        IP() / ICMP(),
        IPv6() / UDP(),
        ARP(),
    ],
    ids=["UDP", "ICMP", "UDP over IPv6", "ARP"],
)
def test_non_tcp_counted_as_other(payload: object) -> None:
    stats = decode_counted(ether(payload))

    assert stats.non_tcp == 1
    assert stats.tcp == 0


def test_ipv4_fragments_counted() -> None:
    first = IP(flags="MF", frag=0, proto=6) / Raw(bytes(40))
    later = IP(flags=0, frag=5, proto=6) / Raw(bytes(40))
    decoder = Decoder()

    for packet in (first, later):
        frame = ether(packet)
        assert decoder.decode(0.0, 1, frame, len(frame)) is None

    assert decoder.stats.fragments == 2
    assert decoder.stats.non_tcp == 2


def test_ipv4_dont_fragment_is_not_a_fragment() -> None:
    segment = decode(ether(IP(flags="DF") / TCP()))

    assert segment is not None


# IPv6 extension headers ---------------------------------------------------


def generic_extension(next_header: int, units: int = 0) -> bytes:
    """An extension header whose length byte counts 8-octet units after the first."""
    return bytes([next_header, units]) + bytes(6 + 8 * units)


def ipv6_with_chain(
    first: int, chain: bytes, tcp: bytes, payload_length: int | None = None
) -> bytes:
    body = chain + tcp
    length = len(body) if payload_length is None else payload_length
    header = struct.pack("!IHBB", 6 << 28, length, first, 64)
    return header + bytes(15) + b"\x01" + bytes(15) + b"\x02" + body


TCP_BYTES = bytes(TCP(sport=5, dport=6, flags="PA") / Raw(b"ext"))


def test_ipv6_extension_headers_built_by_scapy() -> None:
    packet = (
        IPv6()
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / ipv6_tcp(b"ext")
    )

    segment = decode(ether(packet))

    assert segment is not None
    assert segment.payload_len == 3
    assert segment.ip_len == 40 + 8 + 8 + 8 + 20 + 3


@pytest.mark.parametrize(
    ("first", "chain"),
    [
        (0, generic_extension(6, 1)),
        (43, generic_extension(60) + generic_extension(6, 2)),
        (60, generic_extension(6)),
        (135, generic_extension(6, 3)),
        # AH: length in 4-octet units minus 2, here (4 + 2) * 4 = 24 bytes.
        (51, bytes([6, 4]) + bytes(22)),
        (44, struct.pack("!BBHI", 6, 0, 0, 99)),
    ],
    ids=["hop-by-hop", "routing+dest", "dest", "mobility", "AH", "atomic fragment"],
)
def test_ipv6_extension_header_walk(first: int, chain: bytes) -> None:
    frame = ipv6_with_chain(first, chain, TCP_BYTES)

    segment = decode(frame, link_type=101)

    assert segment is not None
    assert segment.sport == 5
    assert segment.payload_len == 3
    assert segment.payload == b"ext"
    assert segment.ip_len == len(frame)


@pytest.mark.parametrize(
    ("offset", "more"), [(0, 1), (10, 0), (10, 1)], ids=["first", "last", "middle"]
)
def test_ipv6_fragments_counted(offset: int, more: int) -> None:
    chain = struct.pack("!BBHI", 6, 0, offset << 3 | more, 99)

    stats = decode_counted(ipv6_with_chain(44, chain, TCP_BYTES), link_type=101)

    assert stats.fragments == 1
    assert stats.non_tcp == 1


def test_ipv6_fragment_built_by_scapy() -> None:
    packet = IPv6() / IPv6ExtHdrFragment(offset=0, m=1) / ipv6_tcp(b"frag")

    stats = decode_counted(ether(packet))

    assert stats.fragments == 1


def test_ipv6_no_next_header_is_other() -> None:
    stats = decode_counted(
        ipv6_with_chain(60, generic_extension(59), b""), link_type=101
    )

    assert stats.non_tcp == 1


def test_ipv6_esp_is_other() -> None:
    stats = decode_counted(ipv6_with_chain(50, bytes(16), b""), link_type=101)

    assert stats.non_tcp == 1


def test_ipv6_extension_chain_overrun_is_malformed() -> None:
    # The routing header claims 5 * 8 + 8 bytes, more than the payload length.
    frame = ipv6_with_chain(43, bytes([6, 5]) + bytes(6), TCP_BYTES)

    stats = decode_counted(frame, link_type=101)

    assert stats.malformed == 1


def test_ipv6_extension_chain_too_long_is_malformed() -> None:
    chain = generic_extension(60) * 20 + generic_extension(6)

    stats = decode_counted(ipv6_with_chain(60, chain, TCP_BYTES), link_type=101)

    assert stats.malformed == 1


def test_ipv6_extension_header_cut_by_snaplen_is_truncated() -> None:
    frame = ipv6_with_chain(0, generic_extension(6, 4), TCP_BYTES)

    stats = decode_counted(frame[:50], link_type=101, wire_length=len(frame))

    assert stats.truncated == 1


# Snaplen, segmentation offload --------------------------------------------


def test_snaplen_cut_after_tcp_header_keeps_true_length() -> None:
    frame = ether(ipv4_tcp(bytes(1000), flags="PA"))

    segment = decode(frame[:64], wire_length=len(frame))

    assert segment is not None
    assert segment.payload_len == 1000
    assert segment.ip_len == 1040
    assert segment.payload == bytes(10)


def test_snaplen_cut_inside_options_keeps_segment() -> None:
    frame = ether(ipv4_tcp(options=SYN_OPTIONS))

    segment = decode(frame[:58], wire_length=len(frame))

    assert segment is not None
    assert segment.flags == SYN
    assert segment.options == SYN_OPTION_BYTES[:4]


@pytest.mark.parametrize("snaplen", [10, 20, 40, 53])
def test_snaplen_cut_before_tcp_header_end_is_truncated(snaplen: int) -> None:
    frame = ether(ipv4_tcp(b"data", flags="PA"))

    stats = decode_counted(frame[:snaplen], wire_length=len(frame))

    assert stats.truncated == 1
    assert stats.malformed == 0


def test_ipv4_total_length_zero_takes_wire_length() -> None:
    packet = bytearray(bytes(ipv4_tcp(bytes(3000), flags="A")))
    packet[2:4] = b"\x00\x00"  # as captured before TSO
    frame = ether(Raw(bytes(packet)))
    wire = len(frame) + 70000

    segment = decode(frame[:200], wire_length=wire)

    assert segment is not None
    assert segment.ip_len == wire - 14
    assert segment.payload_len == wire - 14 - 40


def test_ipv6_payload_length_zero_takes_wire_length() -> None:
    frame = ipv6_with_chain(6, b"", TCP_BYTES, payload_length=0)

    segment = decode(frame, link_type=101, wire_length=len(frame) + 1000)

    assert segment is not None
    assert segment.payload_len == 3 + 1000
    assert segment.ip_len == len(frame) + 1000


def test_ipv6_jumbogram_length_from_option() -> None:
    jumbo = 8 + len(TCP_BYTES) + 70000
    packet = IPv6(plen=0) / IPv6ExtHdrHopByHop(options=[Jumbo(jumboplen=jumbo)])
    frame = bytes(packet / TCP(sport=5, dport=6, flags="A"))

    segment = decode(frame[:120], link_type=101, wire_length=40 + jumbo)

    assert segment is not None
    assert segment.ip_len == 40 + jumbo
    assert segment.payload_len == jumbo - 8 - 20


# Malformed headers -----------------------------------------------------------


def ipv4_bytes(payload: bytes = b"") -> bytearray:
    return bytearray(bytes(ipv4_tcp(payload, flags="PA")))


def with_bytes(packet: bytearray, offset: int, value: bytes) -> bytes:
    packet[offset : offset + len(value)] = value
    return bytes(packet)


@pytest.mark.parametrize(
    "packet",
    [
        with_bytes(ipv4_bytes(), 0, b"\x44"),  # IHL 4
        with_bytes(ipv4_bytes(), 0, b"\x65"),  # version 6 after EtherType IPv4
        with_bytes(ipv4_bytes(), 2, b"\x00\x10"),  # total length 16 < 20
        with_bytes(ipv4_bytes(), 2, b"\x05\xdc"),  # total length beyond frame
        with_bytes(ipv4_bytes(), 2, b"\x00\x1e"),  # 10 bytes left for TCP
        with_bytes(ipv4_bytes(), 32, b"\x40"),  # TCP data offset 4
        with_bytes(ipv4_bytes(b"abc"), 32, b"\xf0"),  # data offset 15 > segment
        bytes(ipv4_bytes())[:30],  # frame ends inside the IPv4 header
    ],
    ids=[
        "IHL below 5",
        "version mismatch",
        "total length below header",
        "total length beyond frame",
        "no room for TCP header",
        "data offset below 5",
        "data offset beyond segment",
        "runt frame",
    ],
)
def test_malformed_ipv4_tcp_counted(packet: bytes) -> None:
    stats = decode_counted(ether(Raw(packet)))

    assert stats.malformed == 1
    assert stats.tcp == 0


def test_ipv6_version_mismatch_is_malformed() -> None:
    frame = bytes(Ether(type=0x86DD) / ipv4_tcp())

    stats = decode_counted(frame)

    assert stats.malformed == 1


def test_raw_ip_unknown_version_is_malformed() -> None:
    stats = decode_counted(b"\x50" + bytes(39), link_type=101)

    assert stats.malformed == 1


# Checksums -------------------------------------------------------------------


def decode_checked(
    frame: bytes, link_type: int = 1, wire_length: int | None = None
) -> Segment:
    decoder = Decoder(validate_checksums=True)
    segment = decoder.decode(0.0, link_type, frame, wire_length or len(frame))
    assert segment is not None
    assert decoder.stats.bad_checksum == int(segment.bad_checksum)
    return segment


def flip_last_byte(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


def test_checksum_valid_ipv4_odd_payload() -> None:
    frame = ether(ipv4_tcp(b"odd", flags="PA"))

    assert decode_checked(frame).bad_checksum is False


def test_checksum_bad_tcp_ipv4() -> None:
    frame = flip_last_byte(ether(ipv4_tcp(b"odd", flags="PA")))

    assert decode_checked(frame).bad_checksum is True


def test_checksum_bad_ipv4_header() -> None:
    packet = bytearray(bytes(ipv4_tcp(flags="A")))
    packet[8] = 1  # TTL changed, header checksum left as it was
    frame = ether(Raw(bytes(packet)))

    assert decode_checked(frame).bad_checksum is True


def test_checksum_ipv6_with_extension_headers() -> None:
    packet = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt()
    frame = ether(packet / ipv6_tcp(b"even"))

    assert decode_checked(frame).bad_checksum is False
    assert decode_checked(flip_last_byte(frame)).bad_checksum is True


def test_checksum_cut_frame_treated_as_valid() -> None:
    frame = flip_last_byte(ether(ipv4_tcp(bytes(100), flags="PA")))

    segment = decode_checked(frame[:80], wire_length=len(frame))

    assert segment.bad_checksum is False


def test_checksum_not_checked_by_default() -> None:
    frame = flip_last_byte(ether(ipv4_tcp(b"odd", flags="PA")))

    segment = decode(frame)

    assert segment is not None
    assert segment.bad_checksum is False


# Stats ------------------------------------------------------------------------


def test_summary_line() -> None:
    stats = DecodeStats(
        frames=12345,
        tcp=12001,
        non_tcp=300,
        truncated=40,
        malformed=4,
        fragments=12,
        bad_checksum=3,
        unsupported_link={147: 5},
    )

    line = stats.summary()

    assert line.startswith("12,345 frames: 12,001 TCP, 300 other (12 IP fragments)")
    assert "40 truncated, 4 malformed" in line
    assert "3 with bad checksums" in line
    assert "5 on unsupported link types (147: 5)" in line


def test_summary_line_plain() -> None:
    stats = DecodeStats(frames=3, tcp=2, non_tcp=1)

    assert stats.summary() == "3 frames: 2 TCP, 1 other, 0 truncated, 0 malformed"


# Never raises ----------------------------------------------------------------

LINK_TYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]

VALID_FRAMES = [
    (1, ether(ipv4_tcp(b"payload", options=SYN_OPTIONS))),
    (1, ether(IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / ipv6_tcp(b"x"))),
    (1, bytes(Ether() / Dot1Q() / Dot1Q() / ipv4_tcp(b"vlan"))),
    (113, bytes(CookedLinux(proto=0x0800) / ipv4_tcp())),
    (276, bytes(CookedLinuxV2(proto=0x86DD) / IPv6() / ipv6_tcp())),
    (
        101,
        ipv6_with_chain(
            51, bytes([44, 1]) + bytes(10), struct.pack("!BBHI", 6, 0, 0, 1) + TCP_BYTES
        ),
    ),
    (0, struct.pack("<I", 30) + bytes(IPv6() / ipv6_tcp(b"null"))),
]


@settings(max_examples=2000, deadline=None)
@given(
    link_type=st.sampled_from(LINK_TYPES),
    data=st.binary(max_size=200),
    extra=st.integers(min_value=0, max_value=100),
)
def test_random_bytes_never_raise(link_type: int, data: bytes, extra: int) -> None:
    decoder = Decoder(validate_checksums=True)

    decoder.decode(0.0, link_type, data, len(data) + extra)

    assert decoder.stats.frames == 1
    assert_counters_add_up(decoder.stats)


@settings(max_examples=3000, deadline=None)
@given(
    sample=st.sampled_from(VALID_FRAMES),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=200), st.integers(0, 255)),
        max_size=6,
    ),
    cut=st.integers(min_value=0, max_value=200),
    extra=st.integers(min_value=0, max_value=3),
)
def test_mutated_frames_never_raise(
    sample: tuple[int, bytes], edits: list[tuple[int, int]], cut: int, extra: int
) -> None:
    link_type, frame = sample
    mutated = bytearray(frame)
    for position, value in edits:
        if position < len(mutated):
            mutated[position] = value
    data = bytes(mutated[:cut])
    decoder = Decoder(validate_checksums=True)

    decoder.decode(0.0, link_type, data, len(data) + extra)

    assert decoder.stats.frames == 1
    assert_counters_add_up(decoder.stats)


# The stream decoder ------------------------------------------------------------


Frames = list[tuple[float, int, bytes, int, int]]


def decode_each(frames: Frames) -> tuple[list[Segment], DecodeStats]:
    """Decode frames one ``decode`` call at a time: the reference for ``segments``."""
    decoder = Decoder()
    segments = []
    for frame in frames:
        segment = decoder.decode(*frame)
        if segment is not None:
            segments.append(segment)
    return segments, decoder.stats


@settings(max_examples=1500, deadline=None)
@given(
    samples=st.lists(
        st.tuples(
            st.sampled_from(VALID_FRAMES),
            st.lists(
                st.tuples(st.integers(min_value=0, max_value=80), st.integers(0, 255)),
                max_size=3,
            ),
            st.integers(min_value=0, max_value=200),
            st.integers(min_value=0, max_value=3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_segments_match_decode_on_mutated_frames(
    samples: list[tuple[tuple[int, bytes], list[tuple[int, int]], int, int]],
) -> None:
    frames = []
    for (link_type, frame), edits, cut, extra in samples:
        mutated = bytearray(frame)
        for position, value in edits:
            if position < len(mutated):
                mutated[position] = value
        data = bytes(mutated[:cut])
        frames.append((2.5, link_type, data, len(data) + extra, 0))
    expected_segments, expected_stats = decode_each(frames)
    decoder = Decoder()

    segments = list(decoder.segments(frames))

    assert segments == expected_segments
    assert decoder.stats == expected_stats


def test_segments_counts_inline_frames_when_closed() -> None:
    frame = ether(ipv4_tcp(b"hello", flags="PA"))
    decoder = Decoder()
    stream = decoder.segments([(1.0, 1, frame, len(frame), 0)] * 3)

    first = next(stream)
    stream.close()

    assert first.payload == b"hello"
    assert decoder.stats.frames == 1
    assert decoder.stats.tcp == 1


def test_segments_with_checksum_validation_flags_bad_ones() -> None:
    packet = bytearray(bytes(ipv4_tcp(b"data", flags="PA")))
    packet[36] ^= 0xFF  # corrupt the TCP checksum
    frame = ether(Raw(bytes(packet)))
    decoder = Decoder(validate_checksums=True)

    segments = list(decoder.segments([(1.0, 1, frame, len(frame), 0)]))

    assert segments[0].bad_checksum
    assert decoder.stats.bad_checksum == 1


# Options cut by the snaplen ---------------------------------------------------


def syn_frame() -> bytes:
    return ether(ipv4_tcp(options=[("MSS", 1460), ("WScale", 7), ("SAckOK", b"")]))


@pytest.mark.parametrize("path", ["segments", "decode"])
def test_decoder_counts_syn_with_options_cut(path: str) -> None:
    whole = syn_frame()
    cut = whole[: 14 + 20 + 20 + 3]  # three option bytes of the SYN's eight
    decoder = Decoder()
    if path == "segments":
        segments = list(decoder.segments([(1.0, 1, cut, len(whole), 0)]))
    else:
        segments = [decoder.decode(1.0, 1, cut, len(whole))]
    assert len(segments) == 1
    assert decoder.stats.syn_options_cut == 1
    assert decoder.stats.truncated == 0
    assert "1 SYN with options cut by the snaplen" in decoder.stats.summary()


def test_decoder_whole_options_not_counted_as_cut() -> None:
    decoder = Decoder()
    list(decoder.segments([(1.0, 1, syn_frame(), len(syn_frame()), 0)]))
    assert decoder.stats.syn_options_cut == 0
    assert "snaplen" not in decoder.stats.summary()


def test_summary_line_one_frame() -> None:
    stats = DecodeStats(frames=1, tcp=1)

    assert stats.summary() == "1 frame: 1 TCP, 0 other, 0 truncated, 0 malformed"
