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
open ones for ``linger`` seconds. After that they follow the open ones,
dimmed, newest first, so a quiet capture still shows what happened last. Only
the latest ``KEEP_FINISHED`` finished connections are kept.

The table shows a window of these rows and scrolls with the selection, which
stays on the same connection while rows move, until the connection is no
longer kept. The rule under the column names shows which rows are in view. The
footer lists the keys: on a terminal, the arrow keys (or j and k) select a
row, PgUp, PgDn, Home and End move further, [ and ] scroll the timeline,
Escape follows the most recent connection again, ? lists every key, and q
stops.

The screen is drawn by ``dashboard_view`` and ``dashboard_panels``, and the
keys are read by ``dashboard_keys``.
"""

import contextlib
import copy
import heapq
import os
import sys
import threading
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
    KEY_HELP,
    KEY_HINT,
    WIDE_FROM,
    DashboardView,
    Header,
    footer_lines,
    table_height,
)

__all__ = [
    "ALL_COLUMNS_FROM",
    "DEFAULT_LINGER",
    "KEEP_FINISHED",
    "KEY_HELP",
    "KEEP_TIMELINES",
    "KEY_HINT",
    "WIDE_FROM",
    "CaptureStatus",
    "Dashboard",
    "DashboardView",
    "Row",
    "fit_endpoints",
    "window_start",
    "window_caption",
]


DEFAULT_LINGER = 5.0
"""Seconds a finished connection stays among the open ones, before it is dimmed."""
KEEP_FINISHED = 1000
"""Finished connections kept for the table printed when the dashboard stops."""
KEEP_TIMELINES = 32
"""Latest finished connections whose segments are kept for the timeline panel."""

NOTICE_SECONDS = 10.0
"""Seconds the table shows the notice that the selected connection left."""

_RATE_WINDOW = 2.0


def window_start(index: int, offset: int, count: int, page: int) -> int:
    """Return the first row of a ``page``-row window over ``count`` rows.

    The window shows row ``index`` ``offset`` rows below its top, as far as
    the ends of the rows allow. It never starts before row 0, and it never
    leaves rows empty at its bottom while rows above it are hidden.
    """
    offset = max(0, min(offset, page - 1))
    return max(0, min(index - offset, count - page))


def window_caption(top: int, shown: int, count: int) -> str:
    """Return ``rows 8-23 of 30`` for rows ``top`` to ``top + shown`` (from 0)."""
    if count == 0:
        return ""
    return f"rows {top + 1}-{top + shown} of {count}"


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
        extra_help: the driver's own keys, listed before the dashboard's
            after ? or h.

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
        extra_help: tuple[str, ...] = (),
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
        self.extra_help = extra_help
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
        self.timeline_top: int | None = None
        """First line of the timeline's window, or None for the newest lines."""
        self.show_help = False
        """Whether the footer lists every key instead of ``hint``."""
        self._lingering: deque[tuple[float, Connection]] = deque()
        self._rates: deque[tuple[float, int]] = deque()
        # The key thread moves the selection and the main thread places the
        # table's window. This lock guards the fields below, ``selected`` and
        # ``timeline_top``. When both locks are needed, the feed's lock comes
        # first.
        self._selection_lock = threading.Lock()
        self._order: list[Connection] = []
        """Every row's connection in table order, as of the last frame."""
        self._selected_conn: Connection | None = None
        """The connection whose uid is ``selected``, found in ``_order`` by identity."""
        self._offset = 0
        """The selected row's place in the window: 0 is the window's top row."""
        self._page = 1
        """Rows in the table's window, as of the last frame."""
        self._selected_number = 0
        self._timeline_uid: str | None = None
        self._notice = ""
        self._notice_until = 0.0
        self._last_view: DashboardView | None = None

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
        """Select the row ``step`` rows below (negative: above) the selection.

        The window scrolls only as far as it must to keep the selection shown.
        """
        with self._selection_lock:
            index = self._selected_index()
            if index is None:
                return
            target = max(0, min(len(self._order) - 1, index + step))
            self._offset = max(0, min(self._page - 1, self._offset + target - index))
            self._select(target)

    def move_page(self, pages: int) -> None:
        """Scroll the table ``pages`` windows down (negative: up), with the selection.

        The selection keeps its place in the window, except at the ends of
        the rows, where it moves to the first or the last row.
        """
        with self._selection_lock:
            index = self._selected_index()
            if index is None:
                return
            count, page = len(self._order), self._page
            top = window_start(index, self._offset, count, page)
            new_top = window_start(top + pages * page, 0, count, page)
            target = index + new_top - top
            if new_top == top:
                target = 0 if pages < 0 else count - 1
            target = max(0, min(count - 1, target))
            self._offset = target - new_top
            self._select(target)

    def select_end(self, last: bool) -> None:
        """Select the last row (``last``) or the first one, and scroll to it."""
        with self._selection_lock:
            if not self._order:
                return
            target = len(self._order) - 1 if last else 0
            self._offset = self._page - 1 if last else 0
            self._select(target)

    def follow_latest(self) -> None:
        """Select the most recently active connection at each refresh."""
        with self._selection_lock:
            self.selected = None
            self._selected_conn = None
            self._offset = 0
            self.timeline_top = None
            self._notice = ""

    def scroll_timeline(self, step: int) -> None:
        """Scroll the timeline panel ``step`` lines down (negative: up).

        Scrolling down to the newest line makes the panel follow new lines
        again. The limits are those of the last frame drawn.
        """
        view = self._last_view
        if view is None:
            return
        panel = view.panel
        with self._selection_lock:
            # None shows the newest lines, which start at ``last_top``.
            top = panel.last_top if self.timeline_top is None else self.timeline_top
            top = max(0, min(panel.last_top, top + step))
            self.timeline_top = None if top >= panel.last_top else top

    def toggle_help(self) -> None:
        """Show every key in the footer, or the short ``hint`` again."""
        self.show_help = not self.show_help

    def _selected_index(self) -> int | None:
        """Return the selected row's index in the last frame, None for no rows."""
        if not self._order:
            return None
        index = _index_of(self._order, self._selected_conn)
        # When following, or when the selection is gone, use the first row.
        return 0 if index is None else index

    def _select(self, index: int) -> None:
        conn = self._order[index]
        if conn.uid != self.selected:
            self.timeline_top = None
        self.selected = conn.uid
        self._selected_conn = conn
        self._notice = ""

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
        footer = footer_lines(self.hint, self.show_help, width, self.extra_help)
        # The table's column names and the rule under them take two lines.
        page = max(1, table_height(width, height, len(footer)) - 2)
        with self.lock:
            now = self.clock()
            self._expire_lingering(now)
            active = list(self.tracker.active())
            conns, past = self._ordered(active)
            with self._selection_lock:
                conns = self._hold_order(conns)
                index, top = self._place(conns, page)
                order_held = self.selected is not None
                timeline_top = self.timeline_top
                notice = self._notice
                if time.monotonic() >= self._notice_until:
                    notice = ""
            window = conns[top : top + page]
            rows = [_row(conn, now, conn.uid in past) for conn in window]
            chosen = conns[index] if conns else None
            timeline = _copy_connection(chosen) if chosen is not None else None
            header = self._header(active, now)
        caption = window_caption(top, len(window), len(conns))
        if order_held and caption:
            caption += " · order held"
        if notice:
            caption = f"{notice} · {caption}"
        view = DashboardView(
            header,
            rows,
            chosen.uid if chosen is not None else None,
            timeline,
            caption=caption,
            footer=footer,
            timeline_top=timeline_top,
        )
        self._last_view = view
        return view

    def _hold_order(self, conns: list[Connection]) -> list[Connection]:
        """Return ``conns`` in the last frame's order while a row is selected.

        Called with the selection lock held. Rows that were listed keep their
        order, so that the keys land where the user sees them. Connections
        new since the last frame go above them, in activity order. The
        window's top moves down with the selected row, so the rows in view
        stay put. Following the newest (nothing selected), or when the
        selected connection is gone, the rows are in activity order.
        """
        if self.selected is None or _index_of(conns, self._selected_conn) is None:
            return conns
        present = {id(conn) for conn in conns}
        listed = [conn for conn in self._order if id(conn) in present]
        listed_ids = {id(conn) for conn in listed}
        new = [conn for conn in conns if id(conn) not in listed_ids]
        return new + listed

    def _place(self, conns: list[Connection], page: int) -> tuple[int, int]:
        """Return the selected row's index and the window's first row.

        Called with the selection lock held. A selected connection that is
        no longer among ``conns`` leaves a notice, and the newest is followed.
        """
        self._order = conns
        self._page = page
        index = 0
        if self.selected is not None:
            found = _index_of(conns, self._selected_conn)
            if found is not None:
                index = found
            else:
                self._notice = (
                    f"#{self._selected_number} left the dashboard"
                    " · following the newest"
                )
                self._notice_until = time.monotonic() + NOTICE_SECONDS
                self.selected = None
                self._selected_conn = None
                self._offset = 0
        top = window_start(index, self._offset, len(conns), page)
        self._offset = index - top
        if conns:
            chosen = conns[index]
            self._selected_number = chosen.number
            if chosen.uid != self._timeline_uid:
                self._timeline_uid = chosen.uid
                self.timeline_top = None
        return index, top

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

    def _ordered(self, active: list[Connection]) -> tuple[list[Connection], set[str]]:
        """Return every connection the table has a row for, and the uids of past ones.

        Open and lingering connections come first, the most recently active
        first. The connections that finished before the linger time follow,
        newest first.
        """
        finished = sorted(
            (conn for _, conn in self._lingering),
            key=lambda conn: conn.last_time,
            reverse=True,
        )
        # The tracker's order is by last activity, so without lingering
        # connections the reversed list is already in order.
        shown = active[::-1]
        if finished:
            merged = heapq.merge(
                shown, finished, key=lambda conn: conn.last_time, reverse=True
            )
            shown = list(merged)
        lingering = {conn.uid for conn in finished}
        past = [conn for conn in reversed(self.kept) if conn.uid not in lingering]
        return shown + past, {conn.uid for conn in past}

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


def _index_of(conns: list[Connection], conn: Connection | None) -> int | None:
    """Return the index of ``conn`` itself in ``conns``, None if it is not there.

    The tracker hands the same object from open to finished, so identity
    finds a connection, and ``list.index`` compares identity first, in C.
    """
    if conn is None:
        return None
    try:
        return conns.index(conn)
    except ValueError:
        return None


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
        evicted=conn.end_reason == "evicted",
    )


def _copy_connection(conn: Connection) -> Connection:
    """Copy what a timeline reads, so it can be drawn while the feed goes on."""
    snapshot = copy.copy(conn)
    snapshot.orig = copy.copy(conn.orig)
    snapshot.resp = copy.copy(conn.resp)
    if conn.segments is not None:
        snapshot.segments = list(conn.segments)
    return snapshot
