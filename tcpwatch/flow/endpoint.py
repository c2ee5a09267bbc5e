"""One side of a TCP connection, as an observer on the wire sees it.

Sequence numbers are kept *relative* to the endpoint's initial sequence number
(ISN), as unbounded Python ints: relative 0 is the SYN, relative 1 the first
payload byte. A raw 32-bit number is mapped to the relative value nearest to a
reference point (``unwrap``), so numbers stay right across the 2**32 wrap in
both directions as long as no jump exceeds 2**31 (RFC 9293 section 3.4, and
RFC 7323 section 5 for why real connections stay far below that).

When the capture starts mid-connection, the endpoint is set up as though its
SYN had been seen just before the first segment, so relative numbering and
byte counts work the same way.
"""

from typing import Any, Final

from tcpwatch.capture.segment import Segment
from tcpwatch.flow.states import EndpointState

try:
    # Lets pickle rebuild the class when mypyc compiles this module, as the
    # worker processes of --separate need; a no-op in pure Python.
    from mypy_extensions import mypyc_attr
except ImportError:  # pragma: no cover - mypy_extensions comes with mypy

    def mypyc_attr(*_args: object, **_kwargs: object) -> Any:  # type: ignore[misc]
        return lambda cls: cls


SEQ_MOD: Final = 1 << 32
SEQ_HALF: Final = 1 << 31
SEQ_MASK = SEQ_MOD - 1

NO_SEGMENT = Segment(float("nan"), b"", b"", -1, -1, -1, -1, 0, 0, 0, 0, b"", b"")
"""Stands for "no previous segment": it matches no real one (its time is NaN)."""

MAX_HANDSHAKE_TIMES: Final = 16
"""SYN and SYN-ACK times kept per side. Linux sends at most 7 SYNs and 6
SYN-ACKs by default (tcp_syn_retries 6, tcp_synack_retries 5), so only a
flood of them reaches this."""

# A content-gap model keeps at most this many out-of-order ranges per side;
# past it, the oldest range is forgotten (its bytes may later count as a gap).
MAX_BLOCKS: Final = 64


@mypyc_attr(serializable=True)
class Endpoint:
    """Sequence-space bookkeeping, counters and options for one side."""

    __slots__ = (
        "is_orig",
        "state",
        "prev_state",
        "isn",
        "last",
        "ack",
        "fin_count",
        "rst_count",
        "syn_count",
        "fin_seq",
        "fin_ack",
        "window_scale",
        "window",
        "hist_last_syn",
        "hist_last_fin",
        "hist_last_rst",
        "reassem",
        "blocks",
        "missed_bytes",
        "pkts",
        "ip_bytes",
        "did_close",
        "mss",
        "wscale_offered",
        "sack_permitted",
        "timestamps",
        "last_ack_sent",
        "last_window_sent",
        "dup_ack_run",
        "fast_open",
        "prev_seg",
        "prev_peer_pkts",
        "pending_ack",
        "pending_index",
        "pending_report",
        "advance_time",
        "probe_end",
        "first_time",
        "last_time",
        "syn_times",
        "synack_times",
        "syn_transmissions",
        "synack_transmissions",
        "marks",
        "fin_time",
        "rst_time",
        "data_time",
    )

    def __init__(self, is_orig: bool) -> None:
        self.is_orig = is_orig
        self.state = EndpointState.INACTIVE
        self.prev_state = EndpointState.INACTIVE
        self.isn = 0
        """Raw sequence number that relative 0 stands for."""
        self.last = 0
        """Relative: one past the highest sequence number this side has sent."""
        self.ack = 0
        """Relative: the highest ACK the peer has sent for this side's data."""
        self.fin_count = 0
        self.rst_count = 0
        self.syn_count = 0
        self.fin_seq = 0
        """Relative sequence number one past this side's FIN."""
        self.fin_ack: int | None = None
        """Relative ACK (in the peer's space) on this side's first FIN; None without."""
        self.window_scale = 0
        """Shift applied to this side's window field (0 until both sides agree)."""
        self.window = -1
        """Last window this side advertised, scaled, in bytes (-1: none yet)."""
        self.hist_last_syn = -1
        self.hist_last_fin = -1
        self.hist_last_rst = -1
        self.reassem = 1
        """Relative: the next byte the content-gap model expects."""
        self.blocks: list[list[int]] | None = None
        """Relative ``[start, end)`` ranges seen above a hole, sorted by start.

        None until the first hole, as most connections never have one.
        """
        self.missed_bytes = 0
        self.pkts = 0
        self.ip_bytes = 0
        self.did_close = False
        self.mss: int | None = None
        self.wscale_offered: int | None = None
        self.sack_permitted = False
        self.timestamps = False
        self.last_ack_sent = -1
        """Relative (in the peer's space) ACK of this side's previous segment."""
        self.last_window_sent = -1
        """Raw window field of this side's previous ACK (-1: none yet).

        Raw, as Wireshark compares it for duplicate ACKs and window updates,
        also across the SYN, whose window is never scaled.
        """
        self.dup_ack_run = 0
        """Duplicate ACKs in a row, reset by any ACK that moves."""
        self.fast_open: str | None = None
        """TCP Fast Open use on this side's SYN: ``cookie_request``, ``cookie``."""
        self.prev_seg = NO_SEGMENT
        """This side's previous segment, to recognise a copy captured twice."""
        self.prev_peer_pkts = 0
        """The peer's packet count when ``prev_seg`` was seen."""
        self.pending_ack = 0
        """Relative: an ACK from the peer beyond all data seen from this side.

        The bytes up to it count as a content gap only if this side's next
        segment does not bring them: an ACK captured a moment before the data
        it acknowledges (capture skew) is not loss. 0 when nothing is pending.
        """
        self.pending_index = 0
        """Position in the history where a confirmed gap's ``G`` goes."""
        self.pending_report = False
        """Whether the pending gap is reported (both sides were established)."""
        self.advance_time = 0.0
        """Time of the segment that last moved ``last`` forward."""
        self.probe_end = 0
        """Relative: one past this side's latest zero-window probe byte (0: none).

        ``last`` counts the probe's byte, as Zeek does, but the receiver
        takes the byte only if its ACK covers it: see ``analysis.next_seq``.
        """
        self.first_time = 0.0
        self.last_time = 0.0
        self.syn_times: tuple[float, ...] = ()
        """Times of this side's SYNs without ACK, retransmissions included.

        At most ``MAX_HANDSHAKE_TIMES``: past that, the last entry is replaced,
        so the first and the latest time stay known.
        """
        self.synack_times: tuple[float, ...] = ()
        """Times of this side's SYN-ACKs, retransmissions included; bounded too."""
        self.syn_transmissions = 0
        """This side's SYNs without ACK, retransmissions included, not bounded."""
        self.synack_transmissions = 0
        """This side's SYN-ACKs, retransmissions included, not bounded."""
        self.marks: MarkCounts | None = None
        """Analysis mark counts; None until this side's first marked segment."""
        self.fin_time: float | None = None
        self.rst_time: float | None = None
        self.data_time: float | None = None
        """Time of this side's first payload byte."""

    def mark_counts(self) -> "MarkCounts":
        """Return this side's mark counts, created on first use."""
        marks = self.marks
        if marks is None:
            marks = self.marks = MarkCounts()
        return marks

    # Read-only views of the mark counts, 0 while none were made.

    @property
    def retransmissions(self) -> int:
        return 0 if self.marks is None else self.marks.retransmissions

    @property
    def fast_retransmissions(self) -> int:
        return 0 if self.marks is None else self.marks.fast_retransmissions

    @property
    def spurious_retransmissions(self) -> int:
        return 0 if self.marks is None else self.marks.spurious_retransmissions

    @property
    def out_of_order(self) -> int:
        return 0 if self.marks is None else self.marks.out_of_order

    @property
    def segments_not_captured(self) -> int:
        return 0 if self.marks is None else self.marks.segments_not_captured

    @property
    def dup_acks(self) -> int:
        return 0 if self.marks is None else self.marks.dup_acks

    @property
    def zero_windows(self) -> int:
        return 0 if self.marks is None else self.marks.zero_windows

    @property
    def window_full(self) -> int:
        return 0 if self.marks is None else self.marks.window_full

    @property
    def zero_window_probes(self) -> int:
        return 0 if self.marks is None else self.marks.zero_window_probes

    @property
    def keepalives(self) -> int:
        return 0 if self.marks is None else self.marks.keepalives

    @property
    def window_updates(self) -> int:
        return 0 if self.marks is None else self.marks.window_updates

    @property
    def duplicate_captures(self) -> int:
        return 0 if self.marks is None else self.marks.duplicate_captures

    @property
    def sack_segments(self) -> int:
        return 0 if self.marks is None else self.marks.sack_segments

    def set_state(self, state: EndpointState) -> None:
        if state != self.state:
            self.prev_state = self.state
            self.state = state

    def init_seq(self, first_seq: int, end_seq: int) -> None:
        """Start relative numbering at raw ``first_seq``.

        ``end_seq`` is the raw number one past the segment that starts it.
        """
        self.isn = first_seq
        self.ack = 0
        self.probe_end = 0
        self.last = (end_seq - first_seq) & SEQ_MASK

    def unwrap(self, raw: int, reference: int) -> int:
        """Return the relative value of raw ``raw`` that lies nearest ``reference``."""
        ref_raw = (self.isn + reference) & SEQ_MASK
        return reference + ((raw - ref_raw + SEQ_HALF) & SEQ_MASK) - SEQ_HALF

    def size(self, peer_state: EndpointState) -> int:
        """Return the payload bytes this side sent, as Zeek's ``TCP_Endpoint::Size``.

        The count spans the sequence space from the ISN to the higher of the
        last byte sent and the last byte acknowledged, less the SYN and FIN,
        so retransmitted bytes count once and unseen (gap) bytes count too.
        """
        if (
            self.prev_state == EndpointState.SYN_SENT
            and self.state == EndpointState.RESET
            and peer_state == EndpointState.INACTIVE
            and self.ack > 1
        ):
            # A half-open connection found and aborted: its numbers mean nothing.
            return 0
        size = max(self.last, self.ack)
        if size > 0:
            size -= 1
        if self.fin_count and size > 0:
            size -= 1
        return size if size > 0 else 0


@mypyc_attr(serializable=True)
class MarkCounts:
    """How many of one side's segments got each analysis mark.

    Kept apart from ``Endpoint`` and created on the first marked segment, so
    a connection without anomalies (and a half-open one) does not carry them.
    The ``*_count`` and ``*_thresh`` pairs are Zeek's logarithmic history
    counters for the C, G, T and W letters.
    """

    __slots__ = (
        "retransmissions",
        "fast_retransmissions",
        "spurious_retransmissions",
        "out_of_order",
        "segments_not_captured",
        "dup_acks",
        "zero_windows",
        "window_full",
        "zero_window_probes",
        "keepalives",
        "window_updates",
        "duplicate_captures",
        "sack_segments",
        "chk_count",
        "chk_thresh",
        "gap_count",
        "gap_thresh",
        "rxmt_count",
        "rxmt_thresh",
        "win0_count",
        "win0_thresh",
    )

    def __init__(self) -> None:
        self.retransmissions = 0
        self.fast_retransmissions = 0
        self.spurious_retransmissions = 0
        self.out_of_order = 0
        self.segments_not_captured = 0
        self.dup_acks = 0
        self.zero_windows = 0
        self.window_full = 0
        self.zero_window_probes = 0
        self.keepalives = 0
        self.window_updates = 0
        self.duplicate_captures = 0
        self.sack_segments = 0
        """Segments that carried SACK blocks (RFC 2018)."""
        self.chk_count = 0
        self.chk_thresh = 1
        self.gap_count = 0
        self.gap_thresh = 1
        self.rxmt_count = 0
        self.rxmt_thresh = 1
        self.win0_count = 0
        self.win0_thresh = 1


def add_time(times: tuple[float, ...], ts: float) -> tuple[float, ...]:
    """Return ``times`` with ``ts`` added, keeping at most ``MAX_HANDSHAKE_TIMES``."""
    if len(times) < MAX_HANDSHAKE_TIMES:
        return (*times, ts)
    return (*times[:-1], ts)
