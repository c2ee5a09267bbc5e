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
from rich.measure import Measurement
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
"""Seconds a finished connection stays among the open ones, before it is dimmed."""
KEEP_FINISHED = 1000
"""Finished connections kept for the table printed when the dashboard stops."""
KEEP_TIMELINES = 32
"""Latest finished connections whose segments are kept for the timeline panel."""
WIDE_FROM = 140
"""From this many columns the timeline goes beside the table, not below it."""
ALL_COLUMNS_FROM = 100
"""From this many columns the table also shows each connection's age and idle time."""
KEY_HINT = "↑/↓ j/k select · Esc follow newest · q quit"
"""The footer of a live dashboard: the keys ``_KeyReader`` handles."""

_HEADER_LINES = 3
_FOOTER_LINES = 1
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
    past: bool
    """Finished longer ago than the linger time: shown dimmed, below the rest."""
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
        table_lines = height - _HEADER_LINES - _FOOTER_LINES
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

    def _header(self, active: list[Connection], now: float) -> "_Header":
        """Copy the header's counters, with closed connections counted as finished.

        The tracker keeps a closed connection for its close delay, to collect
        late packets, and delivers it to ``_finished`` after that. Until then
        it is counted here, so that the totals agree with the rows.
        """
        totals = Counter(self.totals)
        closed = [conn for conn in active if conn.both_done()]
        for conn in closed:
            totals[_conn_state(conn)] += 1
        return _Header(
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


# -- rendering (no lock held) ---------------------------------------------------


@dataclass
class _Header:
    status: CaptureStatus
    open_count: int
    finished: int
    """Connections finished or closed by both sides."""
    totals: dict[str, int]
    now: float
    rate: float | None

    def render(self) -> Text:
        """Return the three header lines: source, counters, finished totals.

        Each line is cut with an ellipsis rather than wrapped, so that the
        header keeps its three lines on a narrow terminal.
        """
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for index, line in enumerate(
            (self._source_line(), self._counters_line(), self._totals_line())
        ):
            if index:
                text.append("\n")
            text.append_text(line)
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
        return text

    def _totals_line(self) -> Text:
        """Return ``finished: 10 (8 SF, 1 REJ, 1 RSTO)``, most frequent state first."""
        text = Text("finished: ")
        text.append(f"{self.finished:,}", style="bold")
        if not self.totals:
            return text
        text.append(" (")
        ordered = sorted(self.totals.items(), key=lambda item: (-item[1], item[0]))
        for index, (state, count) in enumerate(ordered):
            if index:
                text.append(", ")
            text.append(f"{count:,} ")
            text.append(state, style=CONN_STATE_STYLES.get(state, ""))
        text.append(")")
        return text


class DashboardView:
    """One frame of the dashboard, drawn to fit the console's size."""

    def __init__(
        self,
        header: _Header,
        rows: list[Row],
        selected: str | None,
        timeline: Connection | None,
        hint: str = KEY_HINT,
    ) -> None:
        self.header = header
        self.rows = rows
        self.selected = selected
        self.timeline = timeline
        self.hint = hint

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = options.max_width
        height = options.height or console.size.height
        footer = Text(
            printable(self.hint),
            style="dim",
            no_wrap=True,
            overflow="ellipsis",
            end="",
        )
        layout = Layout()
        layout.split_column(
            Layout(self.header.render(), name="header", size=_HEADER_LINES),
            Layout(name="body"),
            Layout(footer, name="footer", size=_FOOTER_LINES),
        )
        table = _RowTable(self.rows, self.selected)
        panel = _TimelinePanel(self.timeline)
        if width >= WIDE_FROM:
            layout["body"].split_row(
                Layout(table, name="table", ratio=3),
                Layout(panel, name="timeline", ratio=2, minimum_size=60),
            )
        else:
            body = max(2, height - _HEADER_LINES - _FOOTER_LINES)
            layout["body"].split_column(
                Layout(table, name="table", size=max(4, body // 2)),
                Layout(panel, name="timeline"),
            )
        yield from layout.__rich_console__(console, options.update(height=height))


class _RowTable:
    """The connection table. Below ``ALL_COLUMNS_FROM`` columns it leaves out
    age and idle, so that both endpoints keep their room."""

    def __init__(self, rows: list[Row], selected: str | None) -> None:
        self.rows = rows
        self.selected = selected

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        all_columns = options.max_width >= ALL_COLUMNS_FROM
        fit = (options.height or len(self.rows) + 2) - 2
        table = Table(
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
            padding=(0, 1, 0, 0),
            expand=True,
            show_edge=False,
        )
        table.add_column("#", justify="right", style="dim", no_wrap=True)
        table.add_column("client → server", no_wrap=True, ratio=1, min_width=16)
        table.add_column("state", no_wrap=True)
        if all_columns:
            table.add_column("age", justify="right", no_wrap=True)
            table.add_column("idle", justify="right", no_wrap=True)
        table.add_column("→ bytes", justify="right", no_wrap=True)
        table.add_column("← bytes", justify="right", no_wrap=True)
        table.add_column("hs", justify="right", no_wrap=True)
        table.add_column("rtx", justify="right", no_wrap=True)
        shown = self.rows[: max(0, fit)]
        for row in shown:
            phase = Text(row.phase.value, style=PHASE_STYLES[row.phase.value])
            if row.finished or row.phase == Phase.CLOSED:
                phase = Text(
                    f"closed {row.state}",
                    style=CONN_STATE_STYLES.get(row.state, "dim"),
                )
            times = []
            if all_columns:
                times = [format_seconds(row.age), format_seconds(row.idle)]
            style = "dim" if row.past else None
            if row.uid == self.selected:
                style = "reverse"
            table.add_row(
                str(row.number),
                _Endpoints(row.orig, row.resp),
                phase,
                *times,
                format_bytes(row.orig_bytes),
                format_bytes(row.resp_bytes),
                _rtt_text(row),
                Text(
                    str(row.retransmissions),
                    style="red" if row.retransmissions else "dim",
                ),
                style=style,
            )
        if not shown:
            yield Text("waiting for TCP connections…", style="dim")
            return
        yield table


class _Endpoints:
    """``client → server``, shortened to its column's width from the left of
    each address, so that both ports always stay visible."""

    def __init__(self, orig: str, resp: str) -> None:
        self.orig = orig
        self.resp = resp

    def __rich_measure__(
        self, console: Console, options: ConsoleOptions
    ) -> Measurement:
        full = len(self.orig) + len(self.resp) + 3
        return Measurement(min(full, 16), full)

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        text = fit_endpoints(self.orig, self.resp, options.max_width)
        yield Text(text, no_wrap=True, overflow="ellipsis", end="")


def fit_endpoints(orig: str, resp: str, width: int) -> str:
    """Return ``orig → resp`` in at most ``width`` characters if it can be done.

    Each endpoint is ``host:port``. When the whole does not fit, the longer
    host loses characters from its left, one at a time, and starts with "…"
    instead. The ports are never cut, so a width too small for both ports
    returns the shortest form, and the caller's ellipsis cuts the rest.
    """
    (orig_host, orig_port), (resp_host, resp_port) = map(_split_endpoint, (orig, resp))
    room = width - len(orig_port) - len(resp_port) - len(" → ")
    lengths = [len(orig_host), len(resp_host)]
    # Two characters, "…" and the host's last one, is the shortest a host gets.
    while sum(lengths) > room and max(lengths) > 2:
        longer = 0 if lengths[0] >= lengths[1] else 1
        lengths[longer] -= 1
    orig_shown = _shorten_left(orig_host, lengths[0]) + orig_port
    return f"{orig_shown} → {_shorten_left(resp_host, lengths[1])}{resp_port}"


def _shorten_left(host: str, length: int) -> str:
    """Return ``host`` in ``length`` characters: "…" and its last characters."""
    if length >= len(host):
        return host
    return "…" + host[len(host) - (length - 1) :]


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """Return ``("127.0.0.1", ":80")`` for ``127.0.0.1:80`` (IPv6 in brackets)."""
    host, colon, port = endpoint.rpartition(":")
    return host, colon + port


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


__all__ = ["CaptureStatus", "Dashboard", "DashboardView", "Row", "fit_endpoints"]
