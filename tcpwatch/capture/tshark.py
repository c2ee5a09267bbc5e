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
tcpwatch against Wireshark and for link types only Wireshark knows.
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
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tcpwatch.capture.decoder import DecodeStats
from tcpwatch.capture.segment import PAYLOAD_PREVIEW, Segment
from tcpwatch.errors import (
    CaptureFileError,
    CapturePermissionError,
    InterfaceNotFoundError,
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
        fields = ip.field_names
        if is_ipv4:
            fragment = int(ip.get_field("frag_offset") or 0) or (
                "flags_tree" in fields and _more_fragments(ip)
            )
            protocol = ip.get_field("proto")
        else:
            fragment = "fraghdr" in fields
            protocol = ip.get_field("nxt")
        if fragment:
            stats.fragments += 1
            stats.non_tcp += 1
        elif protocol == "6":
            frame = packet.frame_info
            if int(frame.get_field("cap_len")) < int(frame.get_field("len")):
                stats.truncated += 1
            else:
                stats.malformed += 1
        else:
            stats.non_tcp += 1


def _more_fragments(ip: Any) -> bool:
    tree = ip.get_field("flags_tree")
    value = getattr(tree, "mf", None) if tree is not None else None
    return value == "1"


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
        capture.close()


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
    return result


# -- live ----------------------------------------------------------------------

_END = object()


class TsharkLiveSource:
    """A live capture through dumpcap and tshark, yielding batches of segments.

    pyshark runs in a thread of its own and hands segments over through a
    queue; a frame without a TCP segment is handed over as None, so that
    packet counts stay right. Stopping ends dumpcap, after which tshark reads
    the rest of the pipe, finishes the ``write`` file, and exits.

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
        self._capture: Any = None
        self._stderr: list[str] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if interface != "any":
            from tcpwatch.capture.live import interface_index

            interface_index(interface)

    def batches(
        self, status: Any, stop: threading.Event, *, count: int = 0, duration: float = 0
    ) -> Iterator[list[Segment | None]]:
        """Yield segments in batches until stopped; see ``live.capture_batches``."""
        status.decode = self.converter.stats
        self._thread = threading.Thread(
            target=self._run, args=(count,), name="tcpwatch-tshark", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + duration if duration > 0 else None
        stopping = False
        while True:
            if not stopping and (
                stop.is_set() or (deadline is not None and time.monotonic() > deadline)
            ):
                stopping = True
                self._stop_dumpcap()
            batch: list[Segment | None] = []
            ended = False
            try:
                item = self._queue.get(timeout=0.1)
                while True:
                    if item is _END:
                        ended = True
                        break
                    batch.append(item)
                    if len(batch) >= 1024:
                        break
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            status.received, status.dropped = self.received, self.dropped
            yield batch
            if ended:
                break
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop dumpcap and tshark if they still run, and wait for the thread."""
        self._stop_dumpcap()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, count: int) -> None:
        try:
            capture = self._capture = _make_live_capture(self)
            convert = self.converter.convert
            put = self._queue.put
            for packet in capture.sniff_continuously(packet_count=count or None):
                put(convert(packet))
        except BaseException as error:
            self._error = self._translate(error)
        finally:
            if self._capture is not None:
                try:
                    self._capture.close()
                except Exception as error:  # tshark ended on a signal: expected
                    logger.debug("tshark.close_failed error=%s", error)
            self._queue.put(_END)

    def _translate(self, error: BaseException) -> BaseException:
        text = " ".join(self._stderr)
        if "permission" in text.lower() or "not permitted" in text.lower():
            return CapturePermissionError(
                f"dumpcap cannot capture on {self.interface!r}: permission denied; "
                "run the command with sudo, or give dumpcap the capabilities "
                "with: sudo setcap cap_net_raw,cap_net_admin=ep "
                f"{shutil.which('dumpcap') or '/usr/bin/dumpcap'}"
            )
        if type(error).__name__ == "UnknownInterfaceException":
            return InterfaceNotFoundError(str(error).splitlines()[0])
        return error

    def _note_stderr(self, line: str) -> None:
        self._stderr.append(line)
        del self._stderr[:-20]
        match = _DUMPCAP_DROPS.search(line)
        if match:
            self.received = int(match.group(1))
            self.dropped = int(match.group(2))

    def _stop_dumpcap(self) -> None:
        capture = self._capture
        if capture is None:
            return
        for process in list(capture._running_processes):
            if _process_name(process.pid) == "dumpcap" and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)


def _process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as file:
            return file.read().strip()
    except OSError:
        return ""


def _make_live_capture(source: TsharkLiveSource) -> Any:
    """Create pyshark's LiveCapture with tcpwatch's dumpcap options."""
    import pyshark

    class _LiveCapture(pyshark.LiveCapture):  # type: ignore[misc]
        def _get_dumpcap_parameters(self) -> list[str]:
            extra = ["-s", str(source.snaplen)]
            if not source.promiscuous:
                extra.append("-p")
            return extra + list(super()._get_dumpcap_parameters())

        async def _handle_process_stderr_forever(self, stderr: Any) -> None:
            while True:
                line = await stderr.readline()
                if not line:
                    break
                text = line.decode(errors="replace").strip()
                self._last_error_line = text
                source._note_stderr(text)

    custom = list(_JSON_PROTOCOLS)
    if source.write:
        # -P keeps the dissection coming while tshark writes the file.
        custom += ["-w", source.write, "-F", "pcap", "-P"]
    return _LiveCapture(
        interface=source.interface,
        bpf_filter=source.bpf_filter or None,
        use_json=True,
        override_prefs=dict(_PREFERENCES),
        custom_parameters=custom,
    )
