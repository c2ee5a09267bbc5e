"""Tests of the capture file readers on files written at test time.

The writers below build pcap and pcapng bytes field by field, so each test can
choose byte order, timestamp resolution, interfaces and damage exactly.
"""

import gzip
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tcpwatch.capture.decoder import Decoder
from tcpwatch.capture.pcapfile import (
    MAX_CAPLEN,
    CaptureReader,
    merge_captures,
    open_capture,
)
from tcpwatch.capture.segment import ACK, FIN, SYN, Frame, Segment
from tcpwatch.errors import CaptureFileError, TruncatedCaptureError

# Writers ------------------------------------------------------------------

PCAP_MICRO = 0xA1B2C3D4
PCAP_NANO = 0xA1B23C4D


def pcap_bytes(
    records: list[tuple[int, int, bytes]],
    *,
    byteorder: str = "<",
    nanosecond: bool = False,
    link_type: int = 1,
    snaplen: int = 262144,
    wire_lengths: list[int] | None = None,
) -> bytes:
    """A pcap file of (seconds, fraction, data) records."""
    magic = PCAP_NANO if nanosecond else PCAP_MICRO
    out = struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type)
    for index, (seconds, fraction, data) in enumerate(records):
        wire = wire_lengths[index] if wire_lengths else len(data)
        header = struct.pack(byteorder + "IIII", seconds, fraction, len(data), wire)
        out += header + data
    return out


def pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def block(block_type: int, body: bytes, byteorder: str = "<") -> bytes:
    """A pcapng block: type, total length, body padded to 4, total length."""
    body = pad4(body)
    length = len(body) + 12
    return (
        struct.pack(byteorder + "II", block_type, length)
        + body
        + struct.pack(byteorder + "I", length)
    )


def option(code: int, value: bytes, byteorder: str = "<") -> bytes:
    return struct.pack(byteorder + "HH", code, len(value)) + pad4(value)


def shb(byteorder: str = "<", major: int = 1) -> bytes:
    body = struct.pack(byteorder + "IHHq", 0x1A2B3C4D, major, 0, -1)
    return block(0x0A0D0D0A, body, byteorder)


def idb(
    link_type: int,
    *,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    byteorder: str = "<",
) -> bytes:
    options = option(2, b"eth0", byteorder)  # if_name, which the reader skips
    if tsresol is not None:
        options += option(9, bytes([tsresol]), byteorder)
    if tsoffset is not None:
        options += option(14, struct.pack(byteorder + "q", tsoffset), byteorder)
    options += option(0, b"", byteorder)
    body = struct.pack(byteorder + "HHI", link_type, 0, snaplen) + options
    return block(1, body, byteorder)


def epb(
    interface: int,
    ticks: int,
    data: bytes,
    *,
    wire_length: int | None = None,
    byteorder: str = "<",
) -> bytes:
    wire = len(data) if wire_length is None else wire_length
    header = struct.pack(
        byteorder + "IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire
    )
    return block(6, header + pad4(data) + option(0, b"", byteorder), byteorder)


def spb(data: bytes, wire_length: int, byteorder: str = "<") -> bytes:
    return block(3, struct.pack(byteorder + "I", wire_length) + data, byteorder)


def obsolete_pb(interface: int, ticks: int, data: bytes, byteorder: str = "<") -> bytes:
    header = struct.pack(
        byteorder + "HHIIII",
        interface,
        0,
        ticks >> 32,
        ticks & 0xFFFFFFFF,
        len(data),
        len(data),
    )
    return block(2, header + data, byteorder)


def tcp_frame(index: int, payload: bytes = b"") -> bytes:
    packet = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000 + index, dport=80)
    return bytes(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / packet / Raw(payload)
    )


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def read_all(path: str) -> list[Frame]:
    with open_capture(path) as reader:
        return list(reader)


def read_until_error(path: str) -> tuple[list[Frame], CaptureFileError]:
    """Read frames until the reader raises, and return both."""
    frames: list[Frame] = []
    with open_capture(path) as reader, pytest.raises(CaptureFileError) as info:
        for frame in reader:
            frames.append(frame)
    return frames, info.value


# pcap -------------------------------------------------------------------------


@pytest.mark.parametrize("byteorder", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcap_microsecond_both_byte_orders(tmp_path: Path, byteorder: str) -> None:
    records = [(1700000000, 123456, b"first"), (1700000001, 999999, b"second")]
    path = write(tmp_path, "a.pcap", pcap_bytes(records, byteorder=byteorder))

    frames = read_all(path)

    assert len(frames) == 2
    assert frames[0] == (1700000000 + 123456 / 1e6, 1, b"first", 5, 0)
    assert frames[1] == (1700000001 + 999999 / 1e6, 1, b"second", 6, 0)


@pytest.mark.parametrize("byteorder", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcap_nanosecond_both_byte_orders(tmp_path: Path, byteorder: str) -> None:
    records = [(1, 123456789, b"ns")]
    content = pcap_bytes(records, byteorder=byteorder, nanosecond=True)
    path = write(tmp_path, "ns.pcap", content)

    with open_capture(path) as reader:
        frames = list(reader)
        nanosecond = reader.nanosecond  # type: ignore[attr-defined]

    assert nanosecond is True
    assert frames[0][0] == pytest.approx(1.123456789, abs=1e-12)
    assert frames[0][2] == b"ns"


def test_pcap_link_type_from_header(tmp_path: Path) -> None:
    path = write(tmp_path, "sll.pcap", pcap_bytes([(0, 0, b"x")], link_type=113))

    frames = read_all(path)

    assert frames[0][1] == 113


def test_pcap_link_type_ignores_fcs_bits(tmp_path: Path) -> None:
    # As in libpcap's LT_FCS_DATALINK_EXT: bits 28-31 carry the FCS length and
    # bit 26 flags that they are set.
    link_field = 1 | 1 << 26 | 4 << 28
    path = write(tmp_path, "fcs.pcap", pcap_bytes([(0, 0, b"x")], link_type=link_field))

    frames = read_all(path)

    assert frames[0][1] == 1


def test_pcap_snaplen_cut_keeps_wire_length(tmp_path: Path) -> None:
    content = pcap_bytes([(0, 0, b"cut")], snaplen=3, wire_lengths=[1514])
    path = write(tmp_path, "cut.pcap", content)

    frames = read_all(path)

    assert frames[0][2] == b"cut"
    assert frames[0][3] == 1514


def test_pcap_wire_length_below_caplen_raised(tmp_path: Path) -> None:
    path = write(tmp_path, "w.pcap", pcap_bytes([(0, 0, b"four")], wire_lengths=[0]))

    frames = read_all(path)

    assert frames[0][3] == 4


def test_pcap_no_records(tmp_path: Path) -> None:
    path = write(tmp_path, "none.pcap", pcap_bytes([]))

    assert read_all(path) == []


# pcapng -----------------------------------------------------------------------


def test_pcapng_two_interfaces_link_types(tmp_path: Path) -> None:
    content = (
        shb()
        + idb(1)  # Ethernet, microseconds by default
        + idb(101, tsresol=9)  # raw IP, nanoseconds
        + epb(0, 1_700_000_000_250_000, b"ether")
        + epb(1, 1_700_000_000_500_000_000, b"rawip")
    )
    path = write(tmp_path, "two.pcapng", content)

    frames = read_all(path)

    assert len(frames) == 2
    assert frames[0] == (1_700_000_000.25, 1, b"ether", 5, 0)
    assert frames[1] == (1_700_000_000.5, 101, b"rawip", 5, 1)


def test_pcapng_tsresol_power_of_two_and_offset(tmp_path: Path) -> None:
    # tsresol 0x8A: 2**-10 second units. 5.5 s plus an offset of 1,000 s.
    content = (
        shb() + idb(1, tsresol=0x80 | 10, tsoffset=1000) + epb(0, 1024 * 5 + 512, b"x")
    )
    path = write(tmp_path, "pow2.pcapng", content)

    frames = read_all(path)

    assert frames[0][0] == 1005.5


def test_pcapng_big_endian_section(tmp_path: Path) -> None:
    content = (
        shb(">") + idb(113, byteorder=">") + epb(0, 3_000_000, b"be", byteorder=">")
    )
    path = write(tmp_path, "be.pcapng", content)

    frames = read_all(path)

    assert frames == [(3.0, 113, b"be", 2, 0)]


def test_pcapng_new_section_resets_interfaces(tmp_path: Path) -> None:
    content = (
        shb()
        + idb(1)
        + idb(101)
        + epb(1, 1_000_000, b"one")
        + shb(">")
        + idb(228, byteorder=">")
        + epb(0, 2_000_000, b"two", byteorder=">")
        + epb(1, 3_000_000, b"three", byteorder=">")
    )
    path = write(tmp_path, "sections.pcapng", content)

    frames, error = read_until_error(path)

    assert [frame[2] for frame in frames] == [b"one", b"two"]
    assert frames[1][1] == 228
    assert "refers to interface 1" in error.reason
    assert "describes only 1 interfaces" in error.reason


def test_pcapng_simple_packet_block_uses_snaplen(tmp_path: Path) -> None:
    content = (
        shb()
        + idb(1, snaplen=6)
        + epb(0, 7_000_000, b"before")
        + spb(b"simple", wire_length=100)
    )
    path = write(tmp_path, "spb.pcapng", content)

    frames = read_all(path)

    assert frames[1][2] == b"simple"
    assert frames[1][3] == 100
    # A simple packet block has no timestamp, so it takes the previous one.
    assert frames[1][0] == 7.0


def test_pcapng_simple_packet_block_shorter_than_snaplen(tmp_path: Path) -> None:
    content = shb() + idb(1, snaplen=65535) + spb(b"abc", wire_length=3)
    path = write(tmp_path, "spb.pcapng", content)

    frames = read_all(path)

    assert frames[0][2] == b"abc"


def test_pcapng_obsolete_packet_block(tmp_path: Path) -> None:
    content = shb() + idb(1) + idb(101) + obsolete_pb(1, 2_500_000, b"old")
    path = write(tmp_path, "pb.pcapng", content)

    frames = read_all(path)

    assert frames == [(2.5, 101, b"old", 3, 1)]


def test_pcapng_skips_unknown_blocks(tmp_path: Path) -> None:
    content = (
        shb()
        + block(4, bytes(40))  # name resolution
        + idb(1)
        + block(5, bytes(24))  # interface statistics
        + block(0x0BAD, bytes(100_000))  # custom, longer than one skip chunk
        + epb(0, 1_000_000, b"kept")
    )
    path = write(tmp_path, "skip.pcapng", content)

    frames = read_all(path)

    assert [frame[2] for frame in frames] == [b"kept"]


# gzip ---------------------------------------------------------------------------


def test_gzip_pcap_detected_by_magic(tmp_path: Path) -> None:
    content = gzip.compress(pcap_bytes([(5, 0, b"zipped")]))
    path = write(tmp_path, "no-suffix.pcap", content)

    with open_capture(path) as reader:
        frames = list(reader)
        compressed = reader.compressed

    assert compressed is True
    assert frames == [(5.0, 1, b"zipped", 6, 0)]


def test_gzip_pcapng(tmp_path: Path) -> None:
    content = gzip.compress(shb() + idb(1) + epb(0, 1_000_000, b"ng"))
    path = write(tmp_path, "cap.pcapng.gz", content)

    with open_capture(path) as reader:
        frames = list(reader)
        capture_format = reader.format

    assert capture_format == "pcapng"
    assert frames == [(1.0, 1, b"ng", 2, 0)]


def random_records(count: int, size: int) -> list[tuple[int, int, bytes]]:
    generator = random.Random(7)
    return [(index, 0, generator.randbytes(size)) for index in range(count)]


def test_gzip_truncated_stream_yields_frames_then_error(tmp_path: Path) -> None:
    records = random_records(200, 500)
    compressed = gzip.compress(pcap_bytes(records))
    cut = compressed[: len(compressed) // 2]
    path = write(tmp_path, "cut.pcap.gz", cut)
    readable = len(zlib.decompressobj(wbits=31).decompress(cut))
    complete_records = (readable - 24) // (16 + 500)

    frames, error = read_until_error(path)

    assert isinstance(error, TruncatedCaptureError)
    assert len(frames) == complete_records
    assert 0 < len(frames) < 200
    assert [frame[2] for frame in frames] == [r[2] for r in records[: len(frames)]]
    assert error.path == path
    assert error.offset == 24 + len(frames) * (16 + 500)
    assert "decompressed" in error.reason


def test_gzip_bad_crc_after_all_frames(tmp_path: Path) -> None:
    records = random_records(20, 100)
    compressed = bytearray(gzip.compress(pcap_bytes(records)))
    compressed[-8] ^= 0xFF  # the CRC-32 in the gzip trailer
    path = write(tmp_path, "crc.pcap.gz", bytes(compressed))

    frames, error = read_until_error(path)

    assert len(frames) == 20
    assert not isinstance(error, TruncatedCaptureError)
    assert "gzip data is corrupt" in error.reason
    assert path in str(error)


def test_gzip_corrupt_data_raises_capture_error(tmp_path: Path) -> None:
    compressed = bytearray(gzip.compress(pcap_bytes(random_records(200, 500))))
    middle = len(compressed) // 2
    compressed[middle : middle + 64] = bytes(64)
    path = write(tmp_path, "corrupt.pcap.gz", bytes(compressed))

    frames, error = read_until_error(path)

    assert len(frames) < 200
    assert error.path == path


# Merging ------------------------------------------------------------------------


def test_merge_captures_timestamp_order(tmp_path: Path) -> None:
    first = write(
        tmp_path, "a.pcap", pcap_bytes([(1, 0, b"a1"), (3, 0, b"a3"), (5, 0, b"a5")])
    )
    second_content = (
        shb() + idb(101) + epb(0, 2_000_000, b"b2") + epb(0, 4_000_000, b"b4")
    )
    second = write(tmp_path, "b.pcapng.gz", gzip.compress(second_content))

    with merge_captures([first, second]) as merged:
        frames = list(merged)

    assert [frame[2] for frame in frames] == [b"a1", b"b2", b"a3", b"b4", b"a5"]
    assert [frame[1] for frame in frames] == [1, 101, 1, 101, 1]
    assert merged.errors == []


def test_merge_captures_error_raised_after_other_frames(tmp_path: Path) -> None:
    good = write(
        tmp_path, "good.pcap", pcap_bytes([(t, 0, b"g%d" % t) for t in (1, 3, 5, 7)])
    )
    cut_content = pcap_bytes([(2, 0, b"c2"), (4, 0, b"c4")])
    cut = write(tmp_path, "cut.pcap", cut_content[:-1])
    frames: list[Frame] = []

    merged = merge_captures([good, cut])
    with pytest.raises(TruncatedCaptureError) as info:
        for frame in merged:
            frames.append(frame)

    assert [frame[2] for frame in frames] == [b"g1", b"c2", b"g3", b"g5", b"g7"]
    assert info.value.path == cut
    assert merged.errors == [info.value]


def test_merge_captures_on_error_callback(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pcap", pcap_bytes([(1, 0, b"g1"), (3, 0, b"g3")]))
    cut = write(tmp_path, "cut.pcap", pcap_bytes([(2, 0, b"c2")])[:-1])
    reported: list[CaptureFileError] = []

    with merge_captures([good, cut], on_error=reported.append) as merged:
        frames = list(merged)

    assert [frame[2] for frame in frames] == [b"g1", b"g3"]
    assert len(reported) == 1
    assert reported[0].path == cut


def test_merge_captures_missing_file_raises_at_open(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pcap", pcap_bytes([(1, 0, b"g1")]))
    missing = str(tmp_path / "missing.pcap")

    with pytest.raises(CaptureFileError) as info:
        merge_captures([good, missing])

    assert info.value.path == missing


# Truncation and damage ----------------------------------------------------------


def test_pcap_truncated_record_yields_frames_before_cut(tmp_path: Path) -> None:
    records = [(1, 0, b"a" * 100), (2, 0, b"b" * 100), (3, 0, b"c" * 100)]
    content = pcap_bytes(records)
    path = write(tmp_path, "cut.pcap", content[:-50])

    frames, error = read_until_error(path)

    assert [frame[2] for frame in frames] == [b"a" * 100, b"b" * 100]
    assert isinstance(error, TruncatedCaptureError)
    assert error.offset == 24 + 2 * 116
    assert error.path == path
    assert path in str(error)
    assert "66 of 116 bytes" in error.reason


def test_pcap_truncated_record_header(tmp_path: Path) -> None:
    content = pcap_bytes([(1, 0, b"whole"), (2, 0, b"cut")])
    path = write(tmp_path, "cut.pcap", content[: 24 + 16 + 5 + 10])

    frames, error = read_until_error(path)

    assert len(frames) == 1
    assert isinstance(error, TruncatedCaptureError)
    assert error.offset == 24 + 16 + 5


def test_pcapng_truncated_block(tmp_path: Path) -> None:
    content = shb() + idb(1) + epb(0, 1, b"whole") + epb(0, 2, b"cut short")
    path = write(tmp_path, "cut.pcapng", content[:-6])

    frames, error = read_until_error(path)

    assert [frame[2] for frame in frames] == [b"whole"]
    assert isinstance(error, TruncatedCaptureError)
    assert error.offset == len(shb() + idb(1) + epb(0, 1, b"whole"))


def test_pcap_absurd_record_length(tmp_path: Path) -> None:
    content = pcap_bytes([(1, 0, b"fine")]) + struct.pack("<IIII", 2, 0, 0xFFFFFFFF, 60)
    path = write(tmp_path, "absurd.pcap", content)

    frames, error = read_until_error(path)

    assert len(frames) == 1
    assert not isinstance(error, TruncatedCaptureError)
    assert error.offset == 24 + 16 + 4
    assert "4294967295" in error.reason
    assert str(MAX_CAPLEN) in error.reason


def test_pcap_record_far_beyond_snaplen(tmp_path: Path) -> None:
    content = pcap_bytes([(1, 0, bytes(200_000))], snaplen=96)
    path = write(tmp_path, "snap.pcap", content)

    frames, error = read_until_error(path)

    assert frames == []
    assert "snaplen 96" in error.reason


def test_pcap_record_slightly_beyond_snaplen_accepted(tmp_path: Path) -> None:
    # A writer that ignores its 65,535-byte snaplen by a little is accepted.
    content = pcap_bytes([(1, 0, bytes(65549))], snaplen=65535)
    path = write(tmp_path, "gro.pcap", content)

    frames = read_all(path)

    assert len(frames[0][2]) == 65549


# Error messages -----------------------------------------------------------------


def open_error(path: str) -> CaptureFileError:
    with pytest.raises(CaptureFileError) as info:
        open_capture(path)
    return info.value


def test_error_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nothing.pcap")

    error = open_error(path)

    assert error.path == path
    assert path in str(error)
    assert "file not found" in error.reason


def test_error_directory(tmp_path: Path) -> None:
    error = open_error(str(tmp_path))

    assert error.path == str(tmp_path)
    assert "is a directory" in error.reason


def test_error_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.pcap", pcap_bytes([]))
    os.chmod(path, 0)
    if os.geteuid() == 0:
        # Root reads any file, so drop to nobody's user id for the open only.
        os.seteuid(65534)
        try:
            error = open_error(path)
        finally:
            os.seteuid(0)
    else:
        error = open_error(path)

    assert error.path == path
    assert "permission denied" in error.reason


def test_error_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.pcap", b"")

    error = open_error(path)

    assert error.path == path
    assert "file is empty" in error.reason


def test_error_unknown_magic_names_bytes_and_formats(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.pcap", b"hello world\n")

    error = open_error(path)

    assert "unknown file format" in error.reason
    assert "68 65 6c 6c 6f 20 77 6f" in error.reason
    assert "pcapng" in error.reason
    assert "gzip" in error.reason


def test_error_zip_archive_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "cap.zip", b"PK\x03\x04" + bytes(40))

    error = open_error(path)

    assert "zip archive" in error.reason


def test_error_truncated_pcap_header(tmp_path: Path) -> None:
    path = write(tmp_path, "short.pcap", pcap_bytes([])[:10])

    error = open_error(path)

    assert "10 bytes long" in error.reason
    assert "24-byte pcap file header" in error.reason


def test_error_gzip_of_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.gz", gzip.compress(b""))

    error = open_error(path)

    assert "decompresses to nothing" in error.reason


def test_error_pcapng_bad_byte_order_magic(tmp_path: Path) -> None:
    content = bytearray(shb())
    content[8:12] = b"\x00\x11\x22\x33"
    path = write(tmp_path, "bom.pcapng", bytes(content))

    error = open_error(path)

    assert "byte-order magic 00 11 22 33" in error.reason
    assert error.offset == 8


def test_error_pcapng_unsupported_version(tmp_path: Path) -> None:
    path = write(tmp_path, "v2.pcapng", shb(major=2))

    error = open_error(path)

    assert "version 2.0" in error.reason


@pytest.mark.parametrize(
    ("bad_block", "message"),
    [
        (struct.pack("<II", 0x0BAD, 8), "block total length 8, which is invalid"),
        (
            struct.pack("<II", 6, 33) + bytes(25),
            "block total length 33, which is invalid",
        ),
        (struct.pack("<II", 6, 0xFFFFFFF0), "more than the maximum"),
        (block(5, bytes(8))[:-4] + struct.pack("<I", 24), "trailing copy says 24"),
        (epb(0, 0, b"x")[:-4] + struct.pack("<I", 99), "trailing copy says 99"),
        (epb(3, 0, b"x"), "refers to interface 3"),
    ],
    ids=[
        "length below 12",
        "length not a multiple of 4",
        "length absurd",
        "trailer mismatch, skipped block",
        "trailer mismatch, packet block",
        "unknown interface",
    ],
)
def test_error_pcapng_block_lengths_that_lie(
    tmp_path: Path, bad_block: bytes, message: str
) -> None:
    good = shb() + idb(1) + epb(0, 0, b"good")
    path = write(tmp_path, "lie.pcapng", good + bad_block)

    frames, error = read_until_error(path)

    assert len(frames) == 1
    assert message in error.reason
    assert error.offset == len(good)
    assert error.path == path


def test_error_pcapng_captured_length_beyond_block(tmp_path: Path) -> None:
    bad = bytearray(epb(0, 0, b"abcd"))
    bad[20:24] = struct.pack("<I", 500)  # captured length
    path = write(tmp_path, "caplen.pcapng", shb() + idb(1) + bytes(bad))

    _, error = read_until_error(path)

    assert "captured length 500" in error.reason


# Reader behaviour ----------------------------------------------------------------


def test_reader_properties(tmp_path: Path) -> None:
    content = pcap_bytes([(1, 0, b"x" * 10)])
    path = write(tmp_path, "p.pcap", content)

    with open_capture(path) as reader:
        assert isinstance(reader, CaptureReader)
        assert reader.path == path
        assert reader.format == "pcap"
        assert reader.compressed is False
        assert reader.size == len(content)
        list(reader)
        assert reader.position == len(content)
        assert "p.pcap" in repr(reader)

    assert reader.position == len(content)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_reader_memory_stays_constant(tmp_path: Path, compress: bool) -> None:
    content = pcap_bytes(random_records(4000, 1000))
    if compress:
        content = gzip.compress(content, compresslevel=1)
    path = write(tmp_path, "big.pcap", content)
    count = 0

    tracemalloc.start()
    try:
        with open_capture(path) as reader:
            for _ in reader:
                count += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert count == 4000
    assert peak < 1024 * 1024


def test_reader_position_for_progress(tmp_path: Path) -> None:
    path = write(tmp_path, "big.pcap", pcap_bytes(random_records(4000, 1000)))

    with open_capture(path) as reader:
        next(iter(reader))
        position = reader.position
        size = reader.size

    assert size is not None
    assert size > 4_000_000
    assert position < 2000


def test_reader_iteration_resumes(tmp_path: Path) -> None:
    path = write(tmp_path, "r.pcap", pcap_bytes([(i, 0, b"%d" % i) for i in range(3)]))

    with open_capture(path) as reader:
        first = next(iter(reader))
        rest = list(reader)

    assert first[2] == b"0"
    assert [frame[2] for frame in rest] == [b"1", b"2"]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_reader_reads_from_pipe(tmp_path: Path, compress: bool) -> None:
    content = pcap_bytes([(1, 0, b"piped"), (2, 0, b"twice")])
    if compress:
        content = gzip.compress(content)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(content)

    writer = threading.Thread(target=feed)
    writer.start()
    with open_capture(fifo) as reader:
        frames = list(reader)
        size = reader.size
        position = reader.position
    writer.join(timeout=5)

    assert [frame[2] for frame in frames] == [b"piped", b"twice"]
    assert size is None
    assert position == 0


def test_reader_accepts_path_objects(tmp_path: Path) -> None:
    path = tmp_path / "p.pcap"
    path.write_bytes(pcap_bytes([(1, 0, b"x")]))

    with open_capture(path) as reader:
        assert reader.path == str(path)


def test_reader_frames_decode(tmp_path: Path) -> None:
    records = [(i, 0, tcp_frame(i, b"data")) for i in range(3)]
    path = write(tmp_path, "tcp.pcap", pcap_bytes(records))
    decoder = Decoder()

    segments = [decoder.decode(*frame) for frame in read_all(path)]

    assert [s.sport for s in segments if s is not None] == [40000, 40001, 40002]
    assert decoder.stats.tcp == 3


# Real traffic ----------------------------------------------------------------------


def wait_for_line(stream: object, text: str, timeout: float) -> bool:
    """Read lines from a subprocess pipe until one contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.1)
        if ready:
            line = stream.readline()  # type: ignore[attr-defined]
            if not line:
                return False
            if text in line:
                return True
    return False


def serve_once(server: socket.socket, reply: bytes) -> None:
    connection, _ = server.accept()
    with connection:
        connection.settimeout(5)
        connection.recv(100)
        connection.sendall(reply)
        connection.recv(100)  # returns b"" on the client's FIN


@pytest.mark.root
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("tcpdump") is None,
    reason="needs root and tcpdump to capture on lo",
)
def test_real_loopback_connection(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    port = server.getsockname()[1]
    path = tmp_path / "lo.pcap"
    # -Z root keeps tcpdump from switching to its own user, who could not write
    # into the test's private directory. Without --immediate-mode, packets wait
    # in the kernel ring for up to a second and are lost when tcpdump stops.
    command = ["tcpdump", "-i", "lo", "-U", "-n", "--immediate-mode", "-Z", "root"]
    command += ["-w", str(path)]
    tcpdump = subprocess.Popen(
        [*command, f"tcp port {port}"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for_line(tcpdump.stderr, "listening on", timeout=10)
        thread = threading.Thread(target=serve_once, args=(server, b"world!"))
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client_port = client.getsockname()[1]
            client.sendall(b"hello")
            assert client.recv(100) == b"world!"
        thread.join(timeout=5)
        time.sleep(0.5)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
        server.close()
    decoder = Decoder()

    decoded = [decoder.decode(*frame) for frame in read_all(str(path))]

    segments = [segment for segment in decoded if segment is not None]

    client_to_server = [s for s in segments if s.sport == client_port]
    server_to_client = [s for s in segments if s.sport == port]
    assert decoder.stats.frames == decoder.stats.tcp
    assert len(client_to_server) + len(server_to_client) == len(segments)
    assert all(s.dport == port for s in client_to_server)
    assert all(s.dport == client_port for s in server_to_client)
    assert all(s.src == bytes([127, 0, 0, 1]) for s in segments)
    handshake_flags = [s.flags & (SYN | ACK | FIN) for s in segments[:3]]
    assert handshake_flags == [SYN, SYN | ACK, ACK]
    assert segments[0].sport == client_port
    assert segments[1].ack == segments[0].seq + 1
    assert segments[2].ack == segments[1].seq + 1
    assert has_payload(client_to_server, b"hello")
    assert has_payload(server_to_client, b"world!")
    assert any(s.flags & FIN for s in client_to_server)
    assert any(s.flags & FIN for s in server_to_client)


def has_payload(segments: list[Segment], payload: bytes) -> bool:
    return any(s.payload_len == len(payload) and s.payload == payload for s in segments)
