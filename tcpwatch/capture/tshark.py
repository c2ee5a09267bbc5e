"""The tshark backend: Wireshark's dissectors, through pyshark, as a segment source.

pyshark runs tshark (and, for live captures, dumpcap) and parses its JSON
output. ``SegmentConverter`` turns each dissected packet into the same
``Segment`` record the native decoder makes, from tshark's raw field values
(``tcp.seq_raw``, ``tcp.flags``, ``tcp.options``, ...), so both backends feed
the tracker identical segments and give identical connection records. The
conversion follows the native decoder's rules where tshark's defaults differ:
IP fragments are not reassembled, TCP inside a tunnel or an ICMP error is not
a segment, and timestamps are built from the same integer parts.

tshark is slow next to the native path (about 1,000 packets per second through
pyshark's JSON parser on a 2-core machine), so this backend is for checking
tcpwatch against Wireshark and for link types only Wireshark can dissect.

This module reads capture files. ``tshark_packets`` converts the packets and
``tshark_live`` captures from an interface.
"""

import gzip
import heapq
import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tcpwatch.capture.pcapfile import open_capture
from tcpwatch.capture.segment import Segment
from tcpwatch.capture.tshark_live import TsharkLiveSource, dumpcap_error
from tcpwatch.capture.tshark_packets import (
    CHUNK_SIZE,
    JSON_PROTOCOLS,
    PREFERENCES,
    SegmentConverter,
    close_quietly,
    require_tshark,
    tshark_error_line,
    tshark_words,
    write_all,
)
from tcpwatch.errors import CaptureFileError
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import ReadResult

__all__ = [
    "CheckedFile",
    "SegmentConverter",
    "TsharkLiveSource",
    "check_captures",
    "dumpcap_error",
    "file_segments",
    "read_captures_tshark",
    "require_tshark",
    "tshark_error_line",
]

logger = logging.getLogger("tcpwatch.capture")


# Seconds to wait for tshark to exit once its output has ended.
_EXIT_TIMEOUT = 10.0


class CheckedFile:
    """A capture file the native reader has walked before tshark reads it.

    ``damage`` is the error that stopped the native reader, if one did. Every
    record before its ``offset`` is intact, so tshark then reads only those
    bytes (decompressed, for a gzip file) and never reaches the damage.
    """

    def __init__(self, path: str, compressed: bool) -> None:
        self.path = path
        self.compressed = compressed
        self.damage: CaptureFileError | None = None

    @property
    def intact_bytes(self) -> int | None:
        """Bytes of the capture before the damage, or None for a whole file."""
        if self.damage is None:
            return None
        return self.damage.offset or 0


def check_captures(paths: Iterable[str]) -> list[CheckedFile]:
    """Walk each file with the native reader and note where it is damaged.

    Every file is opened before any is walked, so a file that cannot be read
    at all (missing, a directory, empty, not a capture) raises
    ``CaptureFileError`` before anything is printed, as with the native
    backend. The walk reads records without decoding them, which costs little
    next to tshark's dissection.
    """
    readers = []
    try:
        for path in paths:
            readers.append(open_capture(path))
        checked = []
        for reader in readers:
            entry = CheckedFile(reader.path, reader.compressed)
            try:
                for _ in reader:
                    pass
            except CaptureFileError as error:
                logger.debug("tshark.damaged path=%s error=%s", reader.path, error)
                entry.damage = error
            checked.append(entry)
        return checked
    finally:
        for reader in readers:
            reader.close()


def file_segments(
    path: str,
    converter: SegmentConverter,
    *,
    intact_bytes: int | None = None,
    errors: list[CaptureFileError] | None = None,
) -> Iterator[Segment]:
    """Yield the TCP segments of a capture file as tshark dissects them.

    With ``intact_bytes``, tshark reads only the file's first ``intact_bytes``
    bytes (decompressed), through a pipe. When tshark fails, the error is
    appended to ``errors`` after the segments it printed have been yielded,
    or raised as ``CaptureFileError`` when ``errors`` is None.
    """
    from pyshark.capture.capture import TSharkCrashException

    prefs = dict(PREFERENCES)
    if converter.validate_checksums:
        prefs.update({"ip.check_checksum": "TRUE", "tcp.check_checksum": "TRUE"})
    capture = _open_file_capture(path, prefs, intact_bytes)
    convert = converter.convert
    failure = None
    try:
        for packet in capture:
            segment = convert(packet)
            if segment is not None:
                yield segment
        failure = _failed_exit(capture)
    except TSharkCrashException as crash:
        failure = tshark_error_line(crash)
    finally:
        close_quietly(capture)
    if failure is None:
        return
    error = CaptureFileError(
        path,
        f"tshark failed to read it: {failure}; the native backend (without "
        "--backend tshark) may read it",
    )
    if errors is None:
        raise error
    errors.append(error)


def _failed_exit(capture: Any) -> str | None:
    """Wait for tshark to exit after its output ended; return its error if it failed.

    pyshark raises ``TSharkCrashException`` only when tshark has exited by
    the time pyshark closes the capture, and kills it otherwise. A tshark
    that failed at the end of a file can still be writing its message then,
    so its exit status is collected here first.
    """
    import asyncio

    loop = capture.eventloop
    for process in list(capture._running_processes):
        try:
            loop.run_until_complete(asyncio.wait_for(process.wait(), _EXIT_TIMEOUT))
        except TimeoutError:
            logger.debug("tshark.exit_timeout pid=%s", process.pid)
            continue
        if process.returncode:
            # The message is complete once tshark's stderr has ended.
            loop.run_until_complete(asyncio.gather(*capture._stderr_handling_tasks))
            return tshark_words(capture._last_error_line)
    return None


def _open_file_capture(
    path: str, prefs: dict[str, str], intact_bytes: int | None
) -> Any:
    """Return a pyshark capture of the whole file, or of its intact bytes."""
    import pyshark
    from pyshark.capture.pipe_capture import PipeCapture

    options: dict[str, Any] = {
        "use_json": True,
        "override_prefs": prefs,
        "custom_parameters": JSON_PROTOCOLS,
    }
    if intact_bytes is None:
        return pyshark.FileCapture(path, keep_packets=False, **options)
    read_end, write_end = os.pipe()
    feeder = threading.Thread(
        target=_feed_intact_bytes,
        args=(path, intact_bytes, write_end),
        name="tcpwatch-tshark-feed",
        daemon=True,
    )
    feeder.start()
    return PipeCapture(pipe=read_end, **options)


def _feed_intact_bytes(path: str, size: int, write_end: int) -> None:
    """Write the first ``size`` bytes of the capture, decompressed, to a pipe."""
    try:
        with open(path, "rb") as raw:
            stream: Any = raw
            if raw.peek(2)[:2] == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=raw, mode="rb")
            left = size
            while left > 0:
                chunk = stream.read1(min(left, CHUNK_SIZE))
                if not chunk:
                    break
                left -= len(chunk)
                write_all(write_end, chunk)
    except (OSError, EOFError, zlib.error) as error:
        # tshark then reports the stream as cut short; the native reader's
        # error, which the caller reports, says where the damage is.
        logger.debug("tshark.feed_failed path=%s error=%s", path, error)
    finally:
        os.close(write_end)


def read_captures_tshark(
    paths: list[str],
    tracker: FlowTracker,
    on_finished: Callable[[Connection], None],
    *,
    validate_checksums: bool = False,
) -> ReadResult:
    """Read ``paths`` through tshark, as ``pipeline.read_captures`` does natively.

    Several files are merged in timestamp order. Errors follow the native
    backend: a file that cannot be opened raises ``CaptureFileError`` before
    anything is read, and a file damaged part of the way through is analysed
    up to the damage, with the error returned in ``ReadResult.errors``.
    """
    require_tshark()
    checked = check_captures(paths)
    converter = SegmentConverter(validate_checksums)
    result = ReadResult(paths=list(paths), stats=converter.stats)
    failures: list[CaptureFileError] = []
    per_file = [
        file_segments(
            entry.path,
            converter,
            intact_bytes=entry.intact_bytes,
            errors=failures,
        )
        for entry in checked
    ]
    streams: Iterable[Segment] = per_file[0]
    if len(per_file) > 1:
        streams = heapq.merge(*per_file, key=lambda segment: segment.ts)
    process = tracker.process
    for count, segment in enumerate(streams, 1):
        process(segment)
        if count % 4096 == 0:
            for conn in tracker.pop_finished():
                result.connections += 1
                on_finished(conn)
    for conn in tracker.pop_finished() + tracker.flush():
        result.connections += 1
        on_finished(conn)
    # A damaged file's own error says more than tshark's about the same file.
    damaged = {entry.path: entry.damage for entry in checked if entry.damage}
    result.errors = list(damaged.values())
    result.errors += [error for error in failures if error.path not in damaged]
    result.reordered = tracker.reordered
    result.evicted = tracker.evicted
    return result
