"""Filter the frames of capture files with a pcap-filter(7) expression.

``tcpwatch read -f 'port 443' FILE`` keeps the frames that ``tcpdump -r FILE
'port 443'`` would print. The expression is compiled and run by libpcap itself
(``pcap_compile`` and ``pcap_offline_filter``, called through ctypes), so its
meaning is tcpdump's to the letter, VLAN tags and IPv6 included. The frames of
a pcapng file can have several link types, so each link type gets its own
program, compiled when the first frame of that type arrives.

A frame the filter rejects never reaches the decoder: it is counted in
``FrameFilter.rejected`` and in no other counter.
"""

import ctypes
import ctypes.util
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Final

from tcpwatch.capture.segment import Frame
from tcpwatch.errors import UsageError

logger = logging.getLogger("tcpwatch.capture")

# LINKTYPE numbers (in files) whose DLT number (what libpcap compiles for)
# differs. LINKTYPE_RAW is 101 in files; Linux's DLT_RAW is 12.
_DLT_OF_LINKTYPE: Final = {101: 12}
_SNAPLEN: Final = 262_144


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    """``struct bpf_program``: an instruction count and a pointer to them."""

    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Instruction))]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PacketHeader(ctypes.Structure):
    """``struct pcap_pkthdr``: time, captured length, length on the wire."""

    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


def _libpcap() -> Any:
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise UsageError(
            "filtering capture files needs libpcap, which is not installed; "
            "install the Debian package libpcap0.8 (apt install libpcap0.8)"
        )
    library = ctypes.CDLL(name)
    library.pcap_open_dead.restype = ctypes.c_void_p
    library.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    library.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_Program),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    library.pcap_geterr.restype = ctypes.c_char_p
    library.pcap_geterr.argtypes = [ctypes.c_void_p]
    library.pcap_close.argtypes = [ctypes.c_void_p]
    library.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    library.pcap_offline_filter.argtypes = [
        ctypes.POINTER(_Program),
        ctypes.POINTER(_PacketHeader),
        ctypes.c_char_p,
    ]
    return library


class FrameFilter:
    """Keep the frames that a pcap-filter(7) expression accepts.

    The expression is compiled once up front, for Ethernet, so that a typing
    mistake is reported before any file is read.

    Raises:
        UsageError: the expression is not valid pcap-filter syntax, or
            libpcap is missing.
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.rejected = 0
        """Frames the filter rejected."""
        self.unusable: dict[int, str] = {}
        """Link types the expression cannot be compiled for, with libpcap's
        reason; their frames are all rejected."""
        self._pcap = _libpcap()
        self._programs: dict[int, _Program | None] = {}
        self._header = _PacketHeader()
        self._program(1)

    def frames(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Yield the frames of ``frames`` that the expression accepts."""
        programs = self._programs
        header = self._header
        header_pointer = ctypes.byref(header)
        run = self._pcap.pcap_offline_filter
        for frame in frames:
            link_type = frame[1]
            if link_type in programs:
                program = programs[link_type]
            else:
                program = self._program(link_type)
            data = frame[2]
            header.caplen = len(data)
            header.len = frame[3]
            if program is not None and run(ctypes.byref(program), header_pointer, data):
                yield frame
            else:
                self.rejected += 1

    def close(self) -> None:
        """Free the compiled programs."""
        for program in self._programs.values():
            if program is not None:
                self._pcap.pcap_freecode(ctypes.byref(program))
        self._programs.clear()

    def _program(self, link_type: int) -> _Program | None:
        """Compile the expression for ``link_type``; None if libpcap cannot.

        A link type that libpcap cannot compile this expression for (one it
        does not know, or one where the expression makes no sense) rejects
        every frame. tcpdump would not read such a file at all.
        """
        dlt = _DLT_OF_LINKTYPE.get(link_type, link_type)
        handle = self._pcap.pcap_open_dead(dlt, _SNAPLEN)
        if not handle:
            self.unusable[link_type] = "libpcap does not know this link type"
            self._programs[link_type] = None
            return None
        program = _Program()
        try:
            failed = self._pcap.pcap_compile(
                handle, ctypes.byref(program), self.expression.encode(), 1, 0
            )
            if failed:
                reason = self._pcap.pcap_geterr(handle).decode(errors="replace")
                if not self._programs:
                    raise UsageError(
                        f"invalid filter {self.expression!r}: {reason}; see "
                        "pcap-filter(7) for the syntax"
                    )
                logger.debug(
                    "filter.unsupported link_type=%d reason=%s", link_type, reason
                )
                self.unusable[link_type] = reason
                self._programs[link_type] = None
                return None
        finally:
            self._pcap.pcap_close(handle)
        self._programs[link_type] = program
        return program
