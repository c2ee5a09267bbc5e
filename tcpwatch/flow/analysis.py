"""Per-segment analysis, with Wireshark's names for what it finds.

Each segment gets a bit set of marks. The rules follow the Wireshark User's
Guide, chapter "TCP Analysis"; where several apply, the precedence is
Wireshark's: keep-alive, spurious retransmission, fast retransmission,
out-of-order, retransmission.

The analysis runs before the tracker updates the sender's sequence state, so
``sender.last`` is still the highest sequence number seen *before* this
segment. The marks compare a segment with ``next_seq``, which is ``last``
except while a zero-window probe's byte is not acknowledged.
"""

from typing import Final

from tcpwatch.capture.segment import FIN, RST, SYN
from tcpwatch.flow.endpoint import Endpoint

RETRANSMISSION: Final = 1 << 0
FAST_RETRANSMISSION: Final = 1 << 1
SPURIOUS_RETRANSMISSION: Final = 1 << 2
OUT_OF_ORDER: Final = 1 << 3
PREVIOUS_SEGMENT_NOT_CAPTURED: Final = 1 << 4
DUP_ACK: Final = 1 << 5
ZERO_WINDOW: Final = 1 << 6
WINDOW_FULL: Final = 1 << 7
ZERO_WINDOW_PROBE: Final = 1 << 8
KEEP_ALIVE: Final = 1 << 9
WINDOW_UPDATE: Final = 1 << 10
BAD_CHECKSUM: Final = 1 << 11
STRAY_SYN: Final = 1 << 12
PORT_REUSE: Final = 1 << 13
DUPLICATE_CAPTURE: Final = 1 << 14
"""The same segment captured a second time, e.g. on two interfaces of one host."""
ACKED_UNSEEN: Final = 1 << 15
"""An ACK for data the capture has not shown (yet): lost, or captured late."""

ANY_RETRANSMISSION: Final = (
    RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION
)

MARK_NAMES = {
    RETRANSMISSION: "retransmission",
    FAST_RETRANSMISSION: "fast retransmission",
    SPURIOUS_RETRANSMISSION: "spurious retransmission",
    OUT_OF_ORDER: "out-of-order",
    PREVIOUS_SEGMENT_NOT_CAPTURED: "previous segment not captured",
    DUP_ACK: "duplicate ACK",
    ZERO_WINDOW: "zero window",
    WINDOW_FULL: "window full",
    ZERO_WINDOW_PROBE: "zero-window probe",
    KEEP_ALIVE: "keep-alive",
    WINDOW_UPDATE: "window update",
    BAD_CHECKSUM: "bad checksum",
    STRAY_SYN: "SYN inside the connection",
    PORT_REUSE: "port numbers reused",
    DUPLICATE_CAPTURE: "duplicate capture",
    ACKED_UNSEEN: "ACKed unseen segment",
}

# Wireshark calls a segment that fills a hole out-of-order, not a
# retransmission, when it arrives within this long of the highest segment and
# no handshake round-trip time is known.
DEFAULT_REORDER_WINDOW: Final = 0.003

# A fast retransmission follows the duplicate ACKs within this long.
FAST_RETRANSMISSION_WINDOW: Final = 0.02

# A segment identical to its sender's previous one (sequence and ACK numbers,
# flags, window, options and length), at most this long after it and with no
# segment from the peer in between, is the same packet captured twice. A
# timeout retransmission waits far longer (at least 1 s by RFC 6298, 200 ms
# in Linux). Faster resends answer a peer segment, which comes in between.
# Once a connection is known to be captured twice, the peer condition is
# dropped, because the peer's copies interleave with the sender's.
DUPLICATE_CAPTURE_WINDOW: Final = 0.001


def mark_names(marks: int) -> list[str]:
    """Return the names of the marks set in ``marks``, in bit order."""
    return [name for bit, name in MARK_NAMES.items() if marks & bit]


def next_seq(sender: Endpoint) -> int:
    """Return the relative sequence number the sender's next new data takes.

    That is one past the highest number seen, except after a zero-window
    probe that the receiver has not acknowledged. A receiver with a zero
    window drops the probe's byte (RFC 9293 section 3.8.6.1), so the sender
    sends it again as new data, and a repeated probe is still a probe.
    Wireshark 4.0 does not count a probe's byte either. An ACK that covers
    the byte shows that the receiver accepted it.
    """
    last = sender.last
    if sender.probe_end == last and sender.ack < last:
        return last - 1
    return last


def analyze_data(
    sender: Endpoint,
    receiver: Endpoint,
    flags: int,
    payload_len: int,
    rel_seq: int,
    seg_len: int,
    ts: float,
    reorder_window: float,
) -> int:
    """Classify a segment's place in the sender's sequence space."""
    last = next_seq(sender)
    if flags & (SYN | FIN | RST) == 0 and payload_len <= 1 and rel_seq == last - 1:
        # RFC 9293 section 3.8.4: a probe one byte below the next sequence
        # number, empty or with one garbage byte, is neither data nor loss.
        return KEEP_ALIVE
    if flags & RST:
        return 0
    if rel_seq > last and last > 0:
        # A pure ACK that starts past the next sequence number shows as well
        # as data does that the bytes in between were sent and not captured.
        return PREVIOUS_SEGMENT_NOT_CAPTURED
    if seg_len <= 0:
        return 0
    if rel_seq < last:
        end = rel_seq + seg_len
        if end <= sender.ack and not flags & SYN:
            # A repeated SYN whose SYN-ACK was already seen is a plain
            # retransmission, as Wireshark marks it: the SYN-ACK was lost.
            return SPURIOUS_RETRANSMISSION
        if (
            receiver.dup_ack_run >= 2
            and rel_seq == sender.ack
            and receiver.last_ack_sent == sender.ack
            and ts - receiver.last_time <= FAST_RETRANSMISSION_WINDOW
        ):
            return FAST_RETRANSMISSION
        if (
            end != last
            and fills_hole(sender, rel_seq, end)
            and round((ts - sender.advance_time) * 1e6) < round(reorder_window * 1e6)
        ):
            # Wireshark also requires that the segment does not end where the
            # highest one did: that would be the same segment sent again. The
            # times are compared in whole microseconds, because a float of
            # seconds since 1970 carries only about 0.2 us of precision.
            return OUT_OF_ORDER
        return RETRANSMISSION
    return 0


def fills_hole(sender: Endpoint, start: int, end: int) -> bool:
    """Return whether ``[start, end)`` covers bytes the sender was not seen to send."""
    if start >= sender.reassem and not sender.blocks:
        return start < sender.last
    for block_start, block_end in sender.blocks or ():
        if start < block_start:
            return True
        if start < block_end:
            start = block_end
            if start >= end:
                return False
    return start < end and start >= sender.reassem


def window_scale_known(advertiser: Endpoint, peer: Endpoint) -> bool:
    """Return whether ``advertiser``'s window field can be scaled correctly.

    The shift is only sent in SYNs (RFC 7323 section 2.2): it is known when
    the advertiser's SYN was captured, or when the peer's SYN offered no
    window scaling, which turns scaling off both ways.
    """
    return bool(advertiser.syn_count) or (
        bool(peer.syn_count) and peer.wscale_offered is None
    )


def analyze_ack(
    sender: Endpoint,
    receiver: Endpoint,
    flags: int,
    payload_len: int,
    rel_seq: int,
    rel_ack: int,
    window: int,
) -> int:
    """Classify what an ACK says about the receiver's progress and window."""
    marks = 0
    if window == 0 and flags & (SYN | FIN | RST) == 0:
        marks |= ZERO_WINDOW
    last = next_seq(sender)
    if payload_len or flags & (SYN | FIN | RST):
        if payload_len == 1 and receiver.window == 0 and rel_seq == last:
            marks |= ZERO_WINDOW_PROBE
        elif (
            payload_len
            and receiver.window > 0
            and rel_seq + payload_len >= sender.ack + receiver.window
            and window_scale_known(receiver, sender)
        ):
            marks |= WINDOW_FULL
        return marks
    if rel_ack == sender.last_ack_sent and rel_seq == last:
        if window == sender.last_window_sent and window != 0:
            if next_seq(receiver) > rel_ack:
                marks |= DUP_ACK
        elif window != 0 and sender.last_window_sent >= 0:
            # Wireshark counts any change to a non-zero window, up or down.
            marks |= WINDOW_UPDATE
    return marks
