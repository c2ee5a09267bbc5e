"""The live dashboard: connections as they open, carry data and close.

``Dashboard`` owns a ``FrameFeed`` that decodes and tracks frames in a
background thread, and draws a rich ``Live`` screen from the main thread a
few times per second. Each refresh copies what it shows from the tracker
while holding the feed's lock, then renders without it, so a slow terminal
delays the picture and never the capture.

The screen has four parts. The header shows the source, the filter,
packets, packets per second, kernel drops, open connections, and finished
connections with their totals by ``conn_state``. A connection counts as
finished once both sides have closed it (FIN each way, or a RST), before the
tracker lets go of it. Below the header are a table of connections, ordered
by last activity, and the timeline of the selected connection, which by
default is the most recently active one. Finished connections stay among the
open ones for ``linger`` seconds. After that they fill the rows the open ones
leave free, dimmed, newest first, so a quiet capture still shows what
happened last. The footer lists the keys: on a
terminal, the arrow keys (or j and k) select a row, Escape follows the most
recent connection again, and q stops.

The screen is drawn by ``dashboard_view`` and ``dashboard_panels``, and the
keys are read by ``dashboard_keys``.
"""

import contextlib
import copy
import heapq
import itertools
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.live import Live

from tcpwatch.capture.live_feed import CaptureStatus, FrameFeed
from tcpwatch.capture.segment import Frame
from tcpwatch.flow.connection import Connection, format_endpoint
from tcpwatch.flow.record import (
    build_record,
    classify_handshake,
    current_phase,
    handshake_timings,
)
from tcpwatch.flow.states import Handshake
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.flow.zeek import conn_state
from tcpwatch.render.dashboard_keys import KeyReader
from tcpwatch.render.dashboard_panels import ALL_COLUMNS_FROM, Row, fit_endpoints
from tcpwatch.render.dashboard_view import (
    FOOTER_LINES,
    HEADER_LINES,
    KEY_HINT,
    WIDE_FROM,
    DashboardView,
    Header,
)

__all__ = [
    "ALL_COLUMNS_FROM",
    "DEFAULT_LINGER",
    "KEEP_FINISHED",
    "KEEP_TIMELINES",
    "KEY_HINT",
    "WIDE_FROM",
    "CaptureStatus",
    "Dashboard",
    "DashboardView",
    "Row",
    "fit_endpoints",
]


DEFAULT_LINGER = 5.0
"""Seconds a finished connection stays among the open ones, before it is dimmed."""
KEEP_FINISHED = 1000
"""Finished connections kept for the table printed when the dashboard stops."""
KEEP_TIMELINES = 32
"""Latest finished connections whose segments are kept for the timeline panel."""

_RATE_WINDOW = 2.0


class Dashboard:
    """A live view of a tracker fed from any frame source.

    Args:
        tracker: the tracker to feed and show. Create it with
            ``keep_segments=True`` for the timeline panel.
        status: the header counters; the frame source may update ``received``
            and ``dropped`` in it.
        console: where to draw; stdout by default.
        refresh_per_second: screen refreshes per second.
        linger: seconds a finished connection stays among the open ones.
        clock: the current time, in the frames' time base (wall clock for a
            live capture, the replayed time for a replay).
        keys: read selection keys from stdin when it is a terminal.
        decoded: the batches carry ``Segment`` records instead of frames.
        hint: the footer line, which names the keys that work. A driver
            that reads keys of its own sets the attribute as they change.

    Use ``run(batches)`` to feed and draw until the source ends, ``stop()``
    is called, or q is pressed. ``view()`` returns one frame of the screen as a
    renderable, for tests and for other drivers.
    """

    def __init__(
        self,
        tracker: FlowTracker,
        status: CaptureStatus,
        *,
        console: Console | None = None,
        refresh_per_second: float = 4.0,
        linger: float = DEFAULT_LINGER,
        clock: Callable[[], float] = time.time,
        keys: bool = True,
        decoded: bool = False,
        hint: str = KEY_HINT,
    ) -> None:
        self.tracker = tracker
        self.status = status
        self.console = console or Console(highlight=False)
        # The screen follows the terminal's size as it is resized. rich would
        # otherwise keep the COLUMNS and LINES found in the environment.
        self._follow_terminal = console is None and self.console.is_terminal
        self.refresh_per_second = refresh_per_second
        self.linger = linger
        self.clock = clock
        self.keys = keys
        self.hint = hint
        self.feed = FrameFeed(
            tracker, status, self._finished, clock=clock, decoded=decoded
        )
        self.lock = self.feed.lock
        self.totals: Counter[str] = Counter()
        """Finished connections per conn_state code."""
        self.kept: deque[Connection] = deque(maxlen=KEEP_FINISHED)
        """The latest finished connections, oldest first."""
        self._timelines: deque[Connection] = deque()
        self.selected: str | None = None
        """uid of the selected connection; None follows the most recent one."""
        self._lingering: deque[tuple[float, Connection]] = deque()
        self._visible: list[str] = []
        self._rates: deque[tuple[float, int]] = deque()

    # -- driving -----------------------------------------------------------

    def run(self, batches: Iterable[Sequence[Frame]]) -> FrameFeed:
        """Feed ``batches`` in a thread and draw until the feed ends.

        Returns the feed; its ``join()`` re-raises an error from the thread.
        """
        self.feed.start(batches)
        period = 1.0 / self.refresh_per_second
        keys = KeyReader(self) if self.keys and sys.stdin.isatty() else None
        try:
            with Live(
                self.view(),
                console=self.console,
                screen=True,
                auto_refresh=False,
                redirect_stderr=False,
            ) as live:
                if keys is not None:
                    keys.start()
                while not self.feed.join(timeout=period):
                    live.update(self.view(), refresh=True)
        finally:
            if keys is not None:
                keys.close()
            self.feed.stop.set()
        return self.feed

    def stop(self) -> None:
        """Ask the feed to stop after its current batch."""
        self.feed.stop.set()

    def move_selection(self, step: int) -> None:
        """Select the row ``step`` rows below (negative: above) the selection."""
        visible = self._visible
        if not visible:
            return
        # When following, the followed row is the first one.
        index = visible.index(self.selected) if self.selected in visible else 0
        self.selected = visible[max(0, min(len(visible) - 1, index + step))]

    def follow_latest(self) -> None:
        """Select the most recently active connection at each refresh."""
        self.selected = None

    # -- feed callback (called with the lock held) --------------------------

    def _finished(self, conn: Connection) -> None:
        self.totals[_conn_state(conn)] += 1
        self._lingering.append((self.clock(), conn))
        self.kept.append(conn)
        # Segments take most of a connection's memory, so only the latest
        # finished connections keep them for the timeline panel.
        self._timelines.append(conn)
        if len(self._timelines) > KEEP_TIMELINES:
            self._timelines.popleft().segments = None

    # -- a frame of the screen ------------------------------------------------

    def view(self) -> "DashboardView":
        """Copy the current state and return it as a renderable screen."""
        if self._follow_terminal:
            with contextlib.suppress(OSError, ValueError):
                size = os.get_terminal_size(self.console.file.fileno())
                self.console.size = (size.columns, size.lines)
        height = self.console.size.height
        width = self.console.size.width
        table_lines = height - HEADER_LINES - FOOTER_LINES
        if width < WIDE_FROM:
            table_lines = max(4, table_lines // 2)
        max_rows = max(1, table_lines - 2)
        with self.lock:
            now = self.clock()
            self._expire_lingering(now)
            active = list(self.tracker.active())
            conns, past = self._latest(active, max_rows)
            rows = [_row(conn, now, conn.uid in past) for conn in conns]
            chosen = self._chosen(conns)
            timeline = _copy_connection(chosen) if chosen is not None else None
            header = self._header(active, now)
        self._visible = [row.uid for row in rows]
        selected_uid = chosen.uid if chosen is not None else None
        return DashboardView(header, rows, selected_uid, timeline, self.hint)

    def _header(self, active: list[Connection], now: float) -> "Header":
        """Copy the header's counters, with closed connections counted as finished.

        The tracker keeps a closed connection for its close delay, to collect
        late packets, and delivers it to ``_finished`` after that. Until then
        it is counted here, so that the totals agree with the rows.
        """
        totals = Counter(self.totals)
        closed = [conn for conn in active if conn.both_done()]
        for conn in closed:
            totals[_conn_state(conn)] += 1
        return Header(
            status=copy.copy(self.status),
            open_count=len(active) - len(closed),
            finished=self.status.finished + len(closed),
            totals=dict(totals),
            now=now,
            rate=self._rate(),
        )

    def final_rows(self) -> list[tuple[int, dict[str, Any]]]:
        """Return (number, record) for each kept finished connection, in number order.

        This is what the connection table shows when the dashboard has stopped.
        """
        with self.lock:
            conns = sorted(self.kept, key=lambda conn: conn.number)
        return [(conn.number, build_record(conn)) for conn in conns]

    def _expire_lingering(self, now: float) -> None:
        lingering = self._lingering
        while lingering and lingering[0][0] + self.linger < now:
            lingering.popleft()

    def _latest(
        self, active: list[Connection], limit: int
    ) -> tuple[list[Connection], set[str]]:
        """Return up to ``limit`` connections to show, and the uids of past ones.

        Open and lingering connections come first, the most recently active
        first. Rows left over go to the connections that finished before the
        linger time, newest first.
        """
        finished = sorted(
            (conn for _, conn in self._lingering),
            key=lambda conn: conn.last_time,
            reverse=True,
        )
        merged = heapq.merge(
            reversed(active), finished, key=lambda conn: conn.last_time, reverse=True
        )
        shown = list(itertools.islice(merged, limit))
        lingering = {conn.uid for conn in finished}
        past: list[Connection] = []
        for conn in reversed(self.kept):
            if len(shown) + len(past) >= limit:
                break
            if conn.uid not in lingering:
                past.append(conn)
        return shown + past, {conn.uid for conn in past}

    def _chosen(self, conns: list[Connection]) -> Connection | None:
        if self.selected is not None:
            for conn in conns:
                if conn.uid == self.selected:
                    return conn
            self.selected = None
        return conns[0] if conns else None

    def _rate(self) -> float | None:
        """Return packets per second over the last couple of seconds."""
        now = time.monotonic()
        rates = self._rates
        rates.append((now, self.status.packets))
        while len(rates) > 2 and rates[1][0] < now - _RATE_WINDOW:
            rates.popleft()
        first_time, first_packets = rates[0]
        if now - first_time < 0.2:
            return None
        return (self.status.packets - first_packets) / (now - first_time)


# -- copies taken under the lock -------------------------------------------------


def _conn_state(conn: Connection) -> str:
    orig_bytes, resp_bytes = conn.endpoint_sizes()
    return conn_state(
        conn.orig.state, conn.resp.state, orig_bytes, resp_bytes, conn.history_text
    )


def _row(conn: Connection, now: float, past: bool = False) -> Row:
    orig_bytes, resp_bytes = conn.endpoint_sizes()
    handshake = classify_handshake(conn)
    timings = handshake_timings(conn)
    rtt = timings["rtt_syn_synack"]
    if handshake == Handshake.REJECTED:
        rtt = timings["reject_latency"]
    orig, resp = conn.orig, conn.resp
    retransmissions = (
        orig.retransmissions
        + resp.retransmissions
        + max(0, orig.syn_transmissions - 1)
        + max(0, resp.synack_transmissions - 1)
    )
    return Row(
        number=conn.number,
        uid=conn.uid,
        orig=format_endpoint(conn.orig_h, conn.orig_p),
        resp=format_endpoint(conn.resp_h, conn.resp_p),
        orig_port=conn.orig_p,
        resp_port=conn.resp_p,
        phase=current_phase(conn),
        state=_conn_state(conn),
        finished=conn.finished,
        past=past,
        age=max(0.0, now - conn.start_time),
        idle=max(0.0, now - conn.last_time),
        orig_bytes=orig_bytes,
        resp_bytes=resp_bytes,
        handshake=handshake,
        rtt=rtt,
        retransmissions=retransmissions,
    )


def _copy_connection(conn: Connection) -> Connection:
    """Copy what a timeline reads, so it can be drawn while the feed goes on."""
    snapshot = copy.copy(conn)
    snapshot.orig = copy.copy(conn.orig)
    snapshot.resp = copy.copy(conn.resp)
    if conn.segments is not None:
        snapshot.segments = list(conn.segments)
    return snapshot
