"""Handshake bookkeeping: SYN options, window scaling, TCP Fast Open, timing."""

from tcpwatch.capture.segment import ACK, RST, SYN, Segment
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.endpoint import SEQ_MASK, Endpoint, add_time
from tcpwatch.flow.options import TcpOptions


def note_syn(
    conn: Connection,
    endpoint: Endpoint,
    peer: Endpoint,
    seg: Segment,
    options: TcpOptions,
    duplicate: bool,
) -> None:
    """Record a SYN's options and set window scaling (Zeek's init_window)."""
    endpoint.syn_count += 1
    if not duplicate:
        if seg.flags & ACK:
            endpoint.synack_transmissions += 1
            endpoint.synack_times = add_time(endpoint.synack_times, seg.ts)
        else:
            endpoint.syn_transmissions += 1
            endpoint.syn_times = add_time(endpoint.syn_times, seg.ts)
    _note_fast_open(endpoint, peer, seg, options)
    if options.mss is not None:
        endpoint.mss = options.mss
    endpoint.sack_permitted = endpoint.sack_permitted or options.sack_permitted
    endpoint.timestamps = endpoint.timestamps or options.timestamp is not None
    scale = options.window_scale
    if scale is None:
        endpoint.wscale_offered = None
        endpoint.window_scale = 0
        if seg.flags & ACK:
            peer.window_scale = 0
    else:
        # RFC 7323 section 2.3: a shift above 14 is used as 14.
        scale = min(scale, 14)
        endpoint.wscale_offered = scale
        if seg.flags & ACK and peer.wscale_offered is None and peer.syn_count:
            endpoint.window_scale = 0
        else:
            endpoint.window_scale = scale


def _note_fast_open(
    endpoint: Endpoint, peer: Endpoint, seg: Segment, options: TcpOptions
) -> None:
    """Follow TCP Fast Open (RFC 7413) through the handshake.

    The SYN sender's ``fast_open`` becomes ``cookie_request`` (an empty
    cookie), ``cookie`` (a cookie without data) or ``data`` (data on the SYN).
    The SYN-ACK settles ``data``: ``accepted`` when it acknowledges the data,
    ``not_accepted`` when it acknowledges the SYN alone, so the data must be
    sent again after the handshake.
    """
    if not seg.flags & ACK:
        if seg.payload_len:
            endpoint.fast_open = "data"
        elif options.fast_open_cookie is not None:
            endpoint.fast_open = (
                "cookie" if options.fast_open_cookie else ("cookie_request")
            )
    elif peer.fast_open == "data":
        acked = (seg.ack - peer.isn) & SEQ_MASK
        peer.fast_open = "accepted" if acked > 1 else "not_accepted"


def answers_crossing_syn(endpoint: Endpoint, flags: int) -> bool:
    """Return whether a SYN-ACK answers the peer's SYN in a simultaneous open.

    RFC 9293 section 3.5, figure 8: each side that sent a SYN answers the
    other's with a SYN-ACK repeating its own ISN. That is not a retransmission.
    """
    return (
        bool(flags & ACK)
        and endpoint.synack_transmissions == 1
        and endpoint.syn_transmissions > 0
    )


def note_handshake(
    conn: Connection, flags: int, is_orig: bool, rel_ack: int, ts: float
) -> None:
    """Record the SYN-ACK and the ACK that completes the handshake."""
    if flags & SYN and flags & ACK and not is_orig and conn.synack_time is None:
        conn.synack_time = ts
    elif (
        is_orig
        and flags & ACK
        and not flags & (SYN | RST)
        and conn.handshake_ack_time is None
        and conn.synack_time is not None
        and rel_ack >= 1
    ):
        conn.handshake_ack_time = ts
        syn_times = conn.orig.syn_times
        if syn_times and ts > syn_times[-1]:
            # Wireshark's out-of-order window: its initial round-trip time,
            # from the last SYN to the ACK that completes the handshake,
            # which is the same wherever the capture point is.
            conn.reorder_window = ts - syn_times[-1]
