"""The capture file formats as data: magic numbers, block types and layouts.

The readers in ``pcapfile`` unpack headers with the precompiled structs and
compare against the constants defined here. The module also lists the magic
numbers of formats tcpwatch does not read, so that an error message can name
such a file's format and how to convert it.

Formats:

- pcap: https://www.tcpdump.org/manpages/pcap-savefile.5.html
- pcapng: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/
"""

import struct
from collections.abc import Iterator

MAX_CAPLEN = 256 * 1024
"""Maximum captured length of one record. tcpdump's default snaplen is this value."""

GZIP_MAGIC = b"\x1f\x8b"

# Magic numbers that start files tcpwatch cannot read, with a hint for each.
FOREIGN_MAGICS = (
    (b"BZh", "a bzip2 archive; decompress it with bunzip2 first"),
    (b"\xfd7zXZ\x00", "an xz archive; decompress it with unxz first"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive; decompress it with unzstd first"),
    (b"PK\x03\x04", "a zip archive; extract the capture from it first"),
    (b"snoop\x00\x00\x00", "a Solaris snoop capture; convert it with editcap first"),
)

SUPPORTED_FORMATS = (
    "pcap (microsecond or nanosecond timestamps, either byte order) and pcapng, "
    "each optionally gzip-compressed"
)


def record_limit(snaplen: int) -> int:
    """Return the largest captured length accepted for a record under ``snaplen``.

    A record longer than the snaplen breaks the format, but a writer may
    ignore its header's snaplen by a little. So the limit is twice the snaplen,
    at least 131,070 bytes, and never more than ``MAX_CAPLEN``.
    """
    if snaplen <= 0:
        return MAX_CAPLEN
    return min(MAX_CAPLEN, max(snaplen, 65535) * 2)


# pcap ---------------------------------------------------------------------

# pcap file header (24 bytes): magic, version major and minor, thiszone,
# sigfigs, snaplen, link type. The magic's byte order is the file's.
PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}


# pcapng -------------------------------------------------------------------

SHB = 0x0A0D0D0A  # section header block, the same in both byte orders
IDB = 0x00000001  # interface description block
PB = 0x00000002  # obsolete packet block
SPB = 0x00000003  # simple packet block
EPB = 0x00000006  # enhanced packet block
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_END = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14

# Largest packet block accepted: a MAX_CAPLEN packet plus 64 KiB of options.
MAX_PACKET_BLOCK = MAX_CAPLEN + 64 * 1024
# Largest section header or interface description block, which contain only
# fixed fields and options.
MAX_HEADER_BLOCK = 1024 * 1024
# Chunk size for skipping blocks that tcpwatch does not use.
SKIP_CHUNK = 64 * 1024


class Layout:
    """Precompiled structs for one byte order of a pcapng section."""

    def __init__(self, byteorder: str) -> None:
        self.byteorder = byteorder
        # Block header: block type, block total length.
        self.block = struct.Struct(byteorder + "II")
        self.u32 = struct.Struct(byteorder + "I")
        # EPB body: interface id, timestamp high and low, captured length,
        # original length, then the packet padded to 4 bytes, then options.
        self.epb = struct.Struct(byteorder + "IIIII")
        # Obsolete PB body: interface id (16 bits), drops count (16 bits), then
        # as in an EPB.
        self.pb = struct.Struct(byteorder + "HHIIII")
        # IDB body: link type, reserved, snaplen, then options.
        self.idb = struct.Struct(byteorder + "HHI")
        # SHB body after the byte-order magic: major and minor version,
        # section length (-1 when not given), then options.
        self.shb = struct.Struct(byteorder + "HHq")
        # Option header: code, value length. Values are padded to 4 bytes.
        self.option = struct.Struct(byteorder + "HH")
        self.i64 = struct.Struct(byteorder + "q")


LITTLE = Layout("<")
BIG = Layout(">")

# One interface of a pcapng section: link type, timestamp units per second,
# timestamp offset in seconds, snaplen, record length limit.
Interface = tuple[int, int, int, int, int]


def block_options(
    layout: Layout, body: bytes, start: int
) -> Iterator[tuple[int, bytes]]:
    """Yield (code, value) for each option in ``body`` from ``start`` on.

    Stop at the end-of-options option or at the end of the body. An option
    whose length runs past the body is cut to the body.
    """
    position = start
    while position + 4 <= len(body):
        code, size = layout.option.unpack_from(body, position)
        if code == OPT_END:
            return
        value_start = position + 4
        yield code, body[value_start : value_start + size]
        position = value_start + (size + 3) // 4 * 4


def block_name(block_type: int) -> str:
    names = {
        SHB: "section header block",
        IDB: "interface description block",
        PB: "packet block",
        SPB: "simple packet block",
        EPB: "enhanced packet block",
    }
    return names.get(block_type, f"block of type 0x{block_type:08x}")


# Unknown formats ----------------------------------------------------------


def unknown_format_reason(head: bytes, compressed: bool) -> str:
    if not head:
        if compressed:
            return "the gzip stream decompresses to nothing; the capture is empty"
        return "file is empty; it holds no capture header"
    for prefix, hint in FOREIGN_MAGICS:
        if head.startswith(prefix):
            return f"not a supported capture: this is {hint}"
    inside = (
        "the decompressed data starts with" if compressed else "the first bytes are"
    )
    return (
        f"unknown file format: {inside} {head.hex(' ')}; "
        f"tcpwatch reads {SUPPORTED_FORMATS}"
    )
