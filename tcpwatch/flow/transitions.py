"""Transitions of each side's observer state, in the order of Zeek's TCP analyzer.

``init_endpoint`` starts or restarts a side's sequence space, and
``update_last_seq`` moves its highest sequence number (Zeek's
``init_endpoint`` and ``update_last_seq``). ``state_machine`` moves the
sender's ``EndpointState`` for a segment (Zeek's ``UpdateStateMachine``),
following RFC 9293 section 3.3.2 as far as an observer can see it.
"""

from typing import Final

from tcpwatch.capture.segment import ACK, FIN, RST, SYN, Segment
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.endpoint import SEQ_HALF, SEQ_MASK, Endpoint
from tcpwatch.flow.states import EndpointState
from tcpwatch.flow.zeek import scaled_history

INACTIVE: Final = EndpointState.INACTIVE
SYN_SENT: Final = EndpointState.SYN_SENT
SYN_ACK_SENT: Final = EndpointState.SYN_ACK_SENT
PARTIAL: Final = EndpointState.PARTIAL
ESTABLISHED: Final = EndpointState.ESTABLISHED
CLOSED: Final = EndpointState.CLOSED
RESET: Final = EndpointState.RESET

# Zeek's TOO_LARGE_SEQ_DELTA: a SYN or RST whose sequence number jumps further
# than this from the last one is not trusted to move the sequence state.
TOO_LARGE_SEQ_DELTA: Final = 1 << 20


def init_endpoint(
    conn: Connection, endpoint: Endpoint, seg: Segment, seg_len: int
) -> int:
    """Set up or restart the endpoint's sequence space (Zeek's init_endpoint)."""
    flags = seg.flags
    state = endpoint.state
    end = (seg.seq + seg_len) & SEQ_MASK
    if state == INACTIVE:
        if flags & SYN:
            endpoint.init_seq(seg.seq, end)
        else:
            # Mid-stream: pretend a SYN came just before this segment.
            endpoint.init_seq((seg.seq - 1) & SEQ_MASK, seg.seq)
        return 0
    if not flags & SYN or seg.seq == endpoint.isn:
        return 0
    if state in (SYN_SENT, SYN_ACK_SENT):
        endpoint.init_seq(seg.seq, end)
        return 0
    if state in (ESTABLISHED, PARTIAL):
        if endpoint.size(INACTIVE) > 0:
            # Departure from Zeek, which restarts the sequence space here:
            # a SYN with a new ISN inside a connection that has carried
            # data is stray, and must not inflate its byte counts.
            conn.stray_syns += 1
            return analysis.STRAY_SYN
        endpoint.init_seq(seg.seq, end)
        return 0
    if state == RESET and endpoint.prev_state == INACTIVE:
        # The earlier RST may have been spoofed: trust the SYN instead.
        endpoint.init_seq(seg.seq, end)
    return 0


def update_last_seq(
    conn: Connection,
    endpoint: Endpoint,
    rel_end: int,
    flags: int,
    length: int,
) -> int:
    """Move the highest sequence number seen (Zeek's update_last_seq).

    Returns how far ``rel_end`` is past the previous highest number.
    """
    delta = rel_end - endpoint.last
    delta = ((delta + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
    if flags & (SYN | RST) and not -TOO_LARGE_SEQ_DELTA <= delta <= TOO_LARGE_SEQ_DELTA:
        pass
    elif flags & FIN and endpoint.last == 1:
        # Only the SYN seen so far: trust the FIN even going backwards,
        # which keeps connections of more than 2 GB right.
        endpoint.last += delta
    elif endpoint.state == RESET:
        pass
    elif delta > 0:
        endpoint.last += delta
    elif length > 0:
        # Zeek's retransmission: payload that does not advance the sender.
        scaled_history(conn, endpoint, "T")
    return delta


def state_machine(
    conn: Connection,
    endpoint: Endpoint,
    peer: Endpoint,
    seg: Segment,
    is_orig: bool,
    length: int,
    delta_last: int,
) -> bool:
    """Move the sender's state (Zeek's UpdateStateMachine). Returns do_close."""
    flags = seg.flags
    state = endpoint.state
    if state == INACTIVE:
        return _from_inactive(conn, endpoint, peer, seg, is_orig, length)
    if state in (SYN_SENT, SYN_ACK_SENT):
        if flags & FIN:
            endpoint.set_state(CLOSED)
        if flags & RST:
            endpoint.set_state(RESET)
        return bool(flags & (FIN | RST))
    if state in (ESTABLISHED, PARTIAL):
        if (
            flags & SYN
            and state == PARTIAL
            and peer.state == INACTIVE
            and not flags & ACK
        ):
            endpoint.set_state(SYN_SENT)
        do_close = False
        if flags & FIN and not flags & RST:
            endpoint.set_state(CLOSED)
            if peer.state == RESET and peer.prev_state == CLOSED:
                # FIN then RST from the peer was a normal close after all.
                peer.set_state(CLOSED)
            do_close = True
        if flags & RST:
            endpoint.set_state(RESET)
            do_close = True
        return do_close
    if state == CLOSED:
        # After a FIN exchange a RST changes nothing (RFC 9293 3.10.7.4
        # lets TIME-WAIT answer with one); before it, it is an abort.
        if flags & RST and peer.state != CLOSED:
            endpoint.set_state(RESET)
            return not endpoint.did_close
        return False
    return False


def _from_inactive(
    conn: Connection,
    endpoint: Endpoint,
    peer: Endpoint,
    seg: Segment,
    is_orig: bool,
    length: int,
) -> bool:
    """Zeek's UpdateInactiveState: the sender's first segment."""
    flags = seg.flags
    do_close = False
    if flags & SYN:
        if is_orig:
            endpoint.set_state(SYN_ACK_SENT if flags & ACK else SYN_SENT)
        else:
            if not flags & ACK:
                if peer.state == SYN_ACK_SENT and seg.seq == endpoint.isn:
                    # SYN and SYN-ACK captured in reverse order: swap roles.
                    conn.flip()
                    peer.set_state(ESTABLISHED)
                else:
                    conn.simultaneous_open = True
            if peer.state == SYN_SENT:
                peer.set_state(ESTABLISHED)
            endpoint.set_state(ESTABLISHED)
    if flags & FIN:
        endpoint.set_state(CLOSED)
        do_close = True
    if flags & RST:
        endpoint.set_state(RESET)
        do_close = True
    if endpoint.state == INACTIVE:
        if not is_orig and length == 0 and conn.orig.state == SYN_SENT:
            # Some stacks ACK a SYN before answering it: not mid-stream.
            pass
        elif flags & ACK and peer.state == ESTABLISHED:
            # A SYN-ACK and now an ACK: the SYN was just not captured.
            endpoint.set_state(ESTABLISHED)
        else:
            endpoint.set_state(PARTIAL)
            conn.is_partial = True
    return do_close
