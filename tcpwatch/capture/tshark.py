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
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tcpwatch.capture.decoder import DecodeStats
from tcpwatch.capture.segment import PAYLOAD_PREVIEW, Segment
from tcpwatch.errors import (
    CaptureFileError,
    CapturePermissionError,
    TcpwatchError,
    TsharkMissingError,
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

# Wireshark's checksum status value for a wrong checksum (PROTO_CHECKSUM_E_BAD).
_CHECKSUM_BAD = "0"

_DUMPCAP_DROPS = re.compile(r"Packets received/dropped on interface .*: (\d+)/(\d+)")


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


def file_segments(path: str, converter: SegmentConverter) -> Iterator[Segment]:
    """Yield the TCP segments of a capture file as tshark dissects them."""
    import pyshark
    from pyshark.capture.capture import TSharkCrashException

    if not os.path.isfile(path):
        raise CaptureFileError(path, "no such file")
    prefs = dict(_PREFERENCES)
    if converter.validate_checksums:
        prefs.update({"ip.check_checksum": "TRUE", "tcp.check_checksum": "TRUE"})
    capture = pyshark.FileCapture(
        path,
        keep_packets=False,
        use_json=True,
        override_prefs=prefs,
        custom_parameters=_JSON_PROTOCOLS,
    )
    convert = converter.convert
    try:
        for packet in capture:
            segment = convert(packet)
            if segment is not None:
                yield segment
    except TSharkCrashException as error:
        raise CaptureFileError(path, f"tshark could not read it: {error}") from None
    finally:
        _close_quietly(capture)


def read_captures_tshark(
    paths: list[str],
    tracker: FlowTracker,
    on_finished: Callable[[Connection], None],
    *,
    validate_checksums: bool = False,
) -> ReadResult:
    """Read ``paths`` through tshark, as ``pipeline.read_captures`` does natively.

    Several files are merged in timestamp order. A file tshark cannot read
    raises ``CaptureFileError``.
    """
    require_tshark()
    converter = SegmentConverter(validate_checksums)
    result = ReadResult(paths=list(paths), stats=converter.stats)
    streams: Iterable[Segment]
    if len(paths) == 1:
        streams = file_segments(paths[0], converter)
    else:
        streams = heapq.merge(
            *(file_segments(path, converter) for path in paths),
            key=lambda segment: segment.ts,
        )
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
    result.reordered = tracker.reordered
    result.evicted = tracker.evicted
    return result


# -- live ----------------------------------------------------------------------

_END = object()
# Seconds to wait for dumpcap to start capturing.
_START_TIMEOUT = 15.0
_CHUNK = 64 * 1024


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
        self._capturing = threading.Event()
        if interface != "any":
            from tcpwatch.capture.live import interface_index

            interface_index(interface)

    def batches(
        self, status: Any, stop: threading.Event, *, count: int = 0, duration: float = 0
    ) -> Iterator[list[Segment | None]]:
        """Yield segments in batches until stopped; see ``live.capture_batches``."""
        status.decode = self.converter.stats
        read_end = self._start(count)
        # Wait until dumpcap reports that it captures, so that the first batch
        # means the capture is running, as with the native source.
        waited = time.monotonic() + _START_TIMEOUT
        while self._dumpcap_running() and time.monotonic() < waited:
            if self._capturing.wait(0.1) or stop.is_set():
                break
        self._spawn(self._dissect, read_end)
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
                if output is not None:
                    output.write(chunk)
                    output.flush()
                view = memoryview(chunk)
                while view:
                    written = os.write(write_end, view)
                    view = view[written:]
        except BrokenPipeError:
            pass  # tshark ended first; its error is reported by _dissect
        finally:
            os.close(write_end)
            if output is not None:
                output.close()

    def _read_stderr(self) -> None:
        assert self._dumpcap is not None and self._dumpcap.stderr is not None
        for raw in self._dumpcap.stderr:
            line = raw.decode(errors="replace").strip()
            self._stderr.append(line)
            del self._stderr[:-20]
            if line.startswith("Capturing on"):
                self._capturing.set()
            match = _DUMPCAP_DROPS.search(line)
            if match:
                self.received = int(match.group(1))
                self.dropped = int(match.group(2))

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
        """Turn a tshark failure into the error dumpcap's messages explain."""
        if self._dumpcap is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._dumpcap.wait(timeout=5)
        for thread in self._threads[1:2]:
            thread.join(timeout=5)  # the stderr reader
        text = " ".join(self._stderr)
        if "permission" in text.lower() or "not permitted" in text.lower():
            return CapturePermissionError(
                f"dumpcap cannot capture on {self.interface!r}: permission denied; "
                "run the command with sudo, or give dumpcap the capabilities "
                "with: sudo setcap cap_net_raw,cap_net_admin=ep "
                f"{shutil.which('dumpcap') or '/usr/bin/dumpcap'}"
            )
        if self._stderr and self._dumpcap is not None and self._dumpcap.returncode:
            return TcpwatchError(
                f"dumpcap failed on {self.interface!r}: {self._stderr[-1]}"
            )
        return error

    def _dumpcap_running(self) -> bool:
        return self._dumpcap is not None and self._dumpcap.poll() is None

    def _stop_dumpcap(self) -> None:
        if self._dumpcap_running():
            assert self._dumpcap is not None
            with contextlib.suppress(ProcessLookupError):
                self._dumpcap.send_signal(signal.SIGTERM)


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
