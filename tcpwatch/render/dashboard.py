"""The live dashboard: connections as they open, carry data and close.

``Dashboard`` owns a ``FrameFeed`` that decodes and tracks frames in a
background thread, and draws a rich ``Live`` screen from the main thread a
few times per second. Each refresh copies what it shows from the tracker
while holding the feed's lock, then renders without it, so a slow terminal
delays the picture and never the capture.

The screen has three parts. The header shows the source, the filter,
packets, packets per second, kernel drops, open and finished connections,
and totals by ``conn_state``. Below it are a table of connections, ordered
by last activity, and the timeline of the selected connection, which by
default is the most recently active one. Finished connections stay in the
table for ``linger`` seconds, then only count in the totals. On a terminal,
the arrow keys (or j and k) select a row, Escape follows the most recent
connection again, and q stops.
"""

import contextlib
import copy
import heapq
import itertools
import os
import select
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from tcpwatch.capture.live_feed import CaptureStatus, FrameFeed
from tcpwatch.capture.segment import Frame
from tcpwatch.flow.connection import Connection, format_endpoint
from tcpwatch.flow.record import (
    build_record,
    classify_handshake,
    current_phase,
    handshake_timings,
)
from tcpwatch.flow.states import Handshake, Phase
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.flow.zeek import conn_state
from tcpwatch.render.style import CONN_STATE_STYLES, PHASE_STYLES, printable
from tcpwatch.units import format_bytes, format_seconds

DEFAULT_LINGER = 5.0
"""Seconds a finished connection stays in the table."""
KEEP_FINISHED = 1000
"""Finished connections kept for the table printed when the dashboard stops."""
WIDE_FROM = 140
"""From this many columns the timeline goes beside the table, not below it."""

_HEADER_LINES = 3
_RATE_WINDOW = 2.0


@dataclass
class Row:
    """One table row, copied from a connection while the feed is paused."""

    number: int
    uid: str
    orig: str
    resp: str
    resp_port: int
    orig_port: int
    phase: Phase
    state: str
    """Zeek's conn_state code as of now."""
    finished: bool
    age: float
    idle: float
    orig_bytes: int
    resp_bytes: int
    handshake: Handshake
    rtt: float | None
    """SYN to SYN-ACK time, or SYN to RST time for a rejected attempt."""
    retransmissions: int


class Dashboard:
    """A live view of a tracker fed from any frame source.

    Args:
        tracker: the tracker to feed and show. Create it with
            ``keep_segments=True`` for the timeline panel.
        status: the header counters; the frame source may update ``received``
            and ``dropped`` in it.
        console: where to draw; stdout by default.
        refresh_per_second: screen refreshes per second.
        linger: seconds a finished connection stays in the table.
        clock: the current time, in the frames' time base (wall clock for a
            live capture, the replayed time for a replay).
        keys: read selection keys from stdin when it is a terminal.
        decoded: the batches carry ``Segment`` records instead of frames.

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
        self.feed = FrameFeed(
            tracker, status, self._finished, clock=clock, decoded=decoded
        )
        self.lock = self.feed.lock
        self.totals: Counter[str] = Counter()
        """Finished connections per conn_state code."""
        self.kept: deque[Connection] = deque(maxlen=KEEP_FINISHED)
        """The latest finished connections, oldest first."""
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
        keys = _KeyReader(self) if self.keys and sys.stdin.isatty() else None
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
        sizes = conn.endpoint_sizes()
        state = conn_state(conn.orig.state, conn.resp.state, *sizes, conn.history_text)
        self.totals[state] += 1
        self._lingering.append((self.clock(), conn))
        self.kept.append(conn)

    # -- a frame of the screen ------------------------------------------------

    def view(self) -> "DashboardView":
        """Copy the current state and return it as a renderable screen."""
        if self._follow_terminal:
            with contextlib.suppress(OSError, ValueError):
                size = os.get_terminal_size(self.console.file.fileno())
                self.console.size = (size.columns, size.lines)
        height = self.console.size.height
        width = self.console.size.width
        table_lines = height - _HEADER_LINES
        if width < WIDE_FROM:
            table_lines = max(4, table_lines // 2)
        max_rows = max(1, table_lines - 2)
        with self.lock:
            now = self.clock()
            self._expire_lingering(now)
            conns = self._latest(max_rows)
            rows = [_row(conn, now) for conn in conns]
            chosen = self._chosen(conns)
            timeline = _copy_connection(chosen) if chosen is not None else None
            header = _Header(
                status=copy.copy(self.status),
                open_count=len(list(self.tracker.active())),
                totals=dict(self.totals),
                now=now,
                rate=self._rate(),
            )
        self._visible = [row.uid for row in rows]
        selected_uid = chosen.uid if chosen is not None else None
        return DashboardView(header, rows, selected_uid, timeline)

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
            _, conn = lingering.popleft()
            conn.segments = None  # the timeline is no longer shown

    def _latest(self, limit: int) -> list[Connection]:
        """Return up to ``limit`` connections, the most recently active first."""
        active = reversed(list(self.tracker.active()))
        finished = sorted(
            (conn for _, conn in self._lingering),
            key=lambda conn: conn.last_time,
            reverse=True,
        )
        merged = heapq.merge(
            active, finished, key=lambda conn: conn.last_time, reverse=True
        )
        return list(itertools.islice(merged, limit))

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


def _row(conn: Connection, now: float) -> Row:
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
        state=conn_state(
            orig.state, resp.state, orig_bytes, resp_bytes, conn.history_text
        ),
        finished=conn.finished,
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


# -- rendering (no lock held) ---------------------------------------------------


@dataclass
class _Header:
    status: CaptureStatus
    open_count: int
    totals: dict[str, int]
    now: float
    rate: float | None

    def render(self) -> Text:
        """Return the three header lines: source, counters, totals."""
        text = self._source_line()
        text.append("\n")
        text.append_text(self._counters_line())
        text.append("\n")
        text.append_text(self._totals_line())
        return text

    def _source_line(self) -> Text:
        status = self.status
        text = Text()
        text.append("tcpwatch ", style="bold")
        text.append(printable(status.source), style="bold cyan")
        if status.bpf_filter:
            text.append(f"  filter: {printable(status.bpf_filter)}")
        if status.backend != "native":
            text.append(f"  backend: {status.backend}")
        elapsed = format_seconds(max(0.0, self.now - status.started))
        text.append(f"  running {elapsed}", style="dim")
        if status.done:
            text.append("  stopped", style="bold yellow")
        return text

    def _counters_line(self) -> Text:
        status = self.status
        text = Text("packets ")
        text.append(f"{status.packets:,}", style="bold")
        rate = "-" if self.rate is None else f"{self.rate:,.0f}"
        text.append(f"  {rate} pkt/s  dropped ")
        if status.dropped is None:
            text.append("n/a", style="dim")
        elif status.dropped:
            text.append(f"{status.dropped:,}", style="bold red")
        else:
            text.append("0", style="green")
        text.append("  connections ")
        text.append(f"{self.open_count:,} open", style="bold")
        text.append(f", {status.finished:,} finished")
        return text

    def _totals_line(self) -> Text:
        text = Text()
        text.append("totals ", style="dim")
        if not self.totals:
            text.append("none finished yet", style="dim")
        for state, count in sorted(self.totals.items(), key=lambda item: -item[1]):
            text.append(f"{state} ", style=CONN_STATE_STYLES.get(state, ""))
            text.append(f"{count:,}  ")
        return text


class DashboardView:
    """One frame of the dashboard, drawn to fit the console's size."""

    def __init__(
        self,
        header: _Header,
        rows: list[Row],
        selected: str | None,
        timeline: Connection | None,
    ) -> None:
        self.header = header
        self.rows = rows
        self.selected = selected
        self.timeline = timeline

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = options.max_width
        height = options.height or console.size.height
        layout = Layout()
        layout.split_column(
            Layout(self.header.render(), name="header", size=_HEADER_LINES),
            Layout(name="body"),
        )
        table = _RowTable(self.rows, self.selected)
        panel = _TimelinePanel(self.timeline)
        if width >= WIDE_FROM:
            layout["body"].split_row(
                Layout(table, name="table", ratio=3),
                Layout(panel, name="timeline", ratio=2, minimum_size=60),
            )
        else:
            body = max(2, height - _HEADER_LINES)
            layout["body"].split_column(
                Layout(table, name="table", size=max(4, body // 2)),
                Layout(panel, name="timeline"),
            )
        yield from layout.__rich_console__(console, options.update(height=height))


class _RowTable:
    def __init__(self, rows: list[Row], selected: str | None) -> None:
        self.rows = rows
        self.selected = selected

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = options.max_width
        narrow = width < 100
        fit = (options.height or len(self.rows) + 2) - 2
        table = Table(
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
            padding=0,
            expand=True,
            show_edge=False,
        )
        table.add_column("#", justify="right", style="dim", no_wrap=True)
        table.add_column(
            "connection", no_wrap=True, overflow="ellipsis", ratio=1, min_width=12
        )
        table.add_column("state", no_wrap=True)
        table.add_column("age", justify="right", no_wrap=True)
        table.add_column("idle", justify="right", no_wrap=True)
        table.add_column("→ bytes", justify="right", no_wrap=True)
        table.add_column("← bytes", justify="right", no_wrap=True)
        table.add_column("hs", justify="right", no_wrap=True)
        table.add_column("rtx", justify="right", no_wrap=True)
        shown = self.rows[: max(0, fit)]
        for row in shown:
            if narrow:
                endpoints = f":{row.orig_port} → {row.resp}"
            else:
                endpoints = f"{row.orig} → {row.resp}"
            phase = Text(row.phase.value, style=PHASE_STYLES[row.phase.value])
            if row.finished or row.phase == Phase.CLOSED:
                phase = Text(
                    f"closed {row.state}",
                    style=CONN_STATE_STYLES.get(row.state, "dim"),
                )
            table.add_row(
                str(row.number),
                endpoints,
                phase,
                format_seconds(row.age),
                format_seconds(row.idle),
                format_bytes(row.orig_bytes),
                format_bytes(row.resp_bytes),
                _rtt_text(row),
                Text(
                    str(row.retransmissions),
                    style="red" if row.retransmissions else "dim",
                ),
                style="reverse" if row.uid == self.selected else None,
            )
        if not shown:
            yield Text("waiting for TCP connections…", style="dim")
            return
        yield table


def _rtt_text(row: Row) -> Text:
    if row.rtt is None:
        return Text("-", style="dim")
    if row.handshake == Handshake.REJECTED:
        return Text("RST " + format_seconds(row.rtt), style="red")
    return Text(format_seconds(row.rtt))


class _TimelinePanel:
    """The selected connection's timeline, cut to the panel's height.

    When the timeline is longer than the panel, its first lines (the
    endpoints and the handshake) and its last lines (the newest segments)
    are kept, with a line saying how many were left out between them.
    """

    HEAD = 4

    def __init__(self, conn: Connection | None) -> None:
        self.conn = conn

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        height = options.height or console.size.height
        conn = self.conn
        if conn is None:
            yield Panel(Text("no connection yet", style="dim"), height=height)
            return
        title = f"#{conn.number} {conn.describe()}"
        if conn.segments is None:
            body: Any = Text("segments not kept for this connection", style="dim")
        else:
            from tcpwatch.render.timeline import Timeline

            inner = options.update(width=max(20, options.max_width - 2), height=None)
            lines = console.render_lines(Timeline(conn, full=False), inner, pad=False)
            body = _Lines(_fit_lines(lines, max(1, height - 2), self.HEAD))
        yield Panel(
            body,
            title=Text(title, style="bold"),
            title_align="left",
            height=height,
            box=box.ROUNDED,
            padding=(0, 0),
        )


def _fit_lines(lines: list[list[Segment]], room: int, head: int) -> list[list[Segment]]:
    if len(lines) <= room:
        return lines
    if room <= head + 2:
        return lines[-room:]
    tail = room - head - 1
    skipped = len(lines) - head - tail
    marker = [Segment(f"  … {skipped} lines not shown", Style(dim=True))]
    return lines[:head] + [marker] + lines[-tail:]


class _Lines:
    """Pre-rendered lines, drawn as they are."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


# -- keys ------------------------------------------------------------------------


class _KeyReader:
    """Read selection keys from a terminal in a thread, in cbreak mode."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.fd = sys.stdin.fileno()
        self._closed = threading.Event()
        self._saved: Any = None
        self._thread = threading.Thread(
            target=self._loop, name="tcpwatch-keys", daemon=True
        )

    def start(self) -> None:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self._thread.start()

    def close(self) -> None:
        import termios

        self._closed.set()
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _loop(self) -> None:
        dashboard = self.dashboard
        while not self._closed.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            keys = os.read(self.fd, 32)
            if keys in (b"\x1b[A", b"k"):
                dashboard.move_selection(-1)
            elif keys in (b"\x1b[B", b"j"):
                dashboard.move_selection(1)
            elif keys == b"\x1b":
                dashboard.follow_latest()
            elif keys in (b"q", b"Q"):
                dashboard.stop()


__all__ = ["CaptureStatus", "Dashboard", "DashboardView", "Row"]
