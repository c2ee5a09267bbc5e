"""The content-gap model: which of a side's bytes the capture never showed.

Zeek's reassembler counts a byte as missed (``missed_bytes``, history ``G``)
when the peer acknowledges it and no segment carrying it was seen. This
model keeps, per side, the next byte expected in order (``reassem``) and the
ranges seen above a hole (``blocks``), and moves both as ACKs arrive.
"""

from tcpwatch.flow.connection import Connection
from tcpwatch.flow.endpoint import MAX_BLOCKS, Endpoint
from tcpwatch.flow.states import EndpointState
from tcpwatch.flow.zeek import scaled_history


def ack_received(conn: Connection, endpoint: Endpoint, rel_ack: int) -> None:
    """Record that the peer acknowledged ``endpoint``'s data up to ``rel_ack``.

    Models Zeek's reassembler: acknowledged bytes that were never seen are
    a content gap (history G, ``missed_bytes``), counted only while both
    sides are established or closing cleanly, as Zeek does.

    Departure from Zeek, which counts the gap at once. An ACK beyond all
    data seen from ``endpoint`` leaves the gap pending until that side's
    next segment, because a mirror port can deliver the ACK just before
    the data it acknowledges. A confirmed gap's ``G`` still goes where the
    ACK was, so the history matches Zeek's when the data is really lost.
    """
    if endpoint.fin_count and rel_ack >= endpoint.fin_seq:
        rel_ack = endpoint.fin_seq - 1
    if endpoint.pending_ack:
        if rel_ack > endpoint.pending_ack:
            endpoint.pending_ack = rel_ack
        return
    if rel_ack <= endpoint.reassem:
        return
    if rel_ack <= 2 and conn.is_partial:
        endpoint.reassem = max(endpoint.reassem, rel_ack)
        return
    peer = conn.resp if endpoint is conn.orig else conn.orig
    report = _is_clean(endpoint) and _is_clean(peer)
    if rel_ack > endpoint.last:
        endpoint.pending_ack = rel_ack
        endpoint.pending_index = len(conn.history)
        endpoint.pending_report = report
        return
    _trim(conn, endpoint, rel_ack, report, None)


def resolve_gap(conn: Connection, endpoint: Endpoint) -> None:
    """Count what is still missing below a pending ACK as a content gap."""
    rel_ack = endpoint.pending_ack
    endpoint.pending_ack = 0
    if rel_ack > endpoint.reassem:
        _trim(conn, endpoint, rel_ack, endpoint.pending_report, endpoint.pending_index)


def _trim(
    conn: Connection,
    endpoint: Endpoint,
    rel_ack: int,
    report: bool,
    index: int | None,
) -> None:
    """Move the content-gap model up to ``rel_ack``; each hole is one gap."""
    blocks = endpoint.blocks
    while blocks and blocks[0][0] < rel_ack:
        start, end = blocks.pop(0)
        if start > endpoint.reassem:
            _gap(conn, endpoint, start - endpoint.reassem, report, index)
        if end > endpoint.reassem:
            endpoint.reassem = end
    if rel_ack > endpoint.reassem:
        _gap(conn, endpoint, rel_ack - endpoint.reassem, report, index)
        endpoint.reassem = rel_ack


def _gap(
    conn: Connection,
    endpoint: Endpoint,
    size: int,
    report: bool,
    index: int | None,
) -> None:
    if report:
        endpoint.missed_bytes += size
        scaled_history(conn, endpoint, "G", index)


def data_sent(conn: Connection, endpoint: Endpoint, rel_seq: int, length: int) -> None:
    """Feed payload ``[rel_seq, rel_seq + length)`` to the content-gap model."""
    end = rel_seq + length
    if rel_seq < endpoint.ack and not endpoint.pending_ack:
        # Acknowledged data was trimmed already; with an ACK pending, the
        # data is what the ACK is waiting for.
        if end <= endpoint.ack:
            return
        rel_seq = endpoint.ack
    if end <= endpoint.reassem:
        return
    if rel_seq <= endpoint.reassem:
        endpoint.reassem = end
        blocks = endpoint.blocks
        while blocks and blocks[0][0] <= endpoint.reassem:
            start, block_end = blocks.pop(0)
            if block_end > endpoint.reassem:
                endpoint.reassem = block_end
        return
    if endpoint.blocks is None:
        endpoint.blocks = []
    _insert_block(endpoint.blocks, rel_seq, end)


def _is_clean(endpoint: Endpoint) -> bool:
    return endpoint.state == EndpointState.ESTABLISHED or (
        endpoint.state == EndpointState.CLOSED
        and endpoint.prev_state == EndpointState.ESTABLISHED
    )


def _insert_block(blocks: list[list[int]], start: int, end: int) -> None:
    """Insert ``[start, end)`` into sorted, non-overlapping ``blocks``, merging."""
    index = 0
    while index < len(blocks) and blocks[index][1] < start:
        index += 1
    while index < len(blocks) and blocks[index][0] <= end:
        block = blocks.pop(index)
        start = min(start, block[0])
        end = max(end, block[1])
    blocks.insert(index, [start, end])
    if len(blocks) > MAX_BLOCKS:
        blocks.pop(0)
