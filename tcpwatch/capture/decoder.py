"""Decode captured frames into TCP segments.

``Decoder.decode`` takes one frame, walks its link, IP and TCP headers, and
returns a ``Segment`` or None. It never raises on frame content. Every frame
lands in exactly one of the counters ``tcp``, ``non_tcp``, ``truncated``,
``malformed`` or ``unsupported_link`` of ``DecodeStats``:

- truncated: the snaplen cut the frame before the end of the fixed 20-byte TCP
  header, so no segment can be formed. A frame cut inside the TCP options still
  gives a segment, whose ``options`` are cut short.
- malformed: a header lies. Examples are an IPv4 IHL below 5, an IP version
  that does not match the link layer, an IP length shorter than its header or
  longer than the frame, a TCP data offset below 5, or an IPv6 extension header
  chain that runs past the payload length.

The common path (Ethernet, IPv4, TCP) runs in one method with no calls but
``struct`` unpacking and slicing, because it runs once per packet. Rare cases
(IPv6 extension headers, jumbograms, errors, checksums) live in helpers.
``Decoder.segments`` decodes a whole stream of frames and repeats the common
path inline, which saves a method call per frame on file reads.

Link types are numbered as in the tcpdump.org LINKTYPE_* registry.
"""

import logging
import struct
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from tcpwatch.capture.segment import PAYLOAD_PREVIEW, Frame, Segment

logger = logging.getLogger("tcpwatch.capture")

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW values that some BSDs write into capture files in place of 101.
_RAW_ALIASES = (12, 14)

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD

# BSD address family values for IPv6 in LINKTYPE_NULL and LINKTYPE_LOOP headers:
# 24 on NetBSD and OpenBSD, 28 on FreeBSD, 30 on macOS.
_AF_INET = 2
_AF_INET6 = frozenset((24, 28, 30))

_PROTO_TCP = 6
_SYN_FLAG = 0x02

# IPv6 extension headers whose length byte counts 8-octet units beyond the first
# (RFC 8200 section 4): hop-by-hop options, routing, destination options,
# mobility (RFC 6275), HIP (RFC 7401), shim6 (RFC 5533), and the two
# experimental numbers (RFC 3692).
_IPV6_GENERIC_EXTENSIONS = frozenset((0, 43, 60, 135, 139, 140, 253, 254))
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_IPV6_NO_NEXT_HEADER = 59
# Bound on the extension header walk. RFC 8200 section 4.1 allows each kind
# once, and destination options twice, so a longer chain is malformed.
_MAX_IPV6_EXTENSIONS = 12

# IPv4 header (RFC 791 section 3.1) without options: version and IHL, total
# length, flags and fragment offset, protocol, source, destination.
_IPV4 = struct.Struct("!BxHxxHxBxx4s4s")

# TCP header (RFC 9293 section 3.1) up to the checksum: source port,
# destination port, sequence number, acknowledgment number, data offset byte,
# flags byte, window.
_TCP = struct.Struct("!HHIIBBH")

# The fields of _IPV4 and _TCP in one unpack, for the common frame: an IPv4
# header without options (IHL 5), from its total length on, then TCP.
_IPV4_TCP = struct.Struct("!xxHxxHxBxx4s4sHHIIBBH")

# Segment is a NamedTuple. Building it with tuple.__new__ skips the generated
# Python __new__, which took 200 ns more per call under timeit on Python 3.11.
# The field order must match the Segment class.
_new_segment = tuple.__new__


@dataclass(slots=True)
class DecodeStats:
    """Counters of decoded frames.

    ``frames`` equals ``tcp + non_tcp + truncated + malformed`` plus the sum of
    ``unsupported_link``. ``fragments`` is a part of ``non_tcp`` and
    ``bad_checksum`` a part of ``tcp``.
    """

    frames: int = 0
    tcp: int = 0
    """Frames decoded into a segment."""
    non_tcp: int = 0
    """Frames that carry no analysable TCP: non-IP, UDP, ICMP, fragments, ESP."""
    truncated: int = 0
    """Frames cut by the snaplen before the end of the fixed TCP header."""
    malformed: int = 0
    """Frames whose headers contradict each other or the frame length."""
    bad_checksum: int = 0
    """Segments with a wrong IPv4 header or TCP checksum (validation on only)."""
    fragments: int = 0
    """IP fragments, first ones included. tcpwatch does not reassemble them."""
    unsupported_link: dict[int, int] = field(default_factory=dict)
    """Frame count per link type number that the decoder cannot read."""
    syn_options_cut: int = 0
    """SYN segments whose TCP options the snaplen cut: the options they
    offered (window scale, MSS, SACK, timestamps) are not all known."""

    def summary(self) -> str:
        """Return a one-line account of the counters.

        For example ``1,204 frames: 1,190 TCP, 10 other, 3 truncated, 1 malformed``.
        Bad checksums, fragments and unsupported link types appear when nonzero.
        """
        other = f"{self.non_tcp:,} other"
        if self.fragments:
            other += f" ({self.fragments:,} IP fragments)"
        parts = [
            f"{self.tcp:,} TCP",
            other,
            f"{self.truncated:,} truncated",
            f"{self.malformed:,} malformed",
        ]
        if self.bad_checksum:
            parts.append(f"{self.bad_checksum:,} with bad checksums")
        if self.syn_options_cut:
            noun = "SYN" if self.syn_options_cut == 1 else "SYNs"
            parts.append(
                f"{self.syn_options_cut:,} {noun} with options cut by the snaplen "
                "(window scaling unknown: capture with a larger -s)"
            )
        if self.unsupported_link:
            counts = ", ".join(
                f"{link_type}: {count:,}"
                for link_type, count in sorted(self.unsupported_link.items())
            )
            unsupported = sum(self.unsupported_link.values())
            parts.append(f"{unsupported:,} on unsupported link types ({counts})")
        frames = "frame" if self.frames == 1 else "frames"
        return f"{self.frames:,} {frames}: " + ", ".join(parts)


class Decoder:
    """Turn captured frames into ``Segment`` records and count what it saw.

    With ``validate_checksums``, the IPv4 header checksum and the TCP checksum
    are verified, and a wrong one gives a segment with ``bad_checksum=True``.
    The TCP checksum is treated as valid when the snaplen cut the segment, and
    both checksums when the packet was captured before segmentation offload
    (IPv4 total length or IPv6 payload length 0), because they cannot be
    checked then. Validation is off by default because captures taken on the
    sending host often show TCP checksums that the network card fills in
    later. On Linux loopback every TCP checksum is left unfinished this way,
    and ``tcpdump -vv`` reports them as incorrect too.
    """

    __slots__ = ("validate_checksums", "stats")

    def __init__(self, validate_checksums: bool = False) -> None:
        self.validate_checksums = validate_checksums
        self.stats = DecodeStats()

    def decode(
        self,
        ts: float,
        link_type: int,
        data: bytes,
        wire_length: int,
        interface: int = 0,
    ) -> Segment | None:
        """Decode one frame. Return its TCP segment, or None when it has none.

        ``interface`` is accepted so that a ``Frame`` tuple can be passed with
        ``decode(*frame)``, and is not used.
        """
        stats = self.stats
        stats.frames += 1
        size = len(data)
        if wire_length < size:
            wire_length = size

        # Link layer: find the start of the IP header and the EtherType (or the
        # equivalent) that identifies the IP version.
        if link_type == LINKTYPE_ETHERNET:
            # Ethernet II: destination (6), source (6), EtherType (2). 802.1Q and
            # 802.1ad tags (4 each: TPID, TCI) may be stacked before the EtherType.
            if size < 14:
                self._cut_short(size, wire_length, ts, "Ethernet header")
                return None
            ethertype = data[12] << 8 | data[13]
            ip = 14
            while ethertype == 0x8100 or ethertype == 0x88A8 or ethertype == 0x9100:
                if size < ip + 4:
                    self._cut_short(size, wire_length, ts, "VLAN tag")
                    return None
                ethertype = data[ip + 2] << 8 | data[ip + 3]
                ip += 4
        elif link_type == LINKTYPE_LINUX_SLL:
            # Linux cooked v1: packet type (2), ARPHRD type (2), address length
            # (2), address (8), protocol (2, an EtherType).
            if size < 16:
                self._cut_short(size, wire_length, ts, "Linux cooked header")
                return None
            ethertype = data[14] << 8 | data[15]
            ip = 16
        elif link_type == LINKTYPE_LINUX_SLL2:
            # Linux cooked v2: protocol (2), reserved (2), interface index (4),
            # ARPHRD type (2), packet type (1), address length (1), address (8).
            if size < 20:
                self._cut_short(size, wire_length, ts, "Linux cooked v2 header")
                return None
            ethertype = data[0] << 8 | data[1]
            ip = 20
        else:
            ethertype, ip = self._other_link_layer(link_type, data, wire_length, ts)
            if ip < 0:
                return None

        if ethertype == _ETHERTYPE_IPV4:
            # IPv4 (RFC 791 section 3.1): version and IHL, TOS, total length,
            # id, flags and fragment offset, TTL, protocol, header checksum,
            # source, destination, options.
            if size < ip + 20:
                self._cut_short(size, wire_length, ts, "IPv4 header")
                return None
            first, ip_len, fragment, protocol, src, dst = _IPV4.unpack_from(data, ip)
            if first >> 4 != 4:
                self._malformed(ts, f"IP version {first >> 4} in an IPv4 frame")
                return None
            header_len = (first & 0x0F) * 4
            if header_len < 20:
                self._malformed(ts, f"IPv4 IHL {header_len // 4} below 5")
                return None
            offloaded = ip_len == 0
            if offloaded:
                # A packet captured before segmentation offload (TSO/GSO), such
                # as a Linux BIG TCP packet over 64 KiB, can have total length
                # 0. Its length is then taken from the frame.
                ip_len = wire_length - ip
            if ip_len < header_len or ip + ip_len > wire_length:
                reason = f"IPv4 total length {ip_len} does not fit the frame"
                self._malformed(ts, reason)
                return None
            if size < ip + header_len:
                self._cut_short(size, wire_length, ts, "IPv4 options")
                return None
            # More-fragments flag or a fragment offset: not analysable.
            if fragment & 0x3FFF:
                stats.fragments += 1
                stats.non_tcp += 1
                return None
            if protocol != _PROTO_TCP:
                stats.non_tcp += 1
                return None
            tcp = ip + header_len
            tcp_len = ip_len - header_len
        elif ethertype == _ETHERTYPE_IPV6:
            # IPv6 (RFC 8200 section 3): version, traffic class and flow label
            # (4), payload length (2), next header (1), hop limit (1), source
            # (16), destination (16).
            if size < ip + 40:
                self._cut_short(size, wire_length, ts, "IPv6 header")
                return None
            if data[ip] >> 4 != 6:
                self._malformed(ts, f"IP version {data[ip] >> 4} in an IPv6 frame")
                return None
            payload_length = data[ip + 4] << 8 | data[ip + 5]
            offloaded = payload_length == 0
            if offloaded:
                payload_length = self._ipv6_zero_length(data, ip, wire_length)
            ip_len = 40 + payload_length
            if ip + ip_len > wire_length:
                reason = f"IPv6 payload length {payload_length} does not fit the frame"
                self._malformed(ts, reason)
                return None
            src = data[ip + 8 : ip + 24]
            dst = data[ip + 24 : ip + 40]
            tcp = ip + 40
            if data[ip + 6] != _PROTO_TCP:
                tcp = self._walk_ipv6_extensions(data, ip, ip_len, wire_length, ts)
                if tcp < 0:
                    return None
            tcp_len = ip + ip_len - tcp
        else:
            stats.non_tcp += 1
            return None

        # TCP (RFC 9293 section 3.1). Lengths come from the IP header, so
        # Ethernet padding after the IP packet is never counted as payload.
        if tcp_len < 20:
            self._malformed(ts, f"{tcp_len} bytes of IP payload for TCP")
            return None
        if size < tcp + 20:
            self._cut_short(size, wire_length, ts, "TCP header")
            return None
        sport, dport, seq, ack, data_offset, flags, window = _TCP.unpack_from(data, tcp)
        header_len = (data_offset >> 4) * 4
        if header_len < 20 or header_len > tcp_len:
            reason = f"TCP data offset {header_len // 4} with {tcp_len} bytes of TCP"
            self._malformed(ts, reason)
            return None
        start = tcp + header_len
        if start > size and flags & _SYN_FLAG:
            stats.syn_options_cut += 1
        payload_len = tcp_len - header_len
        preview_end = start + (
            payload_len if payload_len < PAYLOAD_PREVIEW else PAYLOAD_PREVIEW
        )
        bad_checksum = False
        if self.validate_checksums and not offloaded:
            bad_checksum = _checksum_is_bad(data, ip, tcp, tcp_len, src, dst)
            if bad_checksum:
                stats.bad_checksum += 1
        stats.tcp += 1
        return _new_segment(
            Segment,
            (
                ts,
                src,
                dst,
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload_len,
                ip_len,
                data[tcp + 20 : start],
                data[start:preview_end],
                bad_checksum,
            ),
        )

    def segments(self, frames: Iterable[Frame]) -> Generator[Segment, None, None]:
        """Decode a stream of frames and yield their TCP segments.

        The segments and the counters are the same as from calling ``decode``
        on each frame. This is the faster way for a whole capture: the common
        frame (Ethernet, IPv4 without options or fragmentation, TCP,
        checksums not validated) is decoded here without a call per frame, and
        any other frame goes through ``decode``. The common frames are added to
        ``stats.frames`` and ``stats.tcp`` when the iteration ends or is closed.
        """
        decode = self.decode
        unpack_ipv4_tcp = _IPV4_TCP.unpack_from
        inline = not self.validate_checksums
        decoded_inline = 0
        # The header fields that are computed with, typed: compiled with mypyc
        # (tools/compile.py), each then becomes a machine integer instead of a
        # Python object. The fields only copied into the segment (timestamp,
        # ports, sequence numbers, flags, window) are left as the objects
        # struct made, because converting them to machine numbers and back
        # would allocate each of them a second time.
        ip_len: int
        fragment: int
        protocol: int
        offset: int
        link_type: int
        data: bytes
        wire_length: int
        untyped_frames: Iterable[tuple[Any, ...]] = frames
        try:
            for ts, link_type, data, wire_length, interface in untyped_frames:
                # Ethernet II with EtherType IPv4, an IPv4 header without
                # options (version 4, IHL 5), long enough for it and a TCP
                # header without options. Bytes are compared one at a time,
                # because a slice would be a new object for every frame.
                if (
                    inline
                    and link_type == LINKTYPE_ETHERNET
                    and len(data) >= 54
                    and data[12] == 0x08
                    and data[13] == 0x00
                    and data[14] == 0x45
                ):
                    (
                        ip_len,
                        fragment,
                        protocol,
                        src,
                        dst,
                        sport,
                        dport,
                        seq,
                        ack,
                        offset,
                        flags,
                        window,
                    ) = unpack_ipv4_tcp(data, 14)
                    tcp = 34
                    tcp_len = ip_len - 20
                    # The checks of ``decode`` that a valid frame passes; a frame
                    # that fails any of them is left to ``decode`` to count.
                    if (
                        protocol == _PROTO_TCP
                        and not fragment & 0x3FFF
                        and tcp_len >= 20
                        and 14 + ip_len <= max(wire_length, len(data))
                    ):
                        tcp_header_len = (offset >> 4) * 4
                        if 20 <= tcp_header_len <= tcp_len:
                            start = tcp + tcp_header_len
                            if start > len(data) and flags & _SYN_FLAG:
                                self.stats.syn_options_cut += 1
                            payload_len = tcp_len - tcp_header_len
                            preview = min(payload_len, PAYLOAD_PREVIEW)
                            decoded_inline += 1
                            yield _new_segment(
                                Segment,
                                (
                                    ts,
                                    src,
                                    dst,
                                    sport,
                                    dport,
                                    seq,
                                    ack,
                                    flags,
                                    window,
                                    payload_len,
                                    ip_len,
                                    data[tcp + 20 : start],
                                    data[start : start + preview],
                                    False,
                                ),
                            )
                            continue
                segment = decode(ts, link_type, data, wire_length, interface)
                if segment is not None:
                    yield segment
        finally:
            self.stats.frames += decoded_inline
            self.stats.tcp += decoded_inline

    def _other_link_layer(
        self, link_type: int, data: bytes, wire_length: int, ts: float
    ) -> tuple[int, int]:
        """Return (EtherType, IP header offset) for the less common link types.

        Return an offset of -1 when the frame has been counted and has no IP.
        """
        stats = self.stats
        if link_type in (LINKTYPE_NULL, LINKTYPE_LOOP):
            # BSD loopback: a 4-byte address family, in the writer's byte order
            # for NULL and in network byte order for LOOP. The value is below 256,
            # so it sits in the first or the last byte.
            if len(data) < 4:
                self._cut_short(len(data), wire_length, ts, "loopback header")
                return 0, -1
            family = data[3] if link_type == LINKTYPE_LOOP else data[0] or data[3]
            if family == _AF_INET:
                return _ETHERTYPE_IPV4, 4
            if family in _AF_INET6:
                return _ETHERTYPE_IPV6, 4
            stats.non_tcp += 1
            return 0, -1
        if link_type == LINKTYPE_RAW or link_type in _RAW_ALIASES:
            # Raw IP: the version nibble identifies IPv4 or IPv6.
            if not data:
                self._cut_short(0, wire_length, ts, "IP header")
                return 0, -1
            version = data[0] >> 4
            if version == 4:
                return _ETHERTYPE_IPV4, 0
            if version == 6:
                return _ETHERTYPE_IPV6, 0
            self._malformed(ts, f"IP version {version} in a raw IP frame")
            return 0, -1
        if link_type == LINKTYPE_IPV4:
            return _ETHERTYPE_IPV4, 0
        if link_type == LINKTYPE_IPV6:
            return _ETHERTYPE_IPV6, 0
        unsupported = stats.unsupported_link
        unsupported[link_type] = unsupported.get(link_type, 0) + 1
        return 0, -1

    def _ipv6_zero_length(self, data: bytes, ip: int, wire_length: int) -> int:
        """Return the payload length of an IPv6 packet whose header says 0.

        A jumbogram (RFC 2675) carries its length in a hop-by-hop Jumbo
        Payload option. Without one, the packet was captured before
        segmentation offload, and its length is taken from the frame.
        """
        if data[ip + 6] == 0 and len(data) >= ip + 42:
            options_end = min(len(data), ip + 40 + (data[ip + 41] + 1) * 8)
            position = ip + 42
            while position + 2 <= options_end:
                kind = data[position]
                if kind == 0:  # Pad1 has no length byte.
                    position += 1
                    continue
                jumbo = kind == 0xC2 and data[position + 1] == 4
                if jumbo and position + 6 <= options_end:
                    return int.from_bytes(data[position + 2 : position + 6])
                position += 2 + data[position + 1]
        return wire_length - ip - 40

    def _walk_ipv6_extensions(
        self, data: bytes, ip: int, ip_len: int, wire_length: int, ts: float
    ) -> int:
        """Walk the IPv6 extension headers up to TCP and return its offset.

        Return -1 when the frame has been counted as non-TCP, fragment,
        truncated or malformed.
        """
        stats = self.stats
        size = len(data)
        end = ip + ip_len
        next_header = data[ip + 6]
        position = ip + 40
        for _ in range(_MAX_IPV6_EXTENSIONS):
            if next_header == _PROTO_TCP:
                return position
            if next_header == _IPV6_NO_NEXT_HEADER:
                stats.non_tcp += 1
                return -1
            if next_header == _IPV6_FRAGMENT:
                # Fragment header (RFC 8200 section 4.5): next header, reserved,
                # offset (13 bits) with the M flag, identification. Offset 0
                # without M is an atomic fragment (RFC 6946): a whole packet.
                length = 8
            elif next_header == _IPV6_AH:
                # Authentication header (RFC 4302): length in 4-octet units - 2.
                length = 0 if position + 2 > size else (data[position + 1] + 2) * 4
            elif next_header in _IPV6_GENERIC_EXTENSIONS:
                length = 0 if position + 2 > size else (data[position + 1] + 1) * 8
            else:
                # UDP, ICMPv6, ESP and the rest.
                stats.non_tcp += 1
                return -1
            if position + max(length, 2) > end:
                self._malformed(ts, "IPv6 extension headers overrun the payload length")
                return -1
            if position + max(length, 8) > size:
                self._cut_short(size, wire_length, ts, "IPv6 extension header")
                return -1
            if next_header == _IPV6_FRAGMENT and (
                data[position + 2] or data[position + 3] & 0xF9
            ):
                stats.fragments += 1
                stats.non_tcp += 1
                return -1
            next_header = data[position]
            position += length
        if next_header == _PROTO_TCP:
            return position
        self._malformed(ts, f"more than {_MAX_IPV6_EXTENSIONS} IPv6 extension headers")
        return -1

    def _cut_short(self, size: int, wire_length: int, ts: float, header: str) -> None:
        """Count a frame that ends before ``header`` does.

        When the snaplen cut the frame it is truncated. When the whole frame was
        captured, the layer before promised a header that is not there.
        """
        if size < wire_length:
            self.stats.truncated += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("decode.truncated ts=%.6f inside=%s", ts, header)
        else:
            self._malformed(ts, f"the frame ends before the {header}")

    def _malformed(self, ts: float, reason: str) -> None:
        self.stats.malformed += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("decode.malformed ts=%.6f reason=%s", ts, reason)


def _checksum_is_bad(
    data: bytes, ip: int, tcp: int, tcp_len: int, src: bytes, dst: bytes
) -> bool:
    """Return True when the IPv4 header checksum or the TCP checksum is wrong.

    The Internet checksum (RFC 1071) is a one's complement sum of 16-bit words,
    and 2**16 is 1 modulo 0xFFFF. So a run of bytes of even length, read as one
    big-endian integer, has the same sum modulo 0xFFFF as its words. A correct
    checksum makes the sum of everything 0xFFFF, that is 0 modulo 0xFFFF.
    """
    if len(src) == 4:
        header_len = (data[ip] & 0x0F) * 4
        if int.from_bytes(data[ip : ip + header_len]) % 0xFFFF:
            return True
    if len(data) < tcp + tcp_len:
        return False  # The snaplen cut the segment: it cannot be checked.
    total = int.from_bytes(data[tcp : tcp + tcp_len])
    if tcp_len & 1:
        total <<= 8  # Pad an odd length with a zero byte on the right.
    # Pseudo-header: source, destination, protocol and TCP length. The IPv6
    # form (RFC 8200 section 8.1) has the same sum modulo 0xFFFF as IPv4's.
    total += int.from_bytes(src + dst) + _PROTO_TCP + tcp_len
    return total % 0xFFFF != 0
