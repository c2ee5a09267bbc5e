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

from tcpwatch.capture.segment import Segment
from tcpwatch.flow.states import EndpointState

SEQ_MOD = 1 << 32
SEQ_HALF = 1 << 31
SEQ_MASK = SEQ_MOD - 1

NO_SEGMENT = Segment(float("nan"), b"", b"", -1, -1, -1, -1, 0, 0, 0, 0, b"", b"")
"""Stands for "no previous segment": it matches no real one (its time is NaN)."""

# A content-gap model keeps at most this many out-of-order ranges per side;
# past it, the oldest range is forgotten (its bytes may later count as a gap).
MAX_BLOCKS = 64


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
        "rxmt_count",
        "rxmt_thresh",
        "win0_count",
        "win0_thresh",
        "gap_count",
        "gap_thresh",
        "chk_count",
        "chk_thresh",
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
        "retransmissions",
        "out_of_order",
        "dup_acks",
        "dup_ack_run",
        "zero_windows",
        "keepalives",
        "window_full",
        "fast_retransmissions",
        "spurious_retransmissions",
        "segments_not_captured",
        "zero_window_probes",
        "window_updates",
        "duplicate_captures",
        "sack_segments",
        "fast_open",
        "prev_seg",
        "prev_peer_pkts",
        "pending_ack",
        "pending_index",
        "pending_report",
        "advance_time",
        "first_time",
        "last_time",
        "syn_times",
        "synack_times",
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
        self.rxmt_count = 0
        self.rxmt_thresh = 1
        self.win0_count = 0
        self.win0_thresh = 1
        self.gap_count = 0
        self.gap_thresh = 1
        self.chk_count = 0
        self.chk_thresh = 1
        self.reassem = 1
        """Relative: the next byte the content-gap model expects."""
        self.blocks: list[list[int]] = []
        """Relative ``[start, end)`` ranges seen above a hole, sorted by start."""
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
        self.retransmissions = 0
        self.out_of_order = 0
        self.dup_acks = 0
        self.dup_ack_run = 0
        """Duplicate ACKs in a row, reset by any ACK that moves."""
        self.zero_windows = 0
        self.keepalives = 0
        self.window_full = 0
        self.fast_retransmissions = 0
        self.spurious_retransmissions = 0
        self.segments_not_captured = 0
        self.zero_window_probes = 0
        self.window_updates = 0
        self.duplicate_captures = 0
        self.sack_segments = 0
        """Segments from this side that carried SACK blocks (RFC 2018)."""
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
        self.first_time = 0.0
        self.last_time = 0.0
        self.syn_times: list[float] = []
        """Times of this side's SYNs without ACK, retransmissions included."""
        self.synack_times: list[float] = []
        """Times of this side's SYN-ACKs, retransmissions included."""
        self.fin_time: float | None = None
        self.rst_time: float | None = None
        self.data_time: float | None = None
        """Time of this side's first payload byte."""

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
