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

The formats' constants and struct layouts are in ``fileformat``, and the byte
streams under the readers (gzip, pipes) are in ``filestream``.
"""

import gzip
import io
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from types import TracebackType
from typing import Self

from tcpwatch.capture.fileformat import (
    BIG,
    BYTE_ORDER_MAGIC,
    EPB,
    GZIP_MAGIC,
    IDB,
    LITTLE,
    MAX_CAPLEN,
    MAX_HEADER_BLOCK,
    MAX_PACKET_BLOCK,
    OPT_IF_TSOFFSET,
    OPT_IF_TSRESOL,
    PB,
    PCAP_MAGICS,
    SHB,
    SKIP_CHUNK,
    SPB,
    SUPPORTED_FORMATS,
    Interface,
    Layout,
    block_name,
    block_options,
    record_limit,
    unknown_format_reason,
)
from tcpwatch.capture.filestream import (
    BUFFER_SIZE,
    READ_ERRORS,
    GzipRawStream,
    file_size,
    open_raw,
    read_ahead,
)
from tcpwatch.capture.merge import MergedCapture, merge_captures
from tcpwatch.capture.segment import Frame
from tcpwatch.errors import CaptureFileError, TruncatedCaptureError

__all__ = [
    "MAX_CAPLEN",
    "CaptureReader",
    "MergedCapture",
    "PcapReader",
    "PcapngReader",
    "merge_captures",
    "open_capture",
]

logger = logging.getLogger("tcpwatch.capture")


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
        self.size: int | None = file_size(raw)
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


# pcap ---------------------------------------------------------------------


class PcapReader(CaptureReader):
    """A classic pcap file, microsecond or nanosecond, either byte order."""

    format = "pcap"

    def __init__(
        self, path: str, raw: io.BufferedReader, stream: io.BufferedReader
    ) -> None:
        super().__init__(path, raw, stream)
        header = _read_header(self, 24, "pcap file header")
        byteorder, self._ticks_per_second = PCAP_MAGICS[header[:4]]
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
        limit = record_limit(self.snaplen)
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
        except READ_ERRORS as error:
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
    except READ_ERRORS as error:
        raise reader._read_failed(error, 0) from error
    if len(header) < size:
        reason = (
            f"the file is {len(header)} bytes long, shorter than the {size}-byte {what}"
        )
        raise reader._error(reason, 0)
    return header


# pcapng -------------------------------------------------------------------


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
        self.interfaces: list[Interface] = []
        """The current section's interfaces, indexed by interface id."""
        head = _read_header(self, 12, "pcapng section header block")
        self._layout = self._start_section(head[4:12], 0)

    def _start_section(self, length_and_magic: bytes, offset: int) -> Layout:
        """Parse a section header block and reset the interface table.

        The block type has been read. Return the section's byte-order layout.
        """
        magic_le = LITTLE.u32.unpack_from(length_and_magic, 4)[0]
        if magic_le == BYTE_ORDER_MAGIC:
            layout = LITTLE
        elif magic_le == 0x4D3C2B1A:
            layout = BIG
        else:
            raw_magic = length_and_magic[4:8].hex(" ")
            reason = (
                f"section header block has byte-order magic {raw_magic}, "
                "expected 1a 2b 3c 4d in either byte order; the file is corrupt"
            )
            raise self._error(reason, offset + 8)
        length = layout.u32.unpack_from(length_and_magic)[0]
        body = self._read_block_body(layout, SHB, length, offset, 28, already=4)
        major, minor, _ = layout.shb.unpack_from(body)
        if major != 1:
            reason = f"pcapng version {major}.{minor} is not supported, only 1.x"
            raise self._error(reason, offset)
        self.interfaces = []
        self._offset = offset + length
        return layout

    def _read_block_body(
        self,
        layout: Layout,
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
        limit = MAX_HEADER_BLOCK if block_type in (SHB, IDB) else MAX_PACKET_BLOCK
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
        name = block_name(block_type)
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
            f"{block_name(block_type)} has block total length {length} but its "
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
                if block_type == EPB:
                    if length < 32 or length % 4 or length > MAX_PACKET_BLOCK:
                        raise self._bad_block_length(
                            EPB, length, offset, 32, MAX_PACKET_BLOCK
                        )
                    body = read(length - 8)
                    if len(body) < length - 8:
                        raise self._truncated(offset, length, 8 + len(body))
                    if tail_unpack(body, length - 12)[0] != length:
                        trailer = tail_unpack(body, length - 12)[0]
                        raise self._trailer_mismatch(EPB, length, trailer, offset)
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
                elif block_type == SPB:
                    frame = self._simple_packet(layout, length, offset, last_ts)
                    offset += length
                    yield frame
                elif block_type == IDB:
                    self._add_interface(layout, length, offset)
                    offset += length
                elif block_type == SHB:
                    more = read(4)
                    if len(more) < 4:
                        raise self._truncated(offset, 12, 8 + len(more))
                    layout = self._start_section(head[4:] + more, offset)
                    block_unpack = layout.block.unpack
                    epb_unpack = layout.epb.unpack_from
                    tail_unpack = layout.u32.unpack_from
                    interfaces = self.interfaces
                    offset = self._offset
                elif block_type == PB:
                    frame = self._obsolete_packet(layout, length, offset)
                    last_ts = frame[0]
                    offset += length
                    yield frame
                else:
                    self._skip_block(layout, block_type, length, offset)
                    offset += length
        except READ_ERRORS as error:
            raise self._read_failed(error, offset) from error

    def _add_interface(self, layout: Layout, length: int, offset: int) -> None:
        """Parse an interface description block into the interface table."""
        body = self._read_block_body(layout, IDB, length, offset, 20)
        link_type, _, snaplen = layout.idb.unpack_from(body)
        units = 1_000_000
        ts_offset = 0
        for code, value in block_options(layout, body, 8):
            if code == OPT_IF_TSRESOL and len(value) == 1:
                # With the high bit set the unit is 2**-n seconds, else 10**-n.
                exponent = value[0] & 0x7F
                units = 2**exponent if value[0] & 0x80 else 10**exponent
            elif code == OPT_IF_TSOFFSET and len(value) == 8:
                ts_offset = layout.i64.unpack(value)[0]
        interface = (link_type, units, ts_offset, snaplen, record_limit(snaplen))
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
        self, layout: Layout, length: int, offset: int, last_ts: float
    ) -> Frame:
        # SPB body: original length, then the packet padded to 4 bytes. The
        # captured length is the smaller of the original length and the snaplen
        # of interface 0.
        body = self._read_block_body(layout, SPB, length, offset, 16)
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

    def _obsolete_packet(self, layout: Layout, length: int, offset: int) -> Frame:
        # PB body: interface id (16 bits), drops count (16 bits), timestamp
        # high and low, captured length, original length, packet, options.
        body = self._read_block_body(layout, PB, length, offset, 32)
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
        self, layout: Layout, block_type: int, length: int, offset: int
    ) -> None:
        """Skip a block tcpwatch does not use, in bounded chunks."""
        self._check_block_length(block_type, length, offset, 12, None)
        remaining = length - 12
        while remaining:
            chunk = self._stream.read(min(remaining, SKIP_CHUNK))
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


# Opening ------------------------------------------------------------------


def open_capture(path: str | os.PathLike[str]) -> CaptureReader:
    """Open a pcap or pcapng file, plain or gzip-compressed, for reading.

    The format is detected from the first bytes. The file header (pcap) or first
    section header block (pcapng) is read and checked here.

    Raises:
        CaptureFileError: the file is missing, unreadable, a directory, empty,
            not in a supported format, or its file header is damaged.
    """
    path = os.fspath(path)
    raw = open_raw(path)
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


def _open_format(path: str, raw: io.BufferedReader) -> CaptureReader:
    try:
        raw, head = read_ahead(raw, 8)
    except OSError as error:
        raise CaptureFileError(path, f"read failed: {error.strerror}") from None
    stream = raw
    compressed = head[:2] == GZIP_MAGIC
    if compressed:
        # A BufferedReader over the gzip stream turns most per-record reads into
        # C calls that do not enter gzip's Python code: 1.4 times as fast.
        stream = io.BufferedReader(GzipRawStream(raw), BUFFER_SIZE)
    try:
        if compressed:
            stream, head = read_ahead(stream, 8)
    except READ_ERRORS as error:
        reason = f"gzip data is corrupt ({error}); tcpwatch reads {SUPPORTED_FORMATS}"
        raise CaptureFileError(path, reason) from None
    if head[:4] in PCAP_MAGICS:
        return PcapReader(path, raw, stream)
    if head[:4] == b"\x0a\x0d\x0d\x0a":
        return PcapngReader(path, raw, stream)
    raise CaptureFileError(path, unknown_format_reason(head, compressed), 0)
