"""Synthesised captures: realistic TCP conversations built with scapy.

Used when a real capture cannot be made (no root) or when the local stack
will not produce a behaviour on demand (loss, zero window, simultaneous
open). Nothing is sent: the packets are written to a pcap file and read back
through the same pipeline as any capture.

The model is a capture taken on the client's host. A packet from the client
is captured when it leaves; a packet from the server is captured when it
arrives, half a round trip after the server sent it, and a server packet
lost on the way is never captured. Both sides look like Linux: SYN options
MSS, SACK permitted, timestamps and window scale 7, timestamps on every
segment, and ISNs drawn from a seeded random generator so each scenario
gives the same file every time.

Addresses are from the documentation ranges of RFC 5737 (192.0.2.0/24 and
198.51.100.0/24), which no real host uses.
"""

import random
from pathlib import Path
from typing import Any

CLIENT = "192.0.2.10"
SERVER = "198.51.100.20"
CLIENT_MAC = "02:00:00:00:00:0a"
SERVER_MAC = "02:00:00:00:00:14"
START = 1_767_225_600.0
"""Capture start time: 2026-01-01 00:00:00 UTC."""

MSS = 1448
"""Payload bytes per full segment: 1460 less 12 bytes of timestamp option."""
SYN_WINDOW = 64240
WINDOW_SCALE = 7


class Synthesiser:
    """Build one connection's packets, keeping each side's sequence state.

    Call ``client`` and ``server`` in the order the packets are captured,
    moving the clock with ``wait`` in between. ``lost=True`` models a server
    packet lost before the capture point: its sequence space is used, but
    no packet is written and the client does not receive it.
    """

    def __init__(
        self,
        seed: int,
        *,
        client_port: int = 51514,
        server_port: int = 80,
        rtt: float = 0.020,
    ) -> None:
        rng = random.Random(seed)
        self.rtt = rtt
        self.time = START
        self.ports = {True: client_port, False: server_port}
        self.next_seq = {True: rng.getrandbits(32), False: rng.getrandbits(32)}
        self.isn = dict(self.next_seq)
        self.received: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
        """Per receiving side, the byte ranges of the peer's stream it holds."""
        self.window = {True: 502, False: 509}
        self._ts_base = {True: rng.getrandbits(30), False: rng.getrandbits(30)}
        self._ts_recent = {True: 0, False: 0}
        self._ip_id = {True: rng.getrandbits(16), False: rng.getrandbits(16)}
        self.packets: list[Any] = []

    # -- the clock ---------------------------------------------------------

    def wait(self, seconds: float) -> None:
        """Move the capture clock forward."""
        self.time += seconds

    # -- sending -----------------------------------------------------------

    def client(self, flags: str, data: bytes = b"", **fields: Any) -> int:
        return self.send(True, flags, data, **fields)

    def server(self, flags: str, data: bytes = b"", **fields: Any) -> int:
        return self.send(False, flags, data, **fields)

    def send(
        self,
        from_client: bool,
        flags: str,
        data: bytes = b"",
        *,
        seq: int | None = None,
        window: int | None = None,
        lost: bool = False,
        accepted: bool = True,
        options: list[tuple[str, Any]] | None = None,
    ) -> int:
        """Add one segment and return its raw sequence number.

        ``seq`` resends from an earlier number (a retransmission); without
        it the segment continues the sender's stream. ``accepted=False``
        captures the segment but the receiver drops its bytes, as a receiver
        with a zero window drops a probe.
        """
        own = self.next_seq[from_client]
        start = own if seq is None else seq
        consumed = len(data) + ("S" in flags) + ("F" in flags)
        if "R" in flags:
            consumed = 0
        end = (start + consumed) & 0xFFFFFFFF
        if seq is None or _after(end, own):
            self.next_seq[from_client] = end
        if lost:
            return start
        peer = not from_client
        if consumed and accepted:
            self._deliver(peer, start, end)
        ack = self.ack_number(from_client) if "A" in flags else 0
        if options is None:
            options = self._options(from_client, flags)
        if window is None:
            window = SYN_WINDOW if "S" in flags else self.window[from_client]
        self.packets.append(
            self._packet(from_client, flags, start, ack, window, options, data)
        )
        return start

    def ack_number(self, side: bool) -> int:
        """Return what ``side`` acknowledges: the end of the peer's contiguous bytes."""
        peer = not side
        cursor = self.isn[peer]
        for start, stop in self._merged(side):
            if self._offset(peer, start) > self._offset(peer, cursor):
                break
            if self._offset(peer, stop) > self._offset(peer, cursor):
                cursor = stop
        return cursor

    def sack_blocks(self, side: bool) -> list[tuple[int, int]]:
        """Return up to three ranges of the peer's bytes ``side`` holds past a hole."""
        peer = not side
        ack = self._offset(peer, self.ack_number(side))
        blocks = [
            block for block in self._merged(side) if self._offset(peer, block[0]) > ack
        ]
        return blocks[-3:]

    def _merged(self, side: bool) -> list[tuple[int, int]]:
        """Return the ranges ``side`` received, sorted and merged where they touch."""
        peer = not side
        merged: list[tuple[int, int]] = []
        for start, stop in sorted(
            self.received[side], key=lambda block: self._offset(peer, block[0])
        ):
            if merged and self._offset(peer, start) <= self._offset(
                peer, merged[-1][1]
            ):
                if self._offset(peer, stop) > self._offset(peer, merged[-1][1]):
                    merged[-1] = (merged[-1][0], stop)
                continue
            merged.append((start, stop))
        return merged

    # -- building packets -------------------------------------------------

    def _deliver(self, side: bool, start: int, end: int) -> None:
        if (start, end) not in self.received[side]:
            self.received[side].append((start, end))

    def _offset(self, sender: bool, raw: int) -> int:
        return (raw - self.isn[sender]) & 0xFFFFFFFF

    def _timestamp(self, side: bool) -> tuple[int, int]:
        value = (self._ts_base[side] + int((self.time - START) * 1000)) & 0xFFFFFFFF
        echo = self._ts_recent[side]
        self._ts_recent[not side] = value
        return value, echo

    def _options(self, side: bool, flags: str) -> list[tuple[str, Any]]:
        timestamp = self._timestamp(side)
        if "S" in flags:
            return [
                ("MSS", 1460),
                ("SAckOK", b""),
                ("Timestamp", timestamp),
                ("NOP", None),
                ("WScale", WINDOW_SCALE),
            ]
        options: list[tuple[str, Any]] = [("NOP", None), ("NOP", None)]
        options.append(("Timestamp", timestamp))
        blocks = self.sack_blocks(side) if "A" in flags else []
        if blocks:
            options += [("NOP", None), ("NOP", None), ("SAck", _flatten(blocks))]
        return options

    def _packet(
        self,
        side: bool,
        flags: str,
        seq: int,
        ack: int,
        window: int,
        options: list[tuple[str, Any]],
        data: bytes,
    ) -> Any:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether
        from scapy.packet import Raw

        src, dst = (CLIENT, SERVER) if side else (SERVER, CLIENT)
        mac_src, mac_dst = (
            (CLIENT_MAC, SERVER_MAC) if side else (SERVER_MAC, CLIENT_MAC)
        )
        self._ip_id[side] = (self._ip_id[side] + 1) & 0xFFFF
        packet = (
            Ether(src=mac_src, dst=mac_dst)
            / IP(src=src, dst=dst, ttl=64, id=self._ip_id[side], flags="DF")
            / TCP(
                sport=self.ports[side],
                dport=self.ports[not side],
                flags=flags,
                seq=seq,
                ack=ack,
                window=window,
                options=options,
            )
        )
        if data:
            packet = packet / Raw(load=data)
        packet.time = self.time
        return packet

    # -- common exchanges --------------------------------------------------

    def handshake(self) -> None:
        """SYN, SYN-ACK one round trip later, and the ACK right after it."""
        self.client("S")
        self.wait(self.rtt)
        self.server("SA")
        self.wait(0.00005)
        self.client("A")

    def close_by_client(self) -> None:
        """FIN from the client, FIN-ACK from the server, the last ACK."""
        self.client("FA")
        self.wait(self.rtt)
        self.server("FA")
        self.wait(0.00005)
        self.client("A")


def _after(first: int, second: int) -> bool:
    """Return whether raw sequence number ``first`` is after ``second`` (RFC 1982)."""
    return first != second and (first - second) & 0xFFFFFFFF < 1 << 31


def _flatten(blocks: list[tuple[int, int]]) -> tuple[int, ...]:
    return tuple(edge for block in blocks for edge in block)


def write_pcap(packets: list[Any], path: Path) -> None:
    """Write scapy packets, with their ``time``, to a pcap file."""
    from scapy.utils import PcapWriter

    with PcapWriter(str(path), linktype=1, sync=False) as writer:
        for packet in packets:
            writer.write(packet)


def request(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: demo.example\r\n\r\n".encode()


def response(body_size: int) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {body_size}\r\n\r\n"
    ).encode()
    return head + b"x" * body_size
