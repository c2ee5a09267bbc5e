"""The records that cross from the capture layer into the flow tracker.

A capture source yields frames as plain tuples, because they are made once per
packet on the hot path:

    (timestamp, link_type, data, wire_length, interface)

``timestamp`` is seconds since the epoch as a float, ``link_type`` a LINKTYPE_*
number from the tcpdump.org registry, ``data`` the captured bytes,
``wire_length`` the frame's length on the wire (at least ``len(data)``), and
``interface`` the pcapng interface index (0 for pcap and live captures).

The decoder turns a frame into a ``Segment``.
"""

from typing import Final, NamedTuple

Frame = tuple[float, int, bytes, int, int]

# TCP header flag bits (RFC 9293 section 3.1, with ECE and CWR from RFC 3168).
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

# How many payload bytes a segment keeps for previews and keep-alive checks.
PAYLOAD_PREVIEW: Final = 64


class Segment(NamedTuple):
    """One TCP segment, decoded from a captured frame."""

    ts: float
    """Capture time, seconds since the epoch."""
    src: bytes
    """Source address: 4 bytes for IPv4, 16 for IPv6."""
    dst: bytes
    """Destination address, same length as ``src``."""
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    """TCP flag bits (``SYN``, ``ACK``, ... in this module)."""
    window: int
    """The raw 16-bit window field, before any window scaling."""
    payload_len: int
    """TCP payload length taken from the IP header, captured or not."""
    ip_len: int
    """Length of the IP packet on the wire: IPv4 total length, or IPv6 40 + payload."""
    options: bytes
    """Raw TCP option bytes as captured (may be cut short by the snaplen)."""
    payload: bytes
    """The first captured payload bytes, at most ``PAYLOAD_PREVIEW`` of them."""
    bad_checksum: bool = False
    """True when checksum validation is on and the IPv4 or TCP checksum is wrong."""


def flag_names(flags: int) -> str:
    """Return the flags in tcpdump's order and spelling, e.g. ``SYN,ACK``."""
    names = []
    for bit, name in (
        (SYN, "SYN"),
        (FIN, "FIN"),
        (RST, "RST"),
        (PSH, "PSH"),
        (ACK, "ACK"),
        (URG, "URG"),
        (ECE, "ECE"),
        (CWR, "CWR"),
    ):
        if flags & bit:
            names.append(name)
    return ",".join(names)
