"""A tracked TCP connection: one incarnation of a 4-tuple."""

import hashlib
import ipaddress
import socket
from typing import Any, Final, NamedTuple

from tcpwatch.capture.segment import Segment
from tcpwatch.flow.analysis import DEFAULT_REORDER_WINDOW
from tcpwatch.flow.endpoint import Endpoint
from tcpwatch.flow.states import EndpointState

try:
    # Lets pickle rebuild the class when mypyc compiles this module, as the
    # worker processes of --separate need; a no-op in pure Python.
    from mypy_extensions import mypyc_attr
except ImportError:  # pragma: no cover - mypy_extensions comes with mypy

    def mypyc_attr(*_args: object, **_kwargs: object) -> Any:  # type: ignore[misc]
        return lambda cls: cls


class SegmentView(NamedTuple):
    """A segment as placed in its connection, kept for timelines."""

    segment: Segment
    is_orig: bool
    rel_seq: int
    """Sequence number relative to the sender's ISN (the SYN is 0)."""
    rel_ack: int
    """ACK number relative to the receiver's ISN (0 when the ACK flag is off)."""
    marks: int
    """Analysis marks, a bit set of ``tcpwatch.flow.analysis`` constants."""


@mypyc_attr(serializable=True)
class Connection:
    """Everything the tracker knows about one connection.

    ``orig`` is the endpoint that sent the first SYN; with no SYN seen, the one
    chosen by the role rules in ``FlowTracker`` (``roles_inferred`` is then
    true). Views read the attributes directly; ``tcpwatch.flow.record`` turns a
    finished connection into the public record.
    """

    __slots__ = (
        "number",
        "uid",
        "orig_h",
        "orig_p",
        "resp_h",
        "resp_p",
        "orig",
        "resp",
        "history",
        "hist_seen",
        "start_time",
        "last_time",
        "roles_inferred",
        "flipped",
        "is_partial",
        "simultaneous_open",
        "synack_time",
        "handshake_ack_time",
        "first_rst_orig",
        "close_time",
        "end_reason",
        "segments",
        "segments_dropped",
        "stray_syns",
        "port_reused",
        "doubled",
        "reorder_window",
        "finished",
    )

    def __init__(
        self,
        number: int,
        orig_h: bytes,
        orig_p: int,
        resp_h: bytes,
        resp_p: int,
        start_time: float,
    ) -> None:
        self.number = number
        """1-based position in the order connections were first seen."""
        self.uid = make_uid(number, orig_h, orig_p, resp_h, resp_p, start_time)
        self.orig_h = orig_h
        self.orig_p = orig_p
        self.resp_h = resp_h
        self.resp_p = resp_p
        self.orig = Endpoint(True)
        self.resp = Endpoint(False)
        self.history = ""
        """Zeek's history letters so far (``tcpwatch.flow.zeek`` lists them)."""
        self.hist_seen = 0
        self.start_time = start_time
        self.last_time = start_time
        self.roles_inferred = False
        self.flipped = False
        self.is_partial = False
        self.simultaneous_open = False
        self.synack_time: float | None = None
        """Time of the first SYN-ACK from the responder."""
        self.handshake_ack_time: float | None = None
        """Time of the originator's ACK that acknowledged the SYN-ACK."""
        self.first_rst_orig: bool | None = None
        """Which side sent the first RST: True for the originator, None if none."""
        self.close_time: float | None = None
        """When both sides had closed (FIN or RST), for the close delay."""
        self.end_reason = "open"
        """Why tracking stopped: open, closed, idle_timeout, reused, evicted."""
        self.segments: list[SegmentView] | None = None
        self.segments_dropped = 0
        self.stray_syns = 0
        self.port_reused = False
        """True when this connection took over the 4-tuple of an earlier one."""
        self.doubled = False
        """True once a segment of this connection was seen captured twice."""
        self.reorder_window = DEFAULT_REORDER_WINDOW
        """Seconds within which a segment filling a hole is out-of-order."""
        self.finished = False

    def flip(self) -> None:
        """Swap originator and responder (Zeek's ``FlipRoles``), marking ``^``."""
        self.orig_h, self.resp_h = self.resp_h, self.orig_h
        self.orig_p, self.resp_p = self.resp_p, self.orig_p
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = True
        self.resp.is_orig = False
        low = self.hist_seen & 0xFFFF
        high = self.hist_seen >> 16
        self.hist_seen = (low << 16) | high
        self.history += "^"
        self.flipped = not self.flipped
        if self.segments is not None:
            self.segments = [
                view._replace(is_orig=not view.is_orig) for view in self.segments
            ]

    @property
    def history_text(self) -> str:
        return self.history

    @property
    def duration(self) -> float:
        return self.last_time - self.start_time

    def endpoint_sizes(self) -> tuple[int, int]:
        """Return the payload bytes sent by the originator and the responder."""
        return (self.orig.size(self.resp.state), self.resp.size(self.orig.state))

    def is_closed(self) -> bool:
        """True once either side has sent FIN or RST (Zeek's ``IsClosed``)."""
        return self.orig.did_close or self.resp.did_close

    def both_done(self) -> bool:
        """True once both sides sent FIN, or either sent RST."""
        orig_state, resp_state = self.orig.state, self.resp.state
        if EndpointState.RESET in (orig_state, resp_state):
            return True
        return orig_state == EndpointState.CLOSED and resp_state == EndpointState.CLOSED

    def describe(self) -> str:
        """Return ``orig:port -> resp:port``, with IPv6 addresses in brackets."""
        return f"{format_endpoint(self.orig_h, self.orig_p)} -> " + format_endpoint(
            self.resp_h, self.resp_p
        )


# Text forms of the addresses formatted lately, because servers and busy
# clients appear in many connections and formatting an IPv6 address takes
# microseconds. The cache is emptied when it reaches _ADDRESS_CACHE_SIZE
# entries, which keeps it to tens of kilobytes on endless live captures.
_address_texts: dict[bytes, str] = {}
_ADDRESS_CACHE_SIZE: Final = 256


def format_address(address: bytes) -> str:
    """Return the usual text form of a 4- or 16-byte address."""
    text = _address_texts.get(address)
    if text is None:
        if len(address) == 4:
            text = socket.inet_ntoa(address)
        else:
            text = str(ipaddress.IPv6Address(address))
        if len(_address_texts) >= _ADDRESS_CACHE_SIZE:
            _address_texts.clear()
        _address_texts[address] = text
    return text


def format_endpoint(address: bytes, port: int) -> str:
    text = format_address(address)
    if len(address) == 16:
        return f"[{text}]:{port}"
    return f"{text}:{port}"


_UID_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def make_uid(
    number: int,
    orig_h: bytes,
    orig_p: int,
    resp_h: bytes,
    resp_p: int,
    start_time: float,
) -> str:
    """Return a Zeek-style connection uid: ``C`` and 17 base-62 characters.

    The uid is derived from the connection's identity, so the same capture
    gives the same uids on every run. The characters are the 17 lowest
    base-62 digits of a 104-bit BLAKE2b hash, least significant first.
    """
    digest = hashlib.blake2b(
        orig_h + resp_h + f"{orig_p}/{resp_p}/{start_time!r}/{number}".encode(),
        digest_size=13,
    ).digest()
    value = int.from_bytes(digest, "big") % 62**17
    # Nine digits come from the low part and eight from the high part. Each
    # part is below 2**62, so the compiled build divides them as machine
    # integers, which made make_uid about twice as fast as 17 divisions of
    # the 104-bit number.
    high, low = divmod(value, 62**9)
    return "C" + _base62(low, 9) + _base62(high, 8)


def _base62(value: int, digits: int) -> str:
    """Return the ``digits`` lowest base-62 digits of ``value``, lowest first."""
    letters = []
    for _ in range(digits):
        letters.append(_UID_ALPHABET[value % 62])
        value //= 62
    return "".join(letters)
