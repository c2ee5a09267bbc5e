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
"""

import contextlib
import gzip
import heapq
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tcpwatch.capture.decoder import DecodeStats
from tcpwatch.capture.pcapfile import open_capture
from tcpwatch.capture.segment import PAYLOAD_PREVIEW, Segment
from tcpwatch.errors import (
    CaptureFileError,
    CapturePermissionError,
    TcpwatchError,
    TsharkMissingError,
    UsageError,
)
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import ReadResult

logger = logging.getLogger("tcpwatch.capture")

# tshark preferences that make its dissection match the native decoder.
_PREFERENCES = {
    "ip.defragment": "FALSE",
    "ipv6.defragment": "FALSE",
    "tcp.desegment_tcp_streams": "FALSE",
}
# Only these protocols' fields are printed, which keeps the JSON small.
_JSON_PROTOCOLS = ["-J", "frame ip ipv6 tcp"]
# Bytes copied per read between dumpcap, files and tshark.
_CHUNK = 64 * 1024
# Seconds to wait for tshark to exit once its output has ended.
_EXIT_TIMEOUT = 10.0

# Wireshark's checksum status value for a wrong checksum (PROTO_CHECKSUM_E_BAD).
_CHECKSUM_BAD = "0"

_DUMPCAP_DROPS = re.compile(r"Packets received/dropped on interface .*: (\d+)/(\d+)")
# dumpcap's explanation of a capture filter it cannot compile.
_FILTER_REASON = re.compile(r"valid capture filter \((.*)\)")
# The line of tshark's stderr that pyshark quotes in TSharkCrashException.
_LAST_ERROR_LINE = re.compile(r"Last error line: (.*)")


def require_tshark() -> str:
    """Return the path of tshark, or raise TsharkMissingError naming the fix."""
    path = shutil.which("tshark")
    if path is None:
        raise TsharkMissingError(
            "the tshark backend needs tshark, which was not found on PATH; "
            "install the Debian package tshark (sudo apt-get install tshark)"
        )
    try:
        import pyshark  # noqa: F401
    except ImportError:
        raise TsharkMissingError(
            "the tshark backend needs the Python package pyshark, which is not "
            "installed; install it with: pip install 'tcpwatch[tshark]'"
        ) from None
    return path


class SegmentConverter:
    """Turn pyshark packets into ``Segment`` records, counting as the decoder does."""

    def __init__(self, validate_checksums: bool = False) -> None:
        self.validate_checksums = validate_checksums
        self.stats = DecodeStats()

    def convert(self, packet: Any) -> Segment | None:
        """Return the packet's TCP segment, or None when it carries none."""
        stats = self.stats
        stats.frames += 1
        layers = packet.layers
        names = [layer.layer_name for layer in layers]
        position = next(
            (index for index, name in enumerate(names) if name in ("ip", "ipv6")), -1
        )
        if position < 0:
            stats.non_tcp += 1
            return None
        ip = layers[position]
        is_ipv4 = names[position] == "ip"
        if _is_fragment(ip, is_ipv4):
            # tshark dissects the TCP header of a first fragment; the decoder
            # does not analyse fragments at all.
            stats.fragments += 1
            stats.non_tcp += 1
            return None
        tcp = layers[position + 1] if position + 1 < len(layers) else None
        if tcp is None or tcp.layer_name != "tcp":
            self._count_other(packet, ip, is_ipv4)
            return None
        if is_ipv4:
            family = socket.AF_INET
            ip_len = int(ip.get_field("len"))
        else:
            family = socket.AF_INET6
            ip_len = 40 + int(ip.get_field("plen"))
        fields = tcp.field_names
        options = _hex_bytes(tcp.get_field("options")) if "options" in fields else b""
        payload = b""
        if "payload" in fields:
            payload = _hex_bytes(tcp.get_field("payload"))[:PAYLOAD_PREVIEW]
        bad_checksum = False
        if self.validate_checksums:
            bad_checksum = _checksum_bad(tcp) or (is_ipv4 and _checksum_bad(ip))
            if bad_checksum:
                stats.bad_checksum += 1
        stats.tcp += 1
        return Segment(
            _timestamp(packet.frame_info.get_field("time_epoch")),
            socket.inet_pton(family, ip.get_field("src")),
            socket.inet_pton(family, ip.get_field("dst")),
            int(tcp.get_field("srcport")),
            int(tcp.get_field("dstport")),
            int(tcp.get_field("seq_raw")),
            int(tcp.get_field("ack_raw")) if "ack_raw" in fields else 0,
            int(tcp.get_field("flags"), 16) & 0xFF,
            int(tcp.get_field("window_size_value")),
            int(tcp.get_field("len")),
            ip_len,
            options,
            payload,
            bad_checksum,
        )

    def _count_other(self, packet: Any, ip: Any, is_ipv4: bool) -> None:
        """Count an IP packet without a segment as the native decoder would."""
        stats = self.stats
        protocol = ip.get_field("proto" if is_ipv4 else "nxt")
        if protocol == "6":
            frame = packet.frame_info
            if int(frame.get_field("cap_len")) < int(frame.get_field("len")):
                stats.truncated += 1
            else:
                stats.malformed += 1
        else:
            stats.non_tcp += 1


def _is_fragment(ip: Any, is_ipv4: bool) -> bool:
    """Return whether the packet is an IP fragment, first fragments included.

    An IPv6 fragment header with offset 0 and no more fragments (an atomic
    fragment, RFC 6946) contains a whole packet and is not a fragment.
    """
    if is_ipv4:
        if int(ip.get_field("frag_offset") or 0):
            return True
        flags = ip.get_field("flags_tree")
        return flags is not None and str(getattr(flags, "mf", "0")) == "1"
    if "fraghdr" not in ip.field_names:
        return False
    header = ip.get_field("fraghdr")
    offset = str(getattr(header, "offset", "0"))
    more = str(getattr(header, "more", "0"))
    return offset != "0" or more != "0"


def _checksum_bad(layer: Any) -> bool:
    return "checksum.status" in layer.field_names and (
        layer.get_field("checksum.status") == _CHECKSUM_BAD
    )


def _hex_bytes(value: Any) -> bytes:
    """Return the bytes of a tshark byte field printed as ``0a:1b:...``."""
    if not value:
        return b""
    return bytes.fromhex(str(value).replace(":", ""))


def _timestamp(epoch: str) -> float:
    """Return ``frame.time_epoch`` as the native readers compute it.

    pcap readers add the fraction, divided by its units per second, to the
    whole seconds. Doing the same with the nine-digit fraction gives the
    very same float for microsecond and nanosecond files, where parsing the
    decimal string could differ in the last bit.
    """
    seconds, _, fraction = epoch.partition(".")
    return int(seconds) + int(fraction.ljust(9, "0")[:9]) / 1e9


# -- files ---------------------------------------------------------------------


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

    prefs = dict(_PREFERENCES)
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
        _close_quietly(capture)
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
            return _tshark_words(capture._last_error_line)
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
        "custom_parameters": _JSON_PROTOCOLS,
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
                chunk = stream.read1(min(left, _CHUNK))
                if not chunk:
                    break
                left -= len(chunk)
                _write_all(write_end, chunk)
    except (OSError, EOFError, zlib.error) as error:
        # tshark then reports the stream as cut short; the native reader's
        # error, which the caller reports, says where the damage is.
        logger.debug("tshark.feed_failed path=%s error=%s", path, error)
    finally:
        os.close(write_end)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def tshark_error_line(crash: BaseException) -> str:
    """Return tshark's own last error line from a pyshark crash exception.

    pyshark's message adds its process id, return code and a hint about its
    debug mode, none of which helps a tcpwatch user.
    """
    match = _LAST_ERROR_LINE.search(str(crash))
    return _tshark_words(match.group(1) if match else "")


def _tshark_words(line: str | None) -> str:
    line = (line or "").strip().removeprefix("tshark: ")
    return line or "tshark ended with an error and printed no message"


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


# -- live ----------------------------------------------------------------------

_END = object()
# Seconds to wait for dumpcap to start capturing.
_START_TIMEOUT = 15.0
# Lines of dumpcap's stderr kept for error messages.
_STDERR_LINES = 40


class TsharkLiveSource:
    """A live capture through dumpcap and tshark, yielding batches of segments.

    dumpcap captures and writes a pcap stream. A thread copies the stream to
    the ``write`` file, if any, and into a pipe that tshark reads through
    pyshark, so the saved file contains exactly the packets analysed. pyshark
    runs in a thread of its own and hands segments over through a queue; a
    frame without a TCP segment is handed over as None, so that packet counts
    stay right. Stopping ends dumpcap; the end of its stream then ends the
    file, tshark and the batches in turn.

    NOTE: the Python process does not drop root with this backend: dumpcap
    and tshark run as the user who started tcpwatch.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf_filter: str = "",
        snaplen: int = 262144,
        promiscuous: bool = True,
        write: str | None = None,
    ) -> None:
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.snaplen = snaplen
        self.promiscuous = promiscuous
        self.write = write
        self.converter = SegmentConverter()
        self.received: int | None = None
        self.dropped: int | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=100000)
        self._dumpcap: subprocess.Popen[bytes] | None = None
        self._stderr: list[str] = []
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._streaming = threading.Event()
        self._stderr_done = threading.Event()
        self._started = False
        if interface != "any":
            from tcpwatch.capture.live import interface_index

            interface_index(interface)

    def start(self, count: int = 0, stop: threading.Event | None = None) -> None:
        """Start dumpcap and tshark, and wait until the capture runs.

        dumpcap writes the pcap file header once the interface is open and
        the filter compiled. Waiting for it means that the caller can announce
        the capture as running, as with the native source, and that a capture
        dumpcap could not start raises here, with dumpcap's reason.

        Raises:
            CapturePermissionError: dumpcap lacks root or CAP_NET_RAW.
            UsageError: the capture filter does not compile.
            TcpwatchError: dumpcap failed for another reason.
        """
        read_end = self._start(count)
        waited = time.monotonic() + _START_TIMEOUT
        while not self._streaming.wait(0.1):
            if not self._dumpcap_running():
                break
            if (stop is not None and stop.is_set()) or time.monotonic() > waited:
                break
        if not self._dumpcap_running():
            failure = self._dumpcap_failure()
            if failure is not None:
                os.close(read_end)
                raise failure
        self._spawn(self._dissect, read_end)
        self._started = True

    def batches(
        self, status: Any, stop: threading.Event, *, count: int = 0, duration: float = 0
    ) -> Iterator[list[Segment | None]]:
        """Yield segments in batches until stopped; see ``live.capture_batches``.

        Starts the capture first unless ``start`` was called, which then set
        the packet count.
        """
        status.decode = self.converter.stats
        if not self._started:
            self.start(count, stop)
        deadline = time.monotonic() + duration if duration > 0 else None
        stopping = False
        while True:
            if not stopping and (
                stop.is_set() or (deadline is not None and time.monotonic() > deadline)
            ):
                stopping = True
                self._stop_dumpcap()
            batch, ended = self._next_batch()
            status.received, status.dropped = self.received, self.dropped
            yield batch
            if ended:
                break
        if self._error is not None:
            raise self._error
        failure = self._dumpcap_failure()
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Stop dumpcap if it still runs, and wait for the threads."""
        self._stop_dumpcap()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._dumpcap is not None:
            self._dumpcap.wait(timeout=10)

    def _start(self, count: int) -> int:
        """Start dumpcap and the copying thread; return the pipe tshark reads."""
        command = ["dumpcap", "-i", self.interface, "-s", str(self.snaplen), "-P"]
        if not self.promiscuous:
            command.append("-p")
        if self.bpf_filter:
            command += ["-f", self.bpf_filter]
        if count:
            command += ["-c", str(count)]
        command += ["-w", "-"]
        output = None
        if self.write:
            try:
                output = open(self.write, "wb")  # noqa: SIM115 - closed by _copy
            except OSError as error:
                raise CaptureFileError(
                    self.write, f"cannot be written: {error.strerror}"
                ) from None
        logger.debug("tshark.dumpcap command=%s", command)
        self._dumpcap = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        read_end, write_end = os.pipe()
        self._spawn(self._copy, write_end, output)
        self._spawn(self._read_stderr)
        return read_end

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _copy(self, write_end: int, output: Any) -> None:
        """Copy dumpcap's pcap stream to the file and to tshark's pipe."""
        assert self._dumpcap is not None and self._dumpcap.stdout is not None
        descriptor = self._dumpcap.stdout.fileno()
        try:
            while chunk := os.read(descriptor, _CHUNK):
                self._streaming.set()
                if output is not None:
                    output.write(chunk)
                    output.flush()
                _write_all(write_end, chunk)
        except BrokenPipeError:
            pass  # tshark ended first; its error is reported by _dissect
        finally:
            os.close(write_end)
            if output is not None:
                output.close()

    def _read_stderr(self) -> None:
        assert self._dumpcap is not None and self._dumpcap.stderr is not None
        try:
            for raw in self._dumpcap.stderr:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                self._stderr.append(line)
                # dumpcap's permission message alone is about 15 lines.
                del self._stderr[:-_STDERR_LINES]
                match = _DUMPCAP_DROPS.search(line)
                if match:
                    self.received = int(match.group(1))
                    self.dropped = int(match.group(2))
        finally:
            self._stderr_done.set()

    def _dissect(self, read_end: int) -> None:
        from pyshark.capture.pipe_capture import PipeCapture

        capture = None
        try:
            capture = PipeCapture(
                pipe=read_end,
                use_json=True,
                override_prefs=dict(_PREFERENCES),
                custom_parameters=_JSON_PROTOCOLS,
            )
            convert = self.converter.convert
            put = self._queue.put
            for packet in capture:
                put(convert(packet))
        except BaseException as error:
            self._error = self._translate(error)
        finally:
            if capture is not None:
                _close_quietly(capture)
            self._queue.put(_END)

    def _next_batch(self) -> tuple[list[Segment | None], bool]:
        batch: list[Segment | None] = []
        try:
            item = self._queue.get(timeout=0.1)
            while True:
                if item is _END:
                    return batch, True
                batch.append(item)
                if len(batch) >= 1024:
                    break
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        return batch, False

    def _translate(self, error: BaseException) -> BaseException:
        """Turn a failure of tshark into the error that explains it.

        tshark fails when dumpcap does, since its input then ends early, and
        dumpcap's messages name the cause. Otherwise pyshark's crash message
        is reduced to tshark's own words.
        """
        from pyshark.capture.capture import TSharkCrashException

        failure = self._dumpcap_failure()
        if failure is not None:
            return failure
        if isinstance(error, TSharkCrashException):
            return TcpwatchError(
                f"tshark failed while dissecting the capture on {self.interface!r}: "
                f"{tshark_error_line(error)}; check that 'tshark -i "
                f"{self.interface}' runs, or capture with --backend native"
            )
        return error

    def _dumpcap_failure(self) -> TcpwatchError | None:
        """Return the error dumpcap reported, once it has exited; None if none.

        An exit caused by the stop request (SIGTERM) or by ``-c`` is status 0.
        """
        if self._dumpcap is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._dumpcap.wait(timeout=5)
        if not self._dumpcap.returncode:
            return None
        self._stderr_done.wait(timeout=5)
        return dumpcap_error(
            self.interface, self.bpf_filter, self._dumpcap.returncode, self._stderr
        )

    def _dumpcap_running(self) -> bool:
        return self._dumpcap is not None and self._dumpcap.poll() is None

    def _stop_dumpcap(self) -> None:
        if self._dumpcap_running():
            assert self._dumpcap is not None
            with contextlib.suppress(ProcessLookupError):
                self._dumpcap.send_signal(signal.SIGTERM)


def dumpcap_error(
    interface: str, bpf_filter: str, status: int, stderr: list[str]
) -> TcpwatchError:
    """Return the tcpwatch error for dumpcap's exit ``status`` and ``stderr`` lines.

    The messages match the native backend's for the same causes, with the
    fix for dumpcap: it captures, so it needs the capabilities.
    """
    text = "\n".join(stderr)
    if "permission" in text.lower() or "not permitted" in text.lower():
        dumpcap = shutil.which("dumpcap") or "/usr/bin/dumpcap"
        return CapturePermissionError(
            f"capturing on {interface!r} needs root or the CAP_NET_RAW capability: "
            "run the command with sudo, or grant dumpcap the capabilities once "
            f"with: sudo setcap cap_net_raw,cap_net_admin=ep {dumpcap}"
        )
    if "Invalid capture filter" in text:
        # dumpcap explains on a later line: "That string isn't a valid capture
        # filter (unknown port 'banana')."
        reason = "dumpcap cannot compile it"
        for line in stderr:
            match = _FILTER_REASON.search(line)
            if match:
                reason = match.group(1)
        return UsageError(
            f"invalid capture filter {bpf_filter!r}: {reason}; "
            "see pcap-filter(7) for the syntax"
        )
    messages = [line for line in stderr if line.startswith("dumpcap: ")]
    message = (messages or stderr or ["no message"])[-1].removeprefix("dumpcap: ")
    return TcpwatchError(
        f"dumpcap failed to capture on {interface!r} (exit status {status}): "
        f"{message}; run 'dumpcap -i {interface} -w /dev/null' for the whole message"
    )


def _close_quietly(capture: Any) -> None:
    """Close a pyshark capture whose tshark may have ended with an error.

    pyshark's ``__del__`` closes a capture again while it still lists running
    processes, and a second close of a pipe capture fails on the closed pipe,
    printing a traceback at exit. Emptying the list after the first attempt
    prevents that.
    """
    try:
        capture.close()
    except Exception as error:  # tshark ended on a cut stream or a signal
        logger.debug("tshark.close_failed error=%s", error)
    finally:
        capture._running_processes.clear()
