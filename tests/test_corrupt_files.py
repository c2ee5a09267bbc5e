"""Corrupt capture files through ``tcpwatch read``, run as a process.

Each damaged file must give one clear error that names the file and the byte
offset of the damage, and every connection in the records before the damage
must still be analysed and printed. A record that claims gigabytes must not
be allocated: the command runs with its address space limited to 512 MiB.
"""

import gzip
import json
import os
import re
import resource
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from fuzzing import (
    CAPTURES,
    pcapng_block,
    pcapng_bytes,
    read_frames,
    write_pcap,
)

from tcpwatch.capture.pcapfile import open_capture
from tcpwatch.errors import CaptureFileError

ADDRESS_SPACE_LIMIT = 512 * 1024 * 1024
GIGABYTES = 0xFFFFFFF0


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


class Read:
    """The outcome of one ``tcpwatch read --format json``."""

    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.status = done.returncode
        self.stderr = done.stderr
        self.records = [json.loads(line) for line in done.stdout.splitlines()]


def tcpwatch_read(*paths: Path | str) -> Read:
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", *map(str, paths), "-F", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=limit_address_space,
    )
    return Read(done)


def two_connections() -> list:
    """Frames of two connections: a clean exchange, then a refused attempt."""
    clean = read_frames(CAPTURES / "clean-exchange.pcap")
    refused = read_frames(CAPTURES / "refused.pcap")
    shift = clean[-1][0] + 1 - refused[0][0]
    return clean + [(ts + shift, *rest) for ts, *rest in refused]


def good_pcap(tmp_path: Path) -> tuple[bytes, int]:
    """Return a pcap of ``two_connections`` and its frame count."""
    frames = two_connections()
    path = write_pcap(tmp_path / "good.pcap", frames, 1)
    return path.read_bytes(), len(frames)


def check_error(read: Read, path: Path | str, offset: int | None) -> str:
    """Check the one error line: file name, offset, no traceback."""
    assert "Traceback" not in read.stderr
    errors = [line for line in read.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, read.stderr
    where = f"{path} at byte {offset}:" if offset is not None else f"{path}:"
    assert where in errors[0]
    return errors[0]


def check_both_connections(read: Read) -> None:
    states = sorted(record["conn_state"] for record in read.records)
    assert states == ["REJ", "SF"]


# Files that cannot be opened ------------------------------------------------------


def test_corrupt_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pcap"
    path.write_bytes(b"\xde\xad\xbe\xef" + bytes(100))

    read = tcpwatch_read(path)

    assert read.status == 2
    error = check_error(read, path, 0)
    assert "unknown file format" in error
    assert "de ad be ef" in error
    assert read.records == []


@pytest.mark.parametrize(
    ("head", "size"),
    [(b"\xd4\xc3\xb2\xa1", 24), (b"\x0a\x0d\x0d\x0a", 12)],
    ids=["pcap", "pcapng"],
)
def test_corrupt_truncated_file_header(tmp_path: Path, head: bytes, size: int) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(head + bytes(size - len(head) - 3))

    read = tcpwatch_read(path)

    assert read.status == 2
    error = check_error(read, path, 0)
    assert f"shorter than the {size}-byte" in error


def test_corrupt_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")

    read = tcpwatch_read(path)

    assert read.status == 2
    assert "empty" in check_error(read, path, 0)


def test_corrupt_directory(tmp_path: Path) -> None:
    read = tcpwatch_read(tmp_path)

    assert read.status == 2
    assert "is a directory" in check_error(read, tmp_path, None)


def test_corrupt_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.pcap"
    loop.symlink_to(loop)

    read = tcpwatch_read(loop)

    assert read.status == 2
    assert "symbolic links" in check_error(read, loop, None)


def test_corrupt_one_bad_file_stops_before_reading(tmp_path: Path) -> None:
    """A file that cannot be opened fails the run before any is read."""
    good_pcap(tmp_path)
    good = tmp_path / "good.pcap"
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")

    read = tcpwatch_read(good, bad)

    assert read.status == 2
    check_error(read, bad, 0)
    assert read.records == []


# Damage after good records ----------------------------------------------------------


def test_corrupt_pcap_record_of_gigabytes(tmp_path: Path) -> None:
    content, frames = good_pcap(tmp_path)
    path = tmp_path / "huge.pcap"
    path.write_bytes(content + struct.pack("<IIII", 1, 0, GIGABYTES, GIGABYTES))

    read = tcpwatch_read(path)

    assert read.status == 1
    error = check_error(read, path, len(content))
    assert f"captured length {GIGABYTES}" in error
    check_both_connections(read)
    assert f"{frames} frames" in read.stderr


def test_corrupt_pcap_record_of_gigabytes_not_allocated(tmp_path: Path) -> None:
    content, frames = good_pcap(tmp_path)
    path = tmp_path / "huge.pcap"
    path.write_bytes(content + struct.pack("<IIII", 1, 0, GIGABYTES, GIGABYTES))

    tracemalloc.start()
    try:
        with open_capture(path) as reader, pytest.raises(CaptureFileError):
            for _ in reader:
                pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 4 * 1024 * 1024


def test_corrupt_pcap_truncated_record(tmp_path: Path) -> None:
    content, _ = good_pcap(tmp_path)
    path = tmp_path / "cut.pcap"
    record = struct.pack("<IIII", 5000, 0, 100, 100) + bytes(40)
    path.write_bytes(content + record)

    read = tcpwatch_read(path)

    assert read.status == 1
    error = check_error(read, path, len(content))
    assert "56 of 116 bytes present" in error
    check_both_connections(read)


def test_corrupt_pcap_truncated_record_header(tmp_path: Path) -> None:
    content, _ = good_pcap(tmp_path)
    path = tmp_path / "cut.pcap"
    path.write_bytes(content + bytes(7))

    read = tcpwatch_read(path)

    assert read.status == 1
    assert "7 of 16 bytes present" in check_error(read, path, len(content))
    check_both_connections(read)


def good_pcapng() -> tuple[bytes, int]:
    frames = two_connections()
    return pcapng_bytes(frames), len(frames)


PCAPNG_DAMAGE = {
    "packet block of gigabytes": (
        struct.pack("<II", 6, GIGABYTES) + bytes(40),
        f"block total length {GIGABYTES}",
    ),
    "unknown block of gigabytes": (
        struct.pack("<II", 0x0BAD, GIGABYTES) + bytes(40),
        "the file ends inside the record",
    ),
    "length not a multiple of 4": (
        struct.pack("<II", 6, 45) + bytes(37),
        "block total length 45, which is invalid",
    ),
    "length below the minimum": (
        struct.pack("<II", 6, 8) + bytes(8),
        "block total length 8, which is invalid",
    ),
    "trailing length differs": (
        pcapng_block(6, bytes(24))[:-4] + struct.pack("<I", 99),
        "trailing copy says 99",
    ),
    "unknown block, trailing length differs": (
        pcapng_block(0x0BAD, bytes(8))[:-4] + struct.pack("<I", 7),
        "trailing copy says 7",
    ),
    "packet on an undescribed interface": (
        pcapng_block(6, struct.pack("<IIIII", 3, 0, 0, 0, 0)),
        "refers to interface 3",
    ),
    "captured length beyond the block": (
        pcapng_block(6, struct.pack("<IIIII", 0, 0, 0, 500, 500) + bytes(8)),
        "captured length 500",
    ),
}


@pytest.mark.parametrize("damage", sorted(PCAPNG_DAMAGE))
def test_corrupt_pcapng_lying_block(tmp_path: Path, damage: str) -> None:
    content, frames = good_pcapng()
    bad_block, message = PCAPNG_DAMAGE[damage]
    path = tmp_path / "lie.pcapng"
    path.write_bytes(content + bad_block)

    read = tcpwatch_read(path)

    assert read.status == 1
    assert message in check_error(read, path, len(content))
    check_both_connections(read)
    assert f"{frames} frames" in read.stderr


def test_corrupt_pcapng_unknown_blocks_skipped(tmp_path: Path) -> None:
    """Blocks of unknown types with honest lengths are skipped, not errors."""
    frames = two_connections()
    whole = pcapng_bytes(frames)
    header_end = len(pcapng_bytes([]))
    unknown = pcapng_block(0x0BAD, b"\xff" * 40) + pcapng_block(0x80000001, b"x")
    path = tmp_path / "unknown.pcapng"
    path.write_bytes(whole[:header_end] + unknown + whole[header_end:] + unknown)

    read = tcpwatch_read(path)

    assert read.status == 0, read.stderr
    check_both_connections(read)
    assert f"{len(frames)} frames" in read.stderr


def test_corrupt_second_file_keeps_first(tmp_path: Path) -> None:
    """Damage in one of several files ends that file only."""
    frames = two_connections()
    first = write_pcap(tmp_path / "first.pcap", frames[:18], 1)
    content = write_pcap(tmp_path / "tmp.pcap", frames[18:], 1).read_bytes()
    second = tmp_path / "second.pcap"
    second.write_bytes(content[:-5])

    read = tcpwatch_read(first, second)

    assert read.status == 1
    check_error(read, second, 24 + 16 + len(frames[18][2]))
    assert [record["conn_state"] for record in read.records] == ["SF", "S0"]


def test_corrupt_gzip_cut_short(tmp_path: Path) -> None:
    content, _ = good_pcap(tmp_path)
    compressed = gzip.compress(content + content[24:])
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(compressed[: len(compressed) - 12])

    read = tcpwatch_read(path)

    assert read.status == 1
    assert "Traceback" not in read.stderr
    assert re.search(
        rf"{re.escape(str(path))} at byte \d+: the gzip stream ends", read.stderr
    )
    assert len(read.records) >= 2


# Devices and pipes -----------------------------------------------------------------


def test_corrupt_device_of_zeros() -> None:
    read = tcpwatch_read("/dev/zero")

    assert read.status == 2
    assert "00 00 00 00" in check_error(read, "/dev/zero", 0)


def test_corrupt_device_empty() -> None:
    read = tcpwatch_read("/dev/null")

    assert read.status == 2
    assert "empty" in check_error(read, "/dev/null", 0)


def feed_fifo(path: Path, content: bytes, chunk: int, pause: float) -> threading.Thread:
    """Write ``content`` into a FIFO in chunks from a thread, then close it."""

    def write() -> None:
        with open(path, "wb", buffering=0) as fifo:
            for start in range(0, len(content), chunk):
                try:
                    fifo.write(content[start : start + chunk])
                except BrokenPipeError:
                    return
                time.sleep(pause)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "capture.fifo"
    os.mkfifo(path)
    return path


def test_corrupt_fifo_with_valid_capture(fifo: Path, tmp_path: Path) -> None:
    content, frames = good_pcap(tmp_path)
    writer = feed_fifo(fifo, content, 4096, 0.0)

    read = tcpwatch_read(fifo)

    writer.join(10)
    assert read.status == 0, read.stderr
    check_both_connections(read)
    assert f"{frames} frames" in read.stderr


def test_corrupt_fifo_with_capture_in_small_pieces(fifo: Path, tmp_path: Path) -> None:
    """A pipe may deliver the file header a few bytes at a time."""
    content, _ = good_pcap(tmp_path)
    writer = feed_fifo(fifo, content, 3, 0.002)

    read = tcpwatch_read(fifo)

    writer.join(30)
    assert read.status == 0, read.stderr
    check_both_connections(read)


def test_corrupt_fifo_with_garbage(fifo: Path) -> None:
    writer = feed_fifo(fifo, b"GET / HTTP/1.1\r\n" * 100, 512, 0.0)

    read = tcpwatch_read(fifo)

    writer.join(10)
    assert read.status == 2
    assert "47 45 54 20" in check_error(read, fifo, 0)
    assert read.records == []


def test_corrupt_fifo_garbage_after_valid_records(fifo: Path, tmp_path: Path) -> None:
    content, _ = good_pcap(tmp_path)
    garbage = struct.pack("<IIII", 5000, 0, GIGABYTES, GIGABYTES) + bytes(64)
    writer = feed_fifo(fifo, content + garbage, 1024, 0.0)

    read = tcpwatch_read(fifo)

    writer.join(10)
    assert read.status == 1
    assert f"captured length {GIGABYTES}" in check_error(read, fifo, len(content))
    check_both_connections(read)
