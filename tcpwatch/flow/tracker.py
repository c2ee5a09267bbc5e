"""The flow tracker: segments in, connections out. Sans-IO.

Theory of operation
-------------------
``FlowTracker.process`` takes one decoded ``Segment`` at a time, in capture
order. It never reads a clock, a socket or a terminal: time is the segment's
timestamp. It finds the connection for the segment's 4-tuple (or starts one),
updates the two endpoints, and classifies the segment. Connections that are
over are moved to a finished list that the caller drains with
``pop_finished``; ``flush`` ends the capture and finishes the rest.

Each endpoint goes through the observer states of ``EndpointState``. The
per-packet steps, and the transitions between those states, follow the order
of Zeek's TCP analyzer so that ``conn_state``, ``history`` and the byte counts
can be checked against Zeek's conn.log. Where tcpwatch departs from Zeek on
purpose (SYN retries after 5 s stay one attempt, a stray SYN inside a
connection that has carried data does not restart its sequence space, an ACK
captured just before its data is not a gap), a comment at the spot explains
it, and docs/tcp-behaviour.md lists every case.

On top of Zeek's fields, each segment gets Wireshark-style analysis marks
(``tcpwatch.flow.analysis``), counted per direction. A segment captured twice
is still counted as Zeek counts it but marked a duplicate capture instead of
being analysed again.

Hot path: ``process`` and ``_update`` run once per segment. Keep them free of
new per-segment objects and extra call layers; rare cases (SYNs, FINs, RSTs,
gaps, marks) go to helpers: the state transitions in
``tcpwatch.flow.transitions``, the history letters in ``tcpwatch.flow.zeek``,
the content-gap model in ``tcpwatch.flow.gaps`` and the SYN options and
handshake timing in ``tcpwatch.flow.handshake``.

A connection is finished when:
- both sides have sent FIN, or either has sent RST, and ``close_delay``
  seconds of capture time pass with no further packet (late ACKs and
  retransmitted FINs still belong to it);
- a new SYN on the same 4-tuple opens a new incarnation (port reuse);
- nothing is seen on it for more than ``idle_timeout`` seconds of capture
  time;
- the table holds ``max_connections`` connections and a new one starts: a
  connection that has closed and waits out its close delay is finished
  first, and only when none waits is the least recently active connection
  evicted (``end_reason`` "evicted");
- the capture ends (``flush``).

The connection table is one ordered dict, keyed by the 4-tuple with the
lower port first, so both directions find the same entry with one key. Each
segment moves its connection to the end, so the table is also in order of
last activity: the idle sweep and eviction take connections from the front.
The sweep runs whenever capture time has advanced by the sweep interval: a
second, or half of ``idle_timeout`` or ``close_delay`` when that is shorter.
So a connection leaves the table at most one interval after its timeout. A
segment on a connection that was silent for longer than ``idle_timeout``
finishes it and starts a new one, even when no sweep has run since, as long
as the segments come in timestamp order.
"""

import logging
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Final

from tcpwatch.capture.segment import ACK, FIN, RST, SYN, Segment
from tcpwatch.flow import analysis
from tcpwatch.flow.analysis import (
    ACKED_UNSEEN,
    DUP_ACK,
    DUPLICATE_CAPTURE,
    DUPLICATE_CAPTURE_WINDOW,
)
from tcpwatch.flow.connection import Connection, SegmentView
from tcpwatch.flow.endpoint import SEQ_HALF, SEQ_MASK, Endpoint
from tcpwatch.flow.gaps import ack_received, data_sent, resolve_gap
from tcpwatch.flow.handshake import answers_crossing_syn, note_handshake, note_syn
from tcpwatch.flow.options import parse_options
from tcpwatch.flow.states import EndpointState
from tcpwatch.flow.transitions import (
    TOO_LARGE_SEQ_DELTA,
    init_endpoint,
    state_machine,
    update_last_seq,
)
from tcpwatch.flow.zeek import (
    HIST_ACK,
    HIST_DATA,
    RESP_SHIFT,
    flip_on_first_packet,
    scaled_history,
    update_history,
)

logger = logging.getLogger("tcpwatch.flow")

INACTIVE: Final = EndpointState.INACTIVE
SYN_SENT: Final = EndpointState.SYN_SENT
SYN_ACK_SENT: Final = EndpointState.SYN_ACK_SENT
PARTIAL: Final = EndpointState.PARTIAL
ESTABLISHED: Final = EndpointState.ESTABLISHED
CLOSED: Final = EndpointState.CLOSED
RESET: Final = EndpointState.RESET

DEFAULT_IDLE_TIMEOUT: Final = 300.0
"""Seconds of silence that finish a connection (Zeek's tcp_inactivity_timeout)."""
DEFAULT_CLOSE_DELAY: Final = 5.0
"""Seconds a closed connection waits for late packets (Zeek's tcp_close_delay)."""
DEFAULT_MAX_SEGMENTS: Final = 20000
"""Segments kept per connection for its timeline; later ones are counted only."""
DEFAULT_MAX_CONNECTIONS: Final = 500_000
"""Connections tracked at once before the least recently active is evicted.

A half-open connection takes about 1.9 KB of resident memory (measured with
benchmarks/flood_memory.py), so a table full of them takes about 1 GB. The
loopback benchmark corpus, at about 2,300 new connections a second, keeps
10,000 to 14,000 tracked at a time."""

Key = tuple[bytes, int, bytes, int]

_MAX_SWEEP_INTERVAL: Final = 1.0
"""Seconds of capture time between sweeps, unless a timeout is under twice this."""


class FlowTracker:
    """Rebuild TCP connections from segments.

    Args:
        idle_timeout: seconds of capture time without packets after which a
            connection is finished with teardown ``idle_timeout``.
        close_delay: seconds a closed connection stays to collect late packets.
        keep_segments: keep each connection's segments for timelines.
        max_segments: at most this many segments kept per connection.
        max_connections: at most this many connections tracked at once; a new
            one beyond it evicts the least recently active. 0 means no limit.
    """

    def __init__(
        self,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        close_delay: float = DEFAULT_CLOSE_DELAY,
        keep_segments: bool = False,
        max_segments: int = DEFAULT_MAX_SEGMENTS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.close_delay = close_delay
        self.keep_segments = keep_segments
        self.max_segments = max_segments
        self.max_connections = max_connections
        self._table: OrderedDict[Key, Connection] = OrderedDict()
        self._newest: Connection | None = None
        """The connection of the latest segment, at the end of ``_table``."""
        self._closing: deque[Connection] = deque()
        self._finished: list[Connection] = []
        self._next_sweep = 0.0
        self.now = 0.0
        """Capture time: the latest segment timestamp seen."""
        self.segments = 0
        self.connections = 0
        self.reordered = 0
        """Segments whose timestamp was earlier than one before them."""
        self.evicted = 0
        """Connections finished early because the table was full."""

    # -- public API -------------------------------------------------------

    def process(self, seg: Segment) -> Connection:
        """Account for one segment and return the connection it belongs to."""
        self.segments += 1
        ts = seg.ts
        if ts >= self.now:
            self.now = ts
            if ts >= self._next_sweep:
                self._sweep(ts)
        else:
            self.reordered += 1

        # _table_key, inline on the hot path.
        src, sport, dst, dport = seg.src, seg.sport, seg.dst, seg.dport
        if sport < dport or (sport == dport and src <= dst):
            key = (src, sport, dst, dport)
        else:
            key = (dst, dport, src, sport)
        table = self._table
        conn = table.get(key)
        reused = False
        if conn is not None:
            # The newest connection is at the end of the table already: the
            # usual case in a bulk transfer, whose segments come in a row.
            # A pause on it was a pause of the whole capture, so the sweep
            # above has finished it already if the pause was too long.
            if conn is not self._newest:
                if ts - conn.last_time > self.idle_timeout:
                    self._finish(conn, _idle_end_reason(conn))
                    conn = None
                else:
                    table.move_to_end(key)
            # A segment with a bad checksum is dropped after it is noted, so
            # it cannot open a new incarnation of the 4-tuple either.
            if (
                conn is not None
                and seg.flags & SYN
                and not seg.bad_checksum
                and self._is_reuse(conn, seg)
            ):
                self._finish(conn, "reused")
                conn = None
                reused = True
        if conn is None:
            conn = self._open(seg, key)
        self._newest = conn

        is_orig = seg.sport == conn.orig_p and seg.src == conn.orig_h
        self._update(conn, seg, is_orig)
        if reused:
            self._mark_reuse(conn)
        return conn

    def pop_finished(self) -> list[Connection]:
        """Return the connections finished since the last call, oldest first."""
        finished, self._finished = self._finished, []
        return finished

    def flush(self) -> list[Connection]:
        """End the capture: finish every connection still tracked."""
        for conn in list(self._table.values()):
            self._finish(conn, "closed" if conn.both_done() else "open")
        return self.pop_finished()

    def active(self) -> Iterator[Connection]:
        """Iterate over the connections still tracked, least recently active first."""
        return iter(list(self._table.values()))

    def expire(self, now: float) -> None:
        """Finish connections that are idle or closed as of capture time ``now``.

        ``process`` does this on its own; live captures call it when no
        packet arrives for a while.
        """
        if now > self.now:
            self.now = now
        self._sweep(self.now)

    # -- connection table -------------------------------------------------

    def _open(self, seg: Segment, key: Key) -> Connection:
        if self.max_connections and len(self._table) >= self.max_connections:
            self._make_room()
        self.connections += 1
        conn = Connection(
            self.connections, seg.src, seg.sport, seg.dst, seg.dport, seg.ts
        )
        flags = seg.flags
        if not flags & SYN or flags & ACK:
            # No initial SYN: the roles are a guess (Zeek's WantConnection).
            conn.roles_inferred = not flags & SYN
            if flags & SYN:
                # Departure from Zeek, which trusts port numbers here too: a
                # SYN-ACK always names its sender the responder.
                conn.flip()
            elif flip_on_first_packet(seg.sport, seg.dport, False):
                conn.flip()
        if self.keep_segments:
            conn.segments = []
        self._table[key] = conn
        return conn

    def _make_room(self) -> None:
        """Finish one connection so that a new one fits in the table.

        A connection that has closed and only waits out its close delay
        loses nothing but late packets, so the one that closed first goes
        with ``end_reason`` "closed". Only when none waits is the least
        recently active connection evicted, and counted in ``evicted``.
        """
        closing = self._closing
        while closing:
            conn = closing.popleft()
            if not conn.finished:
                self._finish(conn, "closed")
                return
        table = self._table
        if not table:
            return
        conn = next(iter(table.values()))
        if conn.both_done():
            # Closed without a close delay: a FIN and then a RST from the
            # same side, for example.
            self._finish(conn, "closed")
            return
        self.evicted += 1
        logger.debug("conn.evicted uid=%s", conn.uid)
        self._finish(conn, "evicted")

    def _is_reuse(self, conn: Connection, seg: Segment) -> bool:
        """Return whether a SYN on a known 4-tuple opens a new connection.

        As Zeek's ``IsReuse``, with two departures. Crossing SYNs are one
        connection (simultaneous open, RFC 9293 section 3.5). On a closed
        connection, a SYN that repeats the ISN already seen is a retransmission
        of that SYN, not a new attempt.
        """
        orig, resp = conn.orig, conn.resp
        from_orig = seg.sport == conn.orig_p and seg.src == conn.orig_h
        if seg.flags & ACK:
            if orig.state != INACTIVE:
                return False  # a SYN-ACK inside a connection a SYN opened
            opener = resp
        else:
            if not from_orig and orig.state == SYN_SENT and resp.state == INACTIVE:
                return False  # simultaneous open
            opener = orig
        if conn.is_closed():
            return not (opener.syn_count and seg.seq == opener.isn)
        if seg.seq == opener.isn:
            return False
        if (
            not seg.flags & ACK
            and orig.state == SYN_ACK_SENT
            and resp.state == INACTIVE
            and seg.seq == resp.isn
        ):
            return False  # SYN and SYN-ACK captured in reverse order
        return True

    @staticmethod
    def _mark_reuse(conn: Connection) -> None:
        """Note that ``conn`` took over the 4-tuple of a finished connection."""
        conn.port_reused = True
        segments = conn.segments
        if segments:
            view = segments[-1]
            segments[-1] = view._replace(marks=view.marks | analysis.PORT_REUSE)

    def _finish(self, conn: Connection, reason: str) -> None:
        if conn.finished:
            return
        # Gaps still waiting for their data are confirmed now: it never came.
        for endpoint in (conn.orig, conn.resp):
            if endpoint.pending_ack:
                resolve_gap(conn, endpoint)
        conn.finished = True
        conn.end_reason = reason
        key = _table_key(conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p)
        if self._table.get(key) is conn:
            del self._table[key]
        self._finished.append(conn)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + min(
            _MAX_SWEEP_INTERVAL, self.idle_timeout / 2, self.close_delay / 2
        )
        closing = self._closing
        while closing and closing[0].last_time + self.close_delay < now:
            conn = closing.popleft()
            self._finish(conn, "closed")
        table = self._table
        limit = now - self.idle_timeout
        while table:
            conn = next(iter(table.values()))
            if conn.last_time >= limit:
                break
            self._finish(conn, _idle_end_reason(conn))

    # -- per-segment update (Zeek's TCPAnalyzer::DeliverPacket order) -----

    def _update(self, conn: Connection, seg: Segment, is_orig: bool) -> None:
        endpoint, peer = (conn.orig, conn.resp) if is_orig else (conn.resp, conn.orig)
        # Every field once, into locals: compiled code pays for each access.
        (ts, _, _, _, _, seq, ack, flags, window, length, ip_len, options, _,
         bad_checksum) = seg  # fmt: skip
        if bad_checksum:
            # Zeek drops a packet with a bad checksum after noting it.
            scaled_history(conn, endpoint, "C")
            self._keep(conn, seg, is_orig, 0, 0, analysis.BAD_CHECKSUM)
            return

        control = flags & (SYN | FIN | RST)
        seg_len = length
        if control:
            if flags & SYN:
                seg_len += 1
            if flags & FIN:
                seg_len += 1
            if flags & RST:
                seg_len -= length  # data on a RST is not part of the stream
        # A copy of the sender's previous segment, captured a second time, is
        # counted as Zeek counts it (packets, history) but not analysed again.
        # A sender also repeats itself at once in answer to the peer (a
        # SYN-ACK to a repeated SYN, duplicate ACKs to out-of-order data, a
        # resend after an ACK on a path with a round trip of microseconds).
        # So with a peer segment in between, or for a pure ACK, an identical
        # segment is a copy only once the capture is known to double this
        # connection's packets.
        prev = endpoint.prev_seg
        endpoint.prev_seg = seg
        peer_pkts = peer.pkts
        peer_between = peer_pkts != endpoint.prev_peer_pkts
        endpoint.prev_peer_pkts = peer_pkts
        duplicate = (
            seq == prev.seq
            and ack == prev.ack
            and flags == prev.flags
            and length == prev.payload_len
            and window == prev.window
            and (conn.doubled or (seg_len > 0 and not peer_between))
            and ts - prev.ts <= DUPLICATE_CAPTURE_WINDOW
            and options == prev.options
        )
        if duplicate:
            conn.doubled = True

        first = endpoint.state == INACTIVE
        marks = DUPLICATE_CAPTURE if duplicate else 0
        if first or flags & SYN:
            if first:
                endpoint.first_time = ts
                endpoint.advance_time = ts
            marks |= init_endpoint(conn, endpoint, seg, seg_len)

        # endpoint.unwrap(seq, last), inline: the relative number nearest last.
        last = endpoint.last
        rel_seq = (
            last + ((seq - ((endpoint.isn + last) & SEQ_MASK) + SEQ_HALF) & SEQ_MASK)
        ) - SEQ_HALF
        seq_underflow = rel_seq < 0
        if control:
            update_history(conn, endpoint, flags, rel_seq, length)
        elif length or flags & ACK:
            # Fast path: D and A are recorded once per side, so only the
            # first of each needs the history update.
            letter_bit = HIST_DATA if length else HIST_ACK
            if not is_orig:
                letter_bit <<= RESP_SHIFT
            if not conn.hist_seen & letter_bit:
                update_history(conn, endpoint, flags, rel_seq, length)

        if flags & SYN:
            parsed = parse_options(options)
            note_syn(conn, endpoint, peer, seg, parsed, duplicate)
        elif b"\x05" in options:
            # Option kind 5 is SACK; the byte may also be part of another
            # option's value, which the parse sorts out.
            if parse_options(options).sack_blocks:
                endpoint.mark_counts().sack_segments += 1
        # RFC 7323 section 2.2: the window in a SYN is never scaled.
        scaled_window = window if flags & SYN else window << endpoint.window_scale
        if not flags & RST:
            if scaled_window == 0 and peer.state != CLOSED and endpoint.state != RESET:
                scaled_history(conn, endpoint, "W")
            endpoint.window = scaled_window

        # analyze_data finds nothing in a segment without SYN, FIN or RST that
        # starts at the highest sequence number seen: new data in order, or a
        # pure ACK. That is most segments, so the call is skipped for them.
        if (
            (control or rel_seq != last)
            and not first
            and not seq_underflow
            and not duplicate
            and not (flags & SYN and answers_crossing_syn(endpoint, flags))
        ):
            marks |= analysis.analyze_data(
                endpoint,
                peer,
                flags,
                length,
                rel_seq,
                seg_len,
                ts,
                conn.reorder_window,
            )

        if flags & FIN:
            endpoint.fin_count += 1
            endpoint.fin_seq = rel_seq + seg_len
            if endpoint.fin_time is None:
                endpoint.fin_time = ts
        if flags & RST:
            endpoint.rst_count += 1
            if endpoint.rst_time is None:
                endpoint.rst_time = ts
            if conn.first_rst_orig is None:
                conn.first_rst_orig = is_orig

        rel_ack = 0
        if flags & ACK:
            if peer.state == INACTIVE:
                if endpoint.last_ack_sent < 0:
                    # Number the peer as though its SYN had been seen just
                    # before this first ACK.
                    rel_ack = 1
                    peer.isn = (ack - 1) & SEQ_MASK
                else:
                    # Later ACKs are numbered from there, so that a repeated
                    # ACK differs from one that moves. The peer's own
                    # numbers stay at 0 until it sends, as in Zeek.
                    rel_ack = max(0, peer.unwrap(ack, endpoint.last_ack_sent))
                peer.ack = 0
                peer.last = 0
            else:
                # peer.unwrap(ack, peer.ack), inline.
                acked = peer.ack
                rel_ack = (
                    acked
                    + ((ack - ((peer.isn + acked) & SEQ_MASK) + SEQ_HALF) & SEQ_MASK)
                ) - SEQ_HALF
                if rel_ack < 0:
                    rel_ack = 0
                elif not flags & RST and rel_ack > acked:
                    if not (ack == 0 and rel_ack - acked > TOO_LARGE_SEQ_DELTA):
                        peer.ack = rel_ack
                    if rel_ack > peer.last:
                        marks |= ACKED_UNSEEN
            # analyze_ack marks a pure ACK only when it repeats the sender's
            # previous ACK (duplicate ACK, window update) or closes the window.
            if not duplicate and (
                length or control or window == 0 or rel_ack == endpoint.last_ack_sent
            ):
                marks |= analysis.analyze_ack(
                    endpoint, peer, flags, length, rel_seq, rel_ack, window
                )
        if flags & FIN and endpoint.fin_ack is None:
            endpoint.fin_ack = rel_ack if flags & ACK else -1

        if control:
            delta_last = update_last_seq(
                conn, endpoint, rel_seq + seg_len, flags, length
            )
        else:
            # update_last_seq without its SYN, FIN and RST cases.
            delta_last = ((rel_seq + seg_len - last + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
            if endpoint.state == RESET:
                pass
            elif delta_last > 0:
                endpoint.last = last + delta_last
            elif length > 0:
                # Zeek's retransmission: payload that does not advance the sender.
                scaled_history(conn, endpoint, "T")
        if delta_last > 0:
            endpoint.advance_time = ts
        endpoint.last_time = ts
        if ts > conn.last_time and not (conn.orig.did_close and conn.resp.did_close):
            conn.last_time = ts
        if ts < conn.start_time:
            conn.start_time = ts

        # Without SYN, FIN or RST only a first segment changes the state.
        do_close = False
        if control or first:
            do_close = state_machine(
                conn, endpoint, peer, seg, is_orig, length, delta_last
            )
        if conn.handshake_ack_time is None:
            note_handshake(conn, flags, is_orig, rel_ack, ts)

        # ack_received changes nothing unless the ACK passes what the
        # content-gap model has, or a gap is pending. A peer not seen yet has
        # no content to miss.
        if (
            flags & ACK
            and (peer.pending_ack or rel_ack > peer.reassem)
            and peer.state != INACTIVE
        ):
            ack_received(conn, peer, rel_ack)
        if length and not flags & RST and not seq_underflow:
            start = rel_seq + 1 if flags & SYN else rel_seq
            if (
                start == endpoint.reassem
                and start >= endpoint.ack
                and not endpoint.blocks
            ):
                # data_sent's in-order case: the data follows what was seen.
                endpoint.reassem = start + length
            else:
                data_sent(conn, endpoint, start, length)
            if endpoint.data_time is None:
                endpoint.data_time = ts
        if endpoint.pending_ack:
            resolve_gap(conn, endpoint)
        if do_close:
            self._connection_closed(conn, endpoint, peer)

        endpoint.pkts += 1
        endpoint.ip_bytes += ip_len
        if marks:
            _count_marks(endpoint, marks, flags)
            if marks & analysis.ZERO_WINDOW_PROBE:
                endpoint.probe_end = rel_seq + 1
        if flags & ACK:
            # A run of duplicate ACKs ends with any ACK that moves.
            if marks & DUP_ACK:
                endpoint.dup_ack_run += 1
            elif rel_ack != endpoint.last_ack_sent:
                endpoint.dup_ack_run = 0
            endpoint.last_ack_sent = rel_ack
            endpoint.last_window_sent = window
        if conn.segments is not None:
            self._keep(conn, seg, is_orig, rel_seq, rel_ack, marks)

    def _connection_closed(
        self, conn: Connection, endpoint: Endpoint, peer: Endpoint
    ) -> None:
        if endpoint.did_close:
            return
        endpoint.did_close = True
        if endpoint.state == RESET or peer.did_close or peer.state == INACTIVE:
            if conn.close_time is None:
                conn.close_time = conn.last_time
                self._closing.append(conn)

    def _keep(
        self,
        conn: Connection,
        seg: Segment,
        is_orig: bool,
        rel_seq: int,
        rel_ack: int,
        marks: int,
    ) -> None:
        segments = conn.segments
        if segments is None:
            return
        if len(segments) < self.max_segments:
            segments.append(SegmentView(seg, is_orig, rel_seq, rel_ack, marks))
        else:
            conn.segments_dropped += 1


def _count_marks(endpoint: Endpoint, marks: int, flags: int) -> None:
    """Add a segment's analysis marks to its sender's per-direction counts.

    A retransmitted SYN or SYN-ACK is marked for the timeline but counted
    apart, as a handshake retry.
    """
    counts = endpoint.mark_counts()
    if marks & analysis.ANY_RETRANSMISSION and not flags & SYN:
        counts.retransmissions += 1
        if marks & analysis.FAST_RETRANSMISSION:
            counts.fast_retransmissions += 1
        elif marks & analysis.SPURIOUS_RETRANSMISSION:
            counts.spurious_retransmissions += 1
    if marks & analysis.OUT_OF_ORDER:
        counts.out_of_order += 1
    if marks & analysis.PREVIOUS_SEGMENT_NOT_CAPTURED:
        counts.segments_not_captured += 1
    if marks & analysis.DUP_ACK:
        counts.dup_acks += 1
    if marks & analysis.ZERO_WINDOW:
        counts.zero_windows += 1
    if marks & analysis.WINDOW_FULL:
        counts.window_full += 1
    if marks & analysis.ZERO_WINDOW_PROBE:
        counts.zero_window_probes += 1
    if marks & analysis.KEEP_ALIVE:
        counts.keepalives += 1
    if marks & analysis.WINDOW_UPDATE:
        counts.window_updates += 1
    if marks & analysis.DUPLICATE_CAPTURE:
        counts.duplicate_captures += 1


def _idle_end_reason(conn: Connection) -> str:
    """Return the end reason of a connection that went silent for too long."""
    return "closed" if conn.both_done() else "idle_timeout"


def _table_key(src: bytes, sport: int, dst: bytes, dport: int) -> Key:
    """Return the table key of a 4-tuple: the lower port first, then address."""
    if sport < dport or (sport == dport and src <= dst):
        return (src, sport, dst, dport)
    return (dst, dport, src, sport)
