"""Live capture from a network interface through a Linux packet socket.

A ``LiveCapture`` opens an ``AF_PACKET`` socket, attaches a classic BPF filter
in the kernel, and reads frames from a TPACKET_V3 memory-mapped ring. The
kernel fills whole blocks of the ring and hands each block over with one
status word, so reading costs no system call per packet. benchmarks/README.md
has the rates ``tcpwatch live`` sustains with this path, next to tcpdump's.

The kernel filter does three jobs before any packet is copied:

- it runs the user's ``-f`` expression, compiled by libpcap through scapy;
- it truncates each frame to the snaplen (the return value of the filter);
- it drops the outgoing copy of loopback packets. The kernel hands a packet
  socket every loopback packet twice, once as ``PACKET_OUTGOING`` and once as
  incoming. libpcap keeps only the incoming copy, and so does tcpwatch.

Ethernet and loopback interfaces are read as Ethernet frames. ``any`` and
other interface types are read with the link-layer header removed, and each
frame gets a Linux cooked (SLL) header built from the packet's address
record, as libpcap does.

Packet socket and ring layouts: packet(7) and the kernel's
Documentation/networking/packet_mmap.rst.
"""

import contextlib
import ctypes
import errno
import logging
import mmap
import os
import pwd
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Protocol

from tcpwatch.capture.segment import Frame
from tcpwatch.errors import (
    CaptureFileError,
    CapturePermissionError,
    InterfaceDownError,
    InterfaceNotFoundError,
    UsageError,
)

logger = logging.getLogger("tcpwatch.capture")

ANY = "any"
"""The pseudo-interface name that captures on every interface."""

DEFAULT_SNAPLEN = 256
"""Bytes kept per frame when nothing is written to a file: room for Ethernet
with two VLAN tags, IPv6 with extension headers, TCP with 40 bytes of options
and the 64-byte payload preview the tracker keeps."""
WRITE_SNAPLEN = 262144
"""Bytes kept per frame when frames are saved with ``-w``: tcpdump's default."""
DEFAULT_BUFFER_SIZE = 32 * 1024 * 1024
"""Ring size in bytes. About 1.5 s of loopback traffic at 100,000 packets/s."""

# Linux constants: <linux/if_ether.h>, <linux/if_packet.h>, <linux/filter.h>,
# <asm-generic/socket.h>, <linux/if_arp.h>.
ETH_P_ALL = 0x0003
SOL_PACKET = 263
SO_ATTACH_FILTER = 26
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_OUTGOING = 4
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772

# Link types of the frames produced (tcpdump.org LINKTYPE_* registry) and the
# libpcap DLT_* values the filter is compiled for.
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
_DLT_EN10MB = 1
_DLT_RAW = 12

# Classic BPF opcodes and the kernel's ancillary load offsets.
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_RET_K = 0x06
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4
_SKF_AD_IFINDEX = 0xFFFFF000 + 8

_BLOCK_SIZE = 1 << 20
_FRAME_SIZE = 2048
_RETIRE_BLOCK_MS = 60
"""A block with packets is handed over after this long even when not full."""

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1:
# block_status (offset 8), num_pkts (12), offset_to_first_pkt (16).
_BLOCK_STATUS = struct.Struct("I")
_BLOCK_PACKETS = struct.Struct("II")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len,
# tp_status, tp_mac, tp_net, then hv1: tp_rxhash, tp_vlan_tci, tp_vlan_tpid.
_PACKET_HEADER = struct.Struct("IIIIIIHHIIH")
# struct sockaddr_ll follows the 48-byte tpacket3_hdr: family, protocol (network
# order), ifindex, hatype, pkttype, halen, addr[8].
_SOCKADDR_LL_OFFSET = 48
_SOCKADDR_LL = struct.Struct("=H2siHBB8s")
_STATS = struct.Struct("III")
_PACKET_MREQ = struct.Struct("iHH8s")


class LiveCapture:
    """An open packet socket with a kernel filter and a memory-mapped ring.

    Args:
        interface: interface name, or ``any``.
        bpf_filter: a pcap-filter(7) expression; empty captures everything.
        snaplen: bytes kept per frame.
        promiscuous: put the interface in promiscuous mode while capturing
            (never for ``any``). The kernel undoes it when the socket closes.
        buffer_size: ring size in bytes, rounded down to whole 1 MiB blocks.

    Raises:
        InterfaceNotFoundError: no interface has that name.
        CapturePermissionError: the process lacks root or CAP_NET_RAW.
        UsageError: the filter expression does not compile.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf_filter: str = "",
        snaplen: int = DEFAULT_SNAPLEN,
        promiscuous: bool = True,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.snaplen = snaplen
        index = 0 if interface == ANY else interface_index(interface)
        hardware_type = _hardware_type(interface)
        # Ethernet and loopback keep their link-layer header; everything else
        # is read from the network header on and gets a cooked header.
        self.cooked = hardware_type not in (ARPHRD_ETHER, ARPHRD_LOOPBACK)
        self.link_type = LINKTYPE_LINUX_SLL if self.cooked else LINKTYPE_ETHERNET
        program = compile_filter(
            bpf_filter, _DLT_RAW if self.cooked else _DLT_EN10MB, snaplen
        )
        program = _loopback_guard(interface, hardware_type) + program
        # Bound to one interface, the socket gets protocol 0 and receives
        # nothing until bind(), so the filter and the ring are in place before
        # the first packet. ``any`` cannot be bound by name: its socket listens
        # from the start, and what arrives before the filter is discarded.
        protocol = socket.htons(ETH_P_ALL) if index == 0 else 0
        self._socket = _open_socket(interface, self.cooked, protocol)
        try:
            self._setup(program, index, promiscuous and interface != ANY, buffer_size)
        except BaseException:
            self._socket.close()
            raise
        self._block = 0
        self._down_since: float | None = None
        self._poller = select.poll()
        self._poller.register(self._socket.fileno(), select.POLLIN | select.POLLERR)
        self._received = 0
        self._dropped = 0
        logger.debug(
            "capture.opened interface=%s link_type=%d snaplen=%d blocks=%d filter=%r",
            interface,
            self.link_type,
            snaplen,
            self._block_count,
            bpf_filter,
        )

    def _setup(
        self, program: list[bytes], index: int, promiscuous: bool, buffer_size: int
    ) -> None:
        sock = self._socket
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        _attach_filter(sock, program)
        if not index:
            _discard_queued(sock)
        self._block_count = max(2, buffer_size // _BLOCK_SIZE)
        frames = _BLOCK_SIZE // _FRAME_SIZE * self._block_count
        request = struct.pack(
            "7I",
            _BLOCK_SIZE,
            self._block_count,
            _FRAME_SIZE,
            frames,
            _RETIRE_BLOCK_MS,
            0,
            0,
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self._ring = mmap.mmap(
            sock.fileno(),
            _BLOCK_SIZE * self._block_count,
            mmap.MAP_SHARED,
            mmap.PROT_READ | mmap.PROT_WRITE,
        )
        if promiscuous:
            membership = _PACKET_MREQ.pack(index, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
        if index:
            sock.bind((self.interface, ETH_P_ALL))

    def read_block(self, timeout: float) -> list[Frame]:
        """Return the frames of the next ring block, waiting up to ``timeout`` s.

        Return an empty list when no block was handed over in time. Timestamps
        are cut to microseconds, the resolution of the pcap files ``-w``
        writes, so that a saved capture reads back to the same analysis.
        """
        ring = self._ring
        offset = self._block * _BLOCK_SIZE
        if not _BLOCK_STATUS.unpack_from(ring, offset + 8)[0] & TP_STATUS_USER:
            events = self._poller.poll(int(timeout * 1000))
            if events and events[0][1] & select.POLLERR:
                self._note_socket_error()
            if not _BLOCK_STATUS.unpack_from(ring, offset + 8)[0] & TP_STATUS_USER:
                self._raise_if_down()
                return []
        count, first = _BLOCK_PACKETS.unpack_from(ring, offset + 12)
        frames: list[Frame] = []
        append = frames.append
        unpack_header = _PACKET_HEADER.unpack_from
        link_type = self.link_type
        cooked = self.cooked
        position = offset + first
        for _ in range(count):
            (
                next_offset,
                seconds,
                nanoseconds,
                caplen,
                length,
                status,
                mac,
                _net,
                _hash,
                vlan_tci,
                vlan_tpid,
            ) = unpack_header(ring, position)
            start = position + mac
            data = ring[start : start + caplen]
            if cooked:
                header = _cooked_header(ring, position)
                data = header + data
                length += len(header)
            elif status & TP_STATUS_VLAN_VALID:
                # The kernel took the 802.1Q tag out of the frame; put it back.
                tpid = vlan_tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + struct.pack("!HH", tpid, vlan_tci) + data[12:]
                length += 4
            append((seconds + (nanoseconds // 1000) / 1e6, link_type, data, length, 0))
            position += next_offset
        _BLOCK_STATUS.pack_into(ring, offset + 8, TP_STATUS_KERNEL)
        self._block = (self._block + 1) % self._block_count
        return frames

    def _note_socket_error(self) -> None:
        """Read and clear the socket error that ``poll`` reported.

        The kernel sets ENETDOWN on the socket when its interface goes down or
        is removed, and the capture then receives nothing more.
        """
        code = self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == errno.ENETDOWN:
            if self._down_since is None:
                self._down_since = time.monotonic()
        elif code:
            logger.debug(
                "capture.socket_error interface=%s error=%s",
                self.interface,
                os.strerror(code),
            )

    def _raise_if_down(self) -> None:
        """Raise ``InterfaceDownError`` once the interface has been down a while.

        The wait lets the kernel hand over the block it was filling, which it
        retires after ``_RETIRE_BLOCK_MS``, so no packet from before the fault
        is lost.
        """
        if self._down_since is None:
            return
        if time.monotonic() - self._down_since < 2 * _RETIRE_BLOCK_MS / 1000:
            return
        try:
            socket.if_nametoindex(self.interface)
        except OSError:
            what = "the interface was removed"
        else:
            what = "the interface went down"
        raise InterfaceDownError(
            f"capture on {self.interface!r} stopped: {what}; the packets "
            "captured before were analysed. Start the capture again once the "
            "interface is up."
        )

    def statistics(self) -> tuple[int, int]:
        """Return (packets received by the filter, packets dropped by the kernel).

        Both count from the opening of the socket. "Received" counts the
        packets the filter accepted, dropped ones included, as tcpdump's
        "packets received by filter" does.
        """
        raw = self._socket.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        # The kernel resets its counters on each read, so they are summed here.
        packets, drops, _frozen = _STATS.unpack(raw)
        self._received += packets
        self._dropped += drops
        return self._received, self._dropped

    def close(self) -> None:
        """Release the ring and close the socket. Closing twice is allowed."""
        if self._socket.fileno() < 0:
            return
        self._poller.unregister(self._socket.fileno())
        self._ring.close()
        self._socket.close()


def _cooked_header(ring: mmap.mmap, position: int) -> bytes:
    """Build the 16-byte Linux cooked (SLL) header from the packet's sockaddr_ll.

    Layout (LINKTYPE_LINUX_SLL): packet type, ARPHRD type, address length,
    8 address bytes, then the protocol, all in network byte order.
    """
    _family, protocol, _index, hatype, pkttype, halen, address = (
        _SOCKADDR_LL.unpack_from(ring, position + _SOCKADDR_LL_OFFSET)
    )
    header: bytes = struct.pack("!HHH8s", pkttype, hatype, halen, address)
    return header + bytes(protocol)


# -- opening -------------------------------------------------------------------


def list_interfaces() -> list[str]:
    """Return the names of this host's interfaces, in index order."""
    return [name for _index, name in sorted(socket.if_nameindex())]


def interface_index(name: str) -> int:
    """Return the index of interface ``name``, or raise InterfaceNotFoundError."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        available = ", ".join(list_interfaces())
        raise InterfaceNotFoundError(
            f"interface {name!r} not found; available interfaces: {available} "
            f"(or {ANY!r} for all of them)"
        ) from None


def _hardware_type(interface: str) -> int:
    """Return the interface's ARPHRD_* type, or 0 for ``any`` and unknown types."""
    if interface == ANY:
        return 0
    try:
        with open(f"/sys/class/net/{interface}/type") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 0


def _user_name() -> str:
    """Return the name of the user this process runs as (its uid if unnamed)."""
    import pwd

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _open_socket(interface: str, cooked: bool, protocol: int) -> socket.socket:
    kind = socket.SOCK_DGRAM if cooked else socket.SOCK_RAW
    try:
        return socket.socket(socket.AF_PACKET, kind, protocol)
    except PermissionError:
        raise CapturePermissionError(
            f"capturing on {interface!r} needs root or the CAP_NET_RAW capability: "
            "run the command with sudo; or, to capture without sudo, give the "
            "capability to a copy of Python that only tcpwatch uses, not to "
            f"the shared {os.path.realpath(sys.executable)}: python3 -m venv "
            "--copies ~/tcpwatch-env, install tcpwatch into it, then sudo "
            "setcap cap_net_raw+ep ~/tcpwatch-env/bin/python3"
        ) from None


# -- the kernel filter ---------------------------------------------------------


def _instruction(code: int, jt: int, jf: int, k: int) -> bytes:
    """Encode one ``struct sock_filter``: code, jump if true, jump if false, k."""
    return struct.pack("HBBI", code, jt, jf, k)


def compile_filter(expression: str, dlt: int, snaplen: int) -> list[bytes]:
    """Compile a pcap-filter(7) expression into classic BPF instructions.

    libpcap compiles it, for frames of data link type ``dlt``. Every
    accepting return is set to ``snaplen``, so the kernel truncates each
    frame to that length before copying it into the ring.
    """
    if not expression.strip():
        return [_instruction(_BPF_RET_K, 0, 0, snaplen)]
    try:
        from scapy.arch.common import compile_filter as scapy_compile
        from scapy.error import Scapy_Exception
    except ImportError as error:
        raise UsageError(
            f"cannot compile the filter {expression!r}: {error}; "
            "install libpcap (Debian package libpcap0.8)"
        ) from None
    try:
        program = scapy_compile(expression, linktype=dlt)
    except (Scapy_Exception, ImportError, OSError) as error:
        raise UsageError(
            f"invalid capture filter {expression!r}: {error}; "
            "see pcap-filter(7) for the syntax"
        ) from None
    instructions = []
    for index in range(program.bf_len):
        insn = program.bf_insns[index]
        k = insn.k & 0xFFFFFFFF  # scapy declares k signed; netmasks go negative
        if insn.code == _BPF_RET_K and k:
            k = snaplen
        instructions.append(_instruction(insn.code, insn.jt, insn.jf, k))
    return instructions


def _loopback_guard(interface: str, hardware_type: int) -> list[bytes]:
    """Return instructions that reject the outgoing copy of loopback packets.

    They run before the user's program and fall through to it otherwise.
    On ``any`` only outgoing packets on the loopback interface are rejected.
    """
    if hardware_type == ARPHRD_LOOPBACK:
        return [
            _instruction(_BPF_LD_W_ABS, 0, 0, _SKF_AD_PKTTYPE),
            _instruction(_BPF_JEQ_K, 0, 1, PACKET_OUTGOING),
            _instruction(_BPF_RET_K, 0, 0, 0),
        ]
    if interface == ANY:
        loopback = _loopback_index()
        if loopback:
            return [
                _instruction(_BPF_LD_W_ABS, 0, 0, _SKF_AD_PKTTYPE),
                _instruction(_BPF_JEQ_K, 0, 3, PACKET_OUTGOING),
                _instruction(_BPF_LD_W_ABS, 0, 0, _SKF_AD_IFINDEX),
                _instruction(_BPF_JEQ_K, 0, 1, loopback),
                _instruction(_BPF_RET_K, 0, 0, 0),
            ]
    return []


def _loopback_index() -> int:
    for index, name in socket.if_nameindex():
        if _hardware_type(name) == ARPHRD_LOOPBACK:
            return index
    return 0


def _discard_queued(sock: socket.socket) -> None:
    """Drop the packets queued before the filter, and the counts of them."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(1)
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)


def _attach_filter(sock: socket.socket, program: list[bytes]) -> None:
    code = b"".join(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog: instruction count, then a pointer to the instructions.
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# -- privileges ----------------------------------------------------------------


def drop_privileges(user: str | None) -> str | None:
    """Switch from root to ``user``, or to ``SUDO_USER`` when no user is given.

    Call it after the socket is open and before any packet is parsed, as
    tcpdump does with ``-Z``: the open socket keeps working, and the process
    can no longer open new ones. Return the user switched to, or None when
    the process stays as it is (not root, or root with no user to switch to).

    Raises:
        UsageError: the user does not exist, or a non-root process asked for
            another user.
    """
    name = user or os.environ.get("SUDO_USER") or None
    if os.geteuid() != 0:
        if user and user != pwd.getpwuid(os.geteuid()).pw_name:
            raise UsageError(
                f"--user {user} needs root: only root can switch to another user"
            )
        return None
    if name is None or name == "root":
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise UsageError(
            f"user {name!r} not found; pass an existing user name to --user"
        ) from None
    os.setgroups(os.getgrouplist(name, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    logger.debug("capture.privileges_dropped user=%s uid=%d", name, entry.pw_uid)
    return name


# -- saving frames -------------------------------------------------------------


class PcapWriter:
    """Write frames to a pcap file (microsecond timestamps, little endian).

    Frames are collected and written whole by ``flush``, which runs after
    each ring block, so the file is a valid capture whenever the process
    stops, even if it is killed. When a write fails (disk full, I/O error),
    the file is cut back to its last whole record and ``CaptureFileError``
    says how many packets it keeps. Writes after that are ignored.
    """

    def __init__(self, path: str, link_type: int, snaplen: int) -> None:
        self.path = path
        self.saved = 0
        """Packets written to the file in full."""
        self._size = 0
        self._pending = bytearray()
        self._pending_frames = 0
        self._failed = False
        try:
            self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as error:
            raise CaptureFileError(
                path,
                f"cannot be written: {error.strerror}; choose a path that "
                f"{_user_name()!r}, the user tcpwatch captures as, can write to",
            ) from None
        self._pack = struct.Struct("<IIII").pack
        header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, link_type)
        self._pending += header
        self.flush()

    def write(self, frame: Frame) -> None:
        if self._failed:
            return
        ts, _link_type, data, wire_length, _interface = frame
        seconds = int(ts)
        micros = round((ts - seconds) * 1e6)
        if micros >= 1000000:
            seconds += 1
            micros -= 1000000
        self._pending += self._pack(seconds, micros, len(data), wire_length)
        self._pending += data
        self._pending_frames += 1

    def flush(self) -> None:
        """Write the frames collected since the last flush."""
        if self._failed or not self._pending:
            return
        data = bytes(self._pending)
        written = 0
        try:
            while written < len(data):
                written += self._file.write(data[written:])
        except OSError as error:
            self._fail(error)
        self._size += len(data)
        self.saved += self._pending_frames
        self._pending.clear()
        self._pending_frames = 0

    def _fail(self, error: OSError) -> None:
        """Cut the file back to its last whole record, close it and raise."""
        self._failed = True
        with contextlib.suppress(OSError):
            os.ftruncate(self._file.fileno(), self._size)
        self._file.close()
        if self._size == 0:
            reason = (
                f"cannot be written: {error.strerror}; choose a path that "
                f"{_user_name()!r}, the user tcpwatch captures as, can write to"
            )
        else:
            reason = (
                f"write failed: {error.strerror}; the file keeps the first "
                f"{self.saved:,} packets as a valid capture, and no more were saved"
            )
        raise CaptureFileError(self.path, reason, self._size) from None

    def close(self) -> None:
        """Write what is left and close the file. Closing twice is allowed."""
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()


# -- the frame source ----------------------------------------------------------


class StatusSink(Protocol):
    """The counters a frame source updates while it runs (see ``CaptureStatus``)."""

    received: int | None
    dropped: int | None


def capture_batches(
    capture: LiveCapture,
    status: StatusSink,
    stop: threading.Event,
    *,
    count: int = 0,
    duration: float = 0.0,
    writer: PcapWriter | None = None,
    poll_interval: float = 0.1,
) -> Iterator[list[Frame]]:
    """Yield the capture's frames one ring block at a time until ``stop`` is set.

    An empty list means no packet arrived for ``poll_interval`` seconds, so the
    consumer can expire idle connections. Stops when ``stop`` is set, after
    ``count`` frames (0: no limit), or after ``duration`` seconds (0: no
    limit). Every frame yielded is first written to ``writer``. The kernel's
    counters are copied to ``status`` after each block and at the end.
    """
    deadline = time.monotonic() + duration if duration > 0 else None
    captured = 0
    try:
        while not stop.is_set():
            timeout = poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                timeout = min(timeout, remaining)
            frames = capture.read_block(timeout)
            if count and captured + len(frames) >= count:
                frames = frames[: count - captured]
                stop_after = True
            else:
                stop_after = False
            captured += len(frames)
            write_error = None
            if writer is not None and frames:
                try:
                    for frame in frames:
                        writer.write(frame)
                    writer.flush()
                except CaptureFileError as error:
                    # The frames are still analysed, then the capture stops.
                    write_error = error
            status.received, status.dropped = capture.statistics()
            yield frames
            if write_error is not None:
                raise write_error
            if stop_after:
                break
    finally:
        status.received, status.dropped = capture.statistics()
