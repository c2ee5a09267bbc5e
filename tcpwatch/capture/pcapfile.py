"""Readers for pcap and pcapng capture files, plain or gzip-compressed.

``open_capture`` detects the format from the first bytes of the file, never from
its name, and returns a reader that yields ``Frame`` tuples (see ``segment``).
Readers stream: they keep one record in memory at a time, so memory stays
constant whatever the size of the file.

The record loops are the hot path of file analysis. Each one reads the fixed
record header with a precompiled ``struct.Struct``, then reads the captured
bytes with one more ``read`` call on a buffered file, and builds nothing per
record but the frame tuple.

Formats:

- pcap: https://www.tcpdump.org/manpages/pcap-savefile.5.html
- pcapng: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/
"""

import contextlib
import gzip
import heapq
import io
import logging
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Self

from tcpwatch.capture.segment import Frame
from tcpwatch.errors import CaptureFileError, TruncatedCaptureError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

logger = logging.getLogger("tcpwatch.capture")

MAX_CAPLEN = 256 * 1024
"""Maximum captured length of one record. tcpdump's default snaplen is this value."""

_BUFFER_SIZE = 64 * 1024

# Errors that a read can raise on a damaged file: OSError for I/O failures and
# gzip.BadGzipFile, EOFError for a gzip stream without its end marker, and
# zlib.error for corrupt compressed data.
_READ_ERRORS = (OSError, EOFError, zlib.error)

_GZIP_MAGIC = b"\x1f\x8b"

# Magic numbers that start files tcpwatch cannot read, with a hint for each.
_FOREIGN_MAGICS = (
    (b"BZh", "a bzip2 archive; decompress it with bunzip2 first"),
    (b"\xfd7zXZ\x00", "an xz archive; decompress it with unxz first"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive; decompress it with unzstd first"),
    (b"PK\x03\x04", "a zip archive; extract the capture from it first"),
    (b"snoop\x00\x00\x00", "a Solaris snoop capture; convert it with editcap first"),
)

_SUPPORTED = (
    "pcap (microsecond or nanosecond timestamps, either byte order) and pcapng, "
    "each optionally gzip-compressed"
)


def _record_limit(snaplen: int) -> int:
    """Return the largest captured length accepted for a record under ``snaplen``.

    A record longer than the snaplen breaks the format, but a writer may
    ignore its header's snaplen by a little. So the limit is twice the snaplen,
    at least 131,070 bytes, and never more than ``MAX_CAPLEN``.
    """
    if snaplen <= 0:
        return MAX_CAPLEN
    return min(MAX_CAPLEN, max(snaplen, 65535) * 2)


class CaptureReader:
    """An open capture file that yields its frames once, in file order.

    Iterate over the reader to get ``Frame`` tuples. Iteration continues from
    where the previous one stopped. A damaged file raises ``CaptureFileError``
    from the iteration, and only after every complete record before the damage
    has been yielded.
    """

    format = "capture"
    """The file format: ``"pcap"`` or ``"pcapng"``."""

    def __init__(
        self, path: str, raw: io.BufferedReader, stream: io.BufferedReader
    ) -> None:
        self.path = path
        self.compressed = stream is not raw
        """True when the file is gzip-compressed."""
        self.size: int | None = _file_size(raw)
        """Size of the file on disk in bytes, or None for a pipe or device."""
        self._raw = raw
        self._stream = stream
        # Offset in the (decompressed) data of the next record to read, kept by
        # the header parsers and wherever iteration stops.
        self._offset = 0
        self._iterator: Iterator[Frame] | None = None

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far, comparable with ``size``.

        For a gzip file this counts compressed bytes, read ahead in chunks. For
        a pipe, which has no position, this is 0.
        """
        if self._raw.closed:
            return self.size or 0
        try:
            return self._raw.tell()
        except OSError:
            return 0

    def __iter__(self) -> Iterator[Frame]:
        if self._iterator is None:
            self._iterator = self._frames()
        return self._iterator

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Close the file. Closing twice is allowed."""
        self._stream.close()
        self._raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        gz = " gzip" if self.compressed else ""
        return f"<{type(self).__name__} {self.path!r} {self.format}{gz}>"

    def _error(self, reason: str, offset: int | None) -> CaptureFileError:
        return CaptureFileError(self.path, self._where(reason, offset), offset)

    def _truncated(self, offset: int, wanted: int, got: int) -> TruncatedCaptureError:
        reason = (
            f"the file ends inside the record that starts here ({got} of {wanted} "
            "bytes present); it was probably cut short while being written"
        )
        return TruncatedCaptureError(self.path, self._where(reason, offset), offset)

    def _read_failed(self, error: Exception, offset: int) -> CaptureFileError:
        """Translate an exception from ``read`` into a ``CaptureFileError``."""
        if isinstance(error, EOFError):
            reason = (
                "the gzip stream ends before its end marker, in or after the record "
                "that starts here; the file was probably cut short"
            )
            return TruncatedCaptureError(self.path, self._where(reason, offset), offset)
        if isinstance(error, gzip.BadGzipFile | zlib.error):
            reason = f"gzip data is corrupt in or after this record ({error})"
        else:
            reason = f"read failed: {error}"
        return CaptureFileError(self.path, self._where(reason, offset), offset)

    def _where(self, reason: str, offset: int | None) -> str:
        """Add to ``reason`` that a gzip file's offsets count decompressed bytes."""
        if self.compressed and offset is not None:
            return reason + " (the offset counts decompressed bytes)"
        return reason


def _file_size(raw: io.BufferedReader) -> int | None:
    status = os.fstat(raw.fileno())
    return status.st_size if stat.S_ISREG(status.st_mode) else None


# pcap ---------------------------------------------------------------------

# pcap file header (24 bytes): magic, version major and minor, thiszone,
# sigfigs, snaplen, link type. The magic's byte order is the file's.
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}


class PcapReader(CaptureReader):
    """A classic pcap file, microsecond or nanosecond, either byte order."""

    format = "pcap"

    def __init__(
        self, path: str, raw: io.BufferedReader, stream: io.BufferedReader
    ) -> None:
        super().__init__(path, raw, stream)
        header = _read_header(self, 24, "pcap file header")
        byteorder, self._ticks_per_second = _PCAP_MAGICS[header[:4]]
        fields = struct.unpack(byteorder + "HHiIII", header[4:])
        self.snaplen: int = fields[4]
        # The upper 16 bits of the link type field can carry an FCS length.
        self.link_type: int = fields[5] & 0xFFFF
        self.nanosecond = self._ticks_per_second == 1e9
        self._record = struct.Struct(byteorder + "IIII")
        self._offset = 24

    def _frames(self) -> Iterator[Frame]:
        read = self._stream.read
        unpack = self._record.unpack
        ticks = self._ticks_per_second
        link_type = self.link_type
        limit = _record_limit(self.snaplen)
        offset = self._offset
        # Typed, so that mypyc (tools/compile.py) keeps them machine integers.
        seconds: int
        fraction: int
        caplen: int
        wire_length: int
        try:
            while True:
                # Record header (16 bytes): seconds, microseconds or
                # nanoseconds, captured length, original length.
                header = read(16)
                try:
                    seconds, fraction, caplen, wire_length = unpack(header)
                except struct.error:
                    if header:
                        raise self._truncated(offset, 16, len(header)) from None
                    self._offset = offset
                    return
                if caplen > limit:
                    raise self._absurd_length(offset, caplen, limit)
                data = read(caplen)
                if len(data) < caplen:
                    raise self._truncated(offset, 16 + caplen, 16 + len(data))
                if wire_length < caplen:
                    wire_length = caplen
                offset += 16 + caplen
                yield (seconds + fraction / ticks, link_type, data, wire_length, 0)
        except _READ_ERRORS as error:
            raise self._read_failed(error, offset) from error

    def _absurd_length(self, offset: int, caplen: int, limit: int) -> CaptureFileError:
        reason = (
            f"record captured length {caplen} exceeds the maximum of {limit} bytes "
            f"for snaplen {self.snaplen}; the file is corrupt"
        )
        return self._error(reason, offset)


def _read_header(reader: CaptureReader, size: int, what: str) -> bytes:
    """Read the ``size``-byte file header ``what``.

    Raise ``CaptureFileError`` when the file is shorter than the header.
    """
    try:
        header = reader._stream.read(size)
    except _READ_ERRORS as error:
        raise reader._read_failed(error, 0) from error
    if len(header) < size:
        reason = (
            f"the file is {len(header)} bytes long, shorter than the {size}-byte {what}"
        )
        raise reader._error(reason, 0)
    return header


# pcapng -------------------------------------------------------------------

_SHB = 0x0A0D0D0A  # section header block, the same in both byte orders
_IDB = 0x00000001  # interface description block
_PB = 0x00000002  # obsolete packet block
_SPB = 0x00000003  # simple packet block
_EPB = 0x00000006  # enhanced packet block
_BYTE_ORDER_MAGIC = 0x1A2B3C4D

_OPT_END = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14

# Largest packet block accepted: a MAX_CAPLEN packet plus 64 KiB of options.
_MAX_PACKET_BLOCK = MAX_CAPLEN + 64 * 1024
# Largest section header or interface description block, which contain only
# fixed fields and options.
_MAX_HEADER_BLOCK = 1024 * 1024
# Chunk size for skipping blocks that tcpwatch does not use.
_SKIP_CHUNK = 64 * 1024


class _Layout:
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


_LITTLE = _Layout("<")
_BIG = _Layout(">")

# One interface of a pcapng section: link type, timestamp units per second,
# timestamp offset in seconds, snaplen, record length limit.
_Interface = tuple[int, int, int, int, int]


class PcapngReader(CaptureReader):
    """A pcapng file of one or more sections, each in its own byte order.

    Packets come from enhanced, simple and obsolete packet blocks. Other blocks
    (name resolution, statistics, decryption secrets, custom) are skipped by
    their length. A simple packet block carries no timestamp, so its frame gets
    the timestamp of the packet before it (0.0 when it is the first).
    """

    format = "pcapng"

    def __init__(
        self, path: str, raw: io.BufferedReader, stream: io.BufferedReader
    ) -> None:
        super().__init__(path, raw, stream)
        self.interfaces: list[_Interface] = []
        """The current section's interfaces, indexed by interface id."""
        head = _read_header(self, 12, "pcapng section header block")
        self._layout = self._start_section(head[4:12], 0)

    def _start_section(self, length_and_magic: bytes, offset: int) -> _Layout:
        """Parse a section header block and reset the interface table.

        The block type has been read. Return the section's byte-order layout.
        """
        magic_le = _LITTLE.u32.unpack_from(length_and_magic, 4)[0]
        if magic_le == _BYTE_ORDER_MAGIC:
            layout = _LITTLE
        elif magic_le == 0x4D3C2B1A:
            layout = _BIG
        else:
            raw_magic = length_and_magic[4:8].hex(" ")
            reason = (
                f"section header block has byte-order magic {raw_magic}, "
                "expected 1a 2b 3c 4d in either byte order; the file is corrupt"
            )
            raise self._error(reason, offset + 8)
        length = layout.u32.unpack_from(length_and_magic)[0]
        body = self._read_block_body(layout, _SHB, length, offset, 28, already=4)
        major, minor, _ = layout.shb.unpack_from(body)
        if major != 1:
            reason = f"pcapng version {major}.{minor} is not supported, only 1.x"
            raise self._error(reason, offset)
        self.interfaces = []
        self._offset = offset + length
        return layout

    def _read_block_body(
        self,
        layout: _Layout,
        block_type: int,
        length: int,
        offset: int,
        minimum: int,
        already: int = 0,
    ) -> bytes:
        """Read the rest of a block whose first ``8 + already`` bytes are read.

        Return the body between the block header and the trailing length,
        without the ``already`` bytes. Raise ``CaptureFileError`` when the block
        total length is invalid or its trailing copy differs.
        """
        limit = _MAX_HEADER_BLOCK if block_type in (_SHB, _IDB) else _MAX_PACKET_BLOCK
        self._check_block_length(block_type, length, offset, minimum, limit)
        rest = length - 8 - already
        body = self._stream.read(rest)
        if len(body) < rest:
            raise self._truncated(offset, length, 8 + already + len(body))
        trailer = layout.u32.unpack_from(body, rest - 4)[0]
        if trailer != length:
            raise self._trailer_mismatch(block_type, length, trailer, offset)
        return body[: rest - 4]

    def _check_block_length(
        self,
        block_type: int,
        length: int,
        offset: int,
        minimum: int,
        limit: int | None,
    ) -> None:
        if length < minimum or length % 4 or (limit is not None and length > limit):
            raise self._bad_block_length(block_type, length, offset, minimum, limit)

    def _bad_block_length(
        self,
        block_type: int,
        length: int,
        offset: int,
        minimum: int,
        limit: int | None,
    ) -> CaptureFileError:
        name = _block_name(block_type)
        if limit is not None and length > limit:
            reason = (
                f"{name} has block total length {length}, more than the maximum of "
                f"{limit} bytes; the file is corrupt"
            )
        else:
            reason = (
                f"{name} has block total length {length}, which is invalid: it must "
                f"be a multiple of 4 and at least {minimum}; the file is corrupt"
            )
        return self._error(reason, offset)

    def _trailer_mismatch(
        self, block_type: int, length: int, trailer: int, offset: int
    ) -> CaptureFileError:
        reason = (
            f"{_block_name(block_type)} has block total length {length} but its "
            f"trailing copy says {trailer}; the file is corrupt"
        )
        return self._error(reason, offset)

    def _frames(self) -> Iterator[Frame]:
        read = self._stream.read
        layout = self._layout
        block_unpack = layout.block.unpack
        epb_unpack = layout.epb.unpack_from
        tail_unpack = layout.u32.unpack_from
        interfaces = self.interfaces
        offset = self._offset
        last_ts = 0.0
        try:
            while True:
                # Block header: type, total length. The body follows, then the
                # total length again.
                head = read(8)
                try:
                    block_type, length = block_unpack(head)
                except struct.error:
                    if head:
                        raise self._truncated(offset, 8, len(head)) from None
                    self._offset = offset
                    return
                if block_type == _EPB:
                    if length < 32 or length % 4 or length > _MAX_PACKET_BLOCK:
                        raise self._bad_block_length(
                            _EPB, length, offset, 32, _MAX_PACKET_BLOCK
                        )
                    body = read(length - 8)
                    if len(body) < length - 8:
                        raise self._truncated(offset, length, 8 + len(body))
                    if tail_unpack(body, length - 12)[0] != length:
                        trailer = tail_unpack(body, length - 12)[0]
                        raise self._trailer_mismatch(_EPB, length, trailer, offset)
                    iface, high, low, caplen, wire_length = epb_unpack(body)
                    try:
                        link_type, units, ts_offset, _, limit = interfaces[iface]
                    except IndexError:
                        raise self._unknown_interface(iface, offset) from None
                    if caplen > length - 32 or caplen > limit:
                        raise self._bad_caplen(caplen, length, limit, offset)
                    if wire_length < caplen:
                        wire_length = caplen
                    last_ts = ((high << 32) | low) / units + ts_offset
                    offset += length
                    yield (
                        last_ts,
                        link_type,
                        body[20 : 20 + caplen],
                        wire_length,
                        iface,
                    )
                elif block_type == _SPB:
                    frame = self._simple_packet(layout, length, offset, last_ts)
                    offset += length
                    yield frame
                elif block_type == _IDB:
                    self._add_interface(layout, length, offset)
                    offset += length
                elif block_type == _SHB:
                    more = read(4)
                    if len(more) < 4:
                        raise self._truncated(offset, 12, 8 + len(more))
                    layout = self._start_section(head[4:] + more, offset)
                    block_unpack = layout.block.unpack
                    epb_unpack = layout.epb.unpack_from
                    tail_unpack = layout.u32.unpack_from
                    interfaces = self.interfaces
                    offset = self._offset
                elif block_type == _PB:
                    frame = self._obsolete_packet(layout, length, offset)
                    last_ts = frame[0]
                    offset += length
                    yield frame
                else:
                    self._skip_block(layout, block_type, length, offset)
                    offset += length
        except _READ_ERRORS as error:
            raise self._read_failed(error, offset) from error

    def _add_interface(self, layout: _Layout, length: int, offset: int) -> None:
        """Parse an interface description block into the interface table."""
        body = self._read_block_body(layout, _IDB, length, offset, 20)
        link_type, _, snaplen = layout.idb.unpack_from(body)
        units = 1_000_000
        ts_offset = 0
        for code, value in _options(layout, body, 8):
            if code == _OPT_IF_TSRESOL and len(value) == 1:
                # With the high bit set the unit is 2**-n seconds, else 10**-n.
                exponent = value[0] & 0x7F
                units = 2**exponent if value[0] & 0x80 else 10**exponent
            elif code == _OPT_IF_TSOFFSET and len(value) == 8:
                ts_offset = layout.i64.unpack(value)[0]
        interface = (link_type, units, ts_offset, snaplen, _record_limit(snaplen))
        self.interfaces.append(interface)
        logger.debug(
            "capture.interface path=%s id=%d link_type=%d snaplen=%d units=%d",
            self.path,
            len(self.interfaces) - 1,
            link_type,
            snaplen,
            units,
        )

    def _simple_packet(
        self, layout: _Layout, length: int, offset: int, last_ts: float
    ) -> Frame:
        # SPB body: original length, then the packet padded to 4 bytes. The
        # captured length is the smaller of the original length and the snaplen
        # of interface 0.
        body = self._read_block_body(layout, _SPB, length, offset, 16)
        if not self.interfaces:
            raise self._unknown_interface(0, offset)
        link_type, _, _, snaplen, limit = self.interfaces[0]
        wire_length = layout.u32.unpack_from(body)[0]
        caplen = min(wire_length, len(body) - 4)
        if snaplen:
            caplen = min(caplen, snaplen)
        if caplen > limit:
            raise self._bad_caplen(caplen, length, limit, offset)
        return (last_ts, link_type, body[4 : 4 + caplen], wire_length, 0)

    def _obsolete_packet(self, layout: _Layout, length: int, offset: int) -> Frame:
        # PB body: interface id (16 bits), drops count (16 bits), timestamp
        # high and low, captured length, original length, packet, options.
        body = self._read_block_body(layout, _PB, length, offset, 32)
        iface, _, high, low, caplen, wire_length = layout.pb.unpack_from(body)
        if iface >= len(self.interfaces):
            raise self._unknown_interface(iface, offset)
        link_type, units, ts_offset, _, limit = self.interfaces[iface]
        if caplen > length - 32 or caplen > limit:
            raise self._bad_caplen(caplen, length, limit, offset)
        ts = ((high << 32) | low) / units + ts_offset
        data = body[20 : 20 + caplen]
        return (ts, link_type, data, max(wire_length, caplen), iface)

    def _skip_block(
        self, layout: _Layout, block_type: int, length: int, offset: int
    ) -> None:
        """Skip a block tcpwatch does not use, in bounded chunks."""
        self._check_block_length(block_type, length, offset, 12, None)
        remaining = length - 12
        while remaining:
            chunk = self._stream.read(min(remaining, _SKIP_CHUNK))
            if not chunk:
                raise self._truncated(offset, length, length - 4 - remaining)
            remaining -= len(chunk)
        trailer_bytes = self._stream.read(4)
        if len(trailer_bytes) < 4:
            raise self._truncated(offset, length, length - 4 + len(trailer_bytes))
        trailer = layout.u32.unpack(trailer_bytes)[0]
        if trailer != length:
            raise self._trailer_mismatch(block_type, length, trailer, offset)

    def _unknown_interface(self, iface: int, offset: int) -> CaptureFileError:
        reason = (
            f"packet block refers to interface {iface}, but the section describes "
            f"only {len(self.interfaces)} interfaces; the file is corrupt"
        )
        return self._error(reason, offset)

    def _bad_caplen(
        self, caplen: int, length: int, limit: int, offset: int
    ) -> CaptureFileError:
        reason = (
            f"packet block has captured length {caplen}, which does not fit its "
            f"block total length {length} or exceeds the maximum of {limit} bytes; "
            "the file is corrupt"
        )
        return self._error(reason, offset)


def _options(layout: _Layout, body: bytes, start: int) -> Iterator[tuple[int, bytes]]:
    """Yield (code, value) for each option in ``body`` from ``start`` on.

    Stop at the end-of-options option or at the end of the body. An option
    whose length runs past the body is cut to the body.
    """
    position = start
    while position + 4 <= len(body):
        code, size = layout.option.unpack_from(body, position)
        if code == _OPT_END:
            return
        value_start = position + 4
        yield code, body[value_start : value_start + size]
        position = value_start + (size + 3) // 4 * 4


def _block_name(block_type: int) -> str:
    names = {
        _SHB: "section header block",
        _IDB: "interface description block",
        _PB: "packet block",
        _SPB: "simple packet block",
        _EPB: "enhanced packet block",
    }
    return names.get(block_type, f"block of type 0x{block_type:08x}")


# Opening ------------------------------------------------------------------


class _GzipRawStream(io.RawIOBase):
    """A gzip file's decompressed data as a raw stream, one step per read.

    ``GzipFile.read(n)`` loops until it has ``n`` bytes, so an error in a later
    step drops the bytes it already had. ``read1`` makes one step. So a
    truncated stream or a bad CRC raises only on a call that has nothing to
    return, after every good byte has been delivered. Corrupt deflate data is
    different: zlib raises without the bytes it decompressed in the same step,
    so up to one read (64 KiB) before the damage is lost.
    """

    def __init__(self, raw: io.BufferedReader) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        view = memoryview(buffer)
        data = self._gzip.read1(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gzip.close()
        super().close()


def open_capture(path: str | os.PathLike[str]) -> CaptureReader:
    """Open a pcap or pcapng file, plain or gzip-compressed, for reading.

    The format is detected from the first bytes. The file header (pcap) or first
    section header block (pcapng) is read and checked here.

    Raises:
        CaptureFileError: the file is missing, unreadable, a directory, empty,
            not in a supported format, or its file header is damaged.
    """
    path = os.fspath(path)
    raw = _open_raw(path)
    try:
        reader = _open_format(path, raw)
    except BaseException:
        raw.close()
        raise
    logger.debug(
        "capture.open path=%s format=%s compressed=%s size=%s",
        path,
        reader.format,
        reader.compressed,
        reader.size,
    )
    return reader


def _open_raw(path: str) -> io.BufferedReader:
    try:
        return io.BufferedReader(io.FileIO(path, "r"), _BUFFER_SIZE)
    except FileNotFoundError:
        raise CaptureFileError(path, "file not found; check the path") from None
    except PermissionError:
        reason = "permission denied; check the file's permissions or run as its owner"
        raise CaptureFileError(path, reason) from None
    except IsADirectoryError:
        reason = "is a directory; give the path of a pcap or pcapng file"
        raise CaptureFileError(path, reason) from None
    except OSError as error:
        raise CaptureFileError(path, f"cannot open: {error.strerror}") from None


def _open_format(path: str, raw: io.BufferedReader) -> CaptureReader:
    try:
        raw, head = _read_ahead(raw, 8)
    except OSError as error:
        raise CaptureFileError(path, f"read failed: {error.strerror}") from None
    stream = raw
    compressed = head[:2] == _GZIP_MAGIC
    if compressed:
        # A BufferedReader over the gzip stream turns most per-record reads into
        # C calls that do not enter gzip's Python code: 1.4 times as fast.
        stream = io.BufferedReader(_GzipRawStream(raw), _BUFFER_SIZE)
    try:
        if compressed:
            stream, head = _read_ahead(stream, 8)
    except _READ_ERRORS as error:
        reason = f"gzip data is corrupt ({error}); tcpwatch reads {_SUPPORTED}"
        raise CaptureFileError(path, reason) from None
    if head[:4] in _PCAP_MAGICS:
        return PcapReader(path, raw, stream)
    if head[:4] == b"\x0a\x0d\x0d\x0a":
        return PcapngReader(path, raw, stream)
    raise CaptureFileError(path, _unknown_format_reason(head, compressed), 0)


def _read_ahead(
    stream: io.BufferedReader, size: int
) -> tuple[io.BufferedReader, bytes]:
    """Return ``stream`` and its first ``size`` bytes, which stay unread.

    ``peek`` returns what one read of the file gave, and a pipe can deliver
    its first bytes in pieces. Then the bytes are read, as many as arrive
    before the end of the file, and a new stream puts them back in front.
    """
    head = stream.peek(size)[:size]
    if len(head) == size:
        return stream, head
    head = stream.read(size)
    return io.BufferedReader(_PrefixedStream(head, stream), _BUFFER_SIZE), head


class _PrefixedStream(io.RawIOBase):
    """Bytes already read from a stream, followed by the rest of that stream."""

    def __init__(self, prefix: bytes, rest: io.BufferedReader) -> None:
        super().__init__()
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._rest.fileno()

    def readinto(self, buffer: "WriteableBuffer") -> int:
        view = memoryview(buffer)
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read1(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()


def _unknown_format_reason(head: bytes, compressed: bool) -> str:
    if not head:
        if compressed:
            return "the gzip stream decompresses to nothing; the capture is empty"
        return "file is empty; it holds no capture header"
    for prefix, hint in _FOREIGN_MAGICS:
        if head.startswith(prefix):
            return f"not a supported capture: this is {hint}"
    inside = (
        "the decompressed data starts with" if compressed else "the first bytes are"
    )
    return f"unknown file format: {inside} {head.hex(' ')}; tcpwatch reads {_SUPPORTED}"


# Merging ------------------------------------------------------------------


class MergedCapture:
    """Several capture files read as one capture, in timestamp order.

    Frames from all files come out merged by timestamp (``heapq.merge``,
    streaming: one pending frame per file). Each file is assumed to be in
    timestamp order itself, which tcpdump and dumpcap files are. Ties keep the
    order of ``paths``.

    Errors: every file is opened by the constructor, so a file that cannot be
    opened raises ``CaptureFileError`` before any frame is read. An error while
    reading one file (truncation, corruption) ends that file only. The error is
    appended to ``errors`` and passed to ``on_error`` if one was given, and the
    other files go on. When the merge ends and there is no ``on_error``, the
    first error is raised, after every frame read from every file has been
    yielded. With ``on_error``, nothing is raised and the caller decides.
    """

    def __init__(
        self,
        paths: Iterable[str],
        on_error: Callable[[CaptureFileError], None] | None = None,
    ) -> None:
        self.readers: list[CaptureReader] = []
        self.errors: list[CaptureFileError] = []
        """Errors met while reading, in the order they happened."""
        self._on_error = on_error
        try:
            for path in paths:
                self.readers.append(open_capture(path))
        except CaptureFileError:
            self.close()
            raise

    @property
    def paths(self) -> list[str]:
        return [reader.path for reader in self.readers]

    @property
    def size(self) -> int | None:
        """Total size on disk, or None when any input is a pipe or device."""
        sizes = [reader.size for reader in self.readers]
        if any(size is None for size in sizes):
            return None
        return sum(size for size in sizes if size is not None)

    @property
    def position(self) -> int:
        """Bytes on disk consumed so far, summed over the files."""
        return sum(reader.position for reader in self.readers)

    def __iter__(self) -> Iterator[Frame]:
        if len(self.readers) == 1:
            # One file, the usual case: its frames need no merge, and each
            # frame passes through one generator less.
            return self._guard(self.readers[0], raise_at_end=True)
        return self._merged()

    def _merged(self) -> Iterator[Frame]:
        streams = [self._guard(reader) for reader in self.readers]
        yield from heapq.merge(*streams, key=itemgetter(0))
        if self.errors and self._on_error is None:
            raise self.errors[0]

    def _guard(
        self, reader: CaptureReader, raise_at_end: bool = False
    ) -> Iterator[Frame]:
        """Yield the reader's frames and record an error instead of raising it.

        With ``raise_at_end`` and no ``on_error``, the error is raised after
        the last frame, as the class promises for the end of a merge.
        """
        try:
            yield from reader
        except CaptureFileError as error:
            logger.debug("capture.failed path=%s error=%s", reader.path, error)
            self.errors.append(error)
            if self._on_error is not None:
                self._on_error(error)
        if raise_at_end and self.errors and self._on_error is None:
            raise self.errors[0]

    def close(self) -> None:
        """Close every file."""
        for reader in self.readers:
            with contextlib.suppress(OSError):
                reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def merge_captures(
    paths: Iterable[str],
    on_error: Callable[[CaptureFileError], None] | None = None,
) -> MergedCapture:
    """Open several capture files to be read as one, in timestamp order.

    See ``MergedCapture`` for how errors in one file are reported.
    """
    return MergedCapture(paths, on_error)
