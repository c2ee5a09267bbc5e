"""Packet conversion and tshark handling shared by both tshark sources.

``SegmentConverter`` turns each packet that pyshark parsed from tshark's JSON
output into the same ``Segment`` record the native decoder makes, from
tshark's raw field values (``tcp.seq_raw``, ``tcp.flags``, ``tcp.options``,
...). The module also holds the tshark preferences and JSON options that both
sources pass to tshark, and helpers that read tshark's error messages and close
a capture.
"""

import logging
import os
import re
import shutil
import socket
from typing import Any

from tcpwatch.capture.decoder import DecodeStats
from tcpwatch.capture.segment import PAYLOAD_PREVIEW, Segment
from tcpwatch.errors import TsharkMissingError

logger = logging.getLogger("tcpwatch.capture")


# tshark preferences that make its dissection match the native decoder.
PREFERENCES = {
    "ip.defragment": "FALSE",
    "ipv6.defragment": "FALSE",
    "tcp.desegment_tcp_streams": "FALSE",
}
# Only these protocols' fields are printed, which keeps the JSON small.
JSON_PROTOCOLS = ["-J", "frame ip ipv6 tcp"]
# Bytes copied per read between dumpcap, files and tshark.
CHUNK_SIZE = 64 * 1024

# Wireshark's checksum status value for a wrong checksum (PROTO_CHECKSUM_E_BAD).
_CHECKSUM_BAD = "0"

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


def write_all(descriptor: int, data: bytes) -> None:
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
    return tshark_words(match.group(1) if match else "")


def tshark_words(line: str | None) -> str:
    line = (line or "").strip().removeprefix("tshark: ")
    return line or "tshark ended with an error and printed no message"


def new_event_loop() -> Any:
    """Return a new asyncio event loop for a pyshark capture in a thread.

    pyshark 0.6 creates a loop of its own when given none and never closes
    it. The loop's self-pipe reader refers back to the loop, so only the
    garbage collector frees it, here at interpreter exit. When the collector
    has finalized the self-pipe sockets first, the loop's ``__del__`` prints
    "Exception ignored ... ValueError: Invalid file descriptor: -1". A loop
    passed in and closed by ``close_quietly`` is never left to the collector.

    NOTE: only for captures outside the main thread. In the main thread
    pyshark also installs a ``SafeChildWatcher`` on its own loop. With the
    default ``ThreadedChildWatcher`` and a loop passed in, pyshark's kill of
    a tshark that has just exited races the watcher for the exit status, and
    the watcher then reports exit status 255.
    """
    import asyncio

    return asyncio.new_event_loop()


def close_quietly(capture: Any, loop: Any = None) -> None:
    """Close a pyshark capture, then ``loop``, the event loop it ran on, if given.

    pyshark's ``__del__`` closes a capture again while it still lists running
    processes, and a second close of a pipe capture fails on the closed pipe,
    printing a traceback at exit. Emptying the list after the first attempt
    prevents that. The loop is closed last, because closing the capture runs
    on it.
    """
    try:
        capture.close()
    except Exception as error:  # tshark ended on a cut stream or a signal
        logger.debug("tshark.close_failed error=%s", error)
    finally:
        capture._running_processes.clear()
        if loop is not None and not loop.is_closed():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
