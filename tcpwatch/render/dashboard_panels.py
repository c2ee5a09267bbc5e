"""The live dashboard's panels: the connection table and the selected timeline.

Both draw copies taken while the feed was paused: ``Row`` records for the
table, and a copy of the selected connection for the timeline.
"""

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from tcpwatch.flow.connection import Connection
from tcpwatch.flow.states import Handshake, Phase
from tcpwatch.render.style import CONN_STATE_STYLES, PHASE_STYLES
from tcpwatch.render.table import shorten_host
from tcpwatch.units import format_bytes, format_seconds

ALL_COLUMNS_FROM = 100
"""From this many columns the table also shows each connection's age and idle time."""


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
    evicted: bool = False
    """Dropped by the tracker's connection limit, not closed by the peers."""


# Optional columns in the order they are left out when the endpoints need room.
_DROP_ORDER = ("idle", "age", "rtx", "hs")
_RIGHT = {"#", "age", "idle", "→ bytes", "← bytes", "hs", "rtx"}
# Rich puts the padding and the box's divider between columns.
_COLUMN_GAP = 2


class RowTable:
    """The connection table, one window of rows with its position in the rule.

    Columns are left out, in ``_DROP_ORDER``, while the longest
    ``client → server`` of the window would otherwise be shortened. Below
    ``ALL_COLUMNS_FROM`` columns age and idle are never shown. The rule under
    the column names ends with ``caption``, such as "rows 8-23 of 30".
    """

    def __init__(
        self, rows: list[Row], selected: str | None, caption: str = ""
    ) -> None:
        self.rows = rows
        self.selected = selected
        self.caption = caption

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        fit = (options.height or len(self.rows) + 2) - 2
        shown = self.rows[: max(0, fit)]
        if not shown:
            yield Text("waiting for TCP connections…", style="dim")
            return

        width = options.max_width
        cells = [self._cells(row, width >= ALL_COLUMNS_FROM) for row in shown]
        widths = _column_widths(cells)
        names = choose_columns(list(cells[0]), widths, width)
        # When every column fits at its widest cell, the table keeps those
        # widths, so that blank space is left at its right and not inside
        # the client → server column. Otherwise that column takes what the
        # others leave, and its endpoints are shortened to fit.
        fits = _needed_width(names, widths) <= width
        table = Table(
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
            padding=(0, 1, 0, 0),
            expand=not fits,
            show_edge=False,
        )
        for name in names:
            if name == "client → server":
                ratio = None if fits else 1
                table.add_column(name, no_wrap=True, ratio=ratio, min_width=16)
            else:
                justify: Any = "right" if name in _RIGHT else "left"
                style = "dim" if name == "#" else ""
                table.add_column(name, justify=justify, style=style, no_wrap=True)

        for row, row_cells in zip(shown, cells, strict=True):
            row_style = "dim" if row.past else None
            if row.uid == self.selected:
                row_style = "reverse"
            table.add_row(*(row_cells[name] for name in names), style=row_style)

        lines = console.render_lines(table, options.update(height=None), pad=False)
        if len(lines) > 1:
            # The rule spans the table, or more where the caption needs it.
            table_width = Segment.get_line_length(lines[0])
            rule_width = max(table_width, cell_len(self.caption) + 4)
            lines[1] = _caption_rule(console, self.caption, min(width, rule_width))
        yield _Lines(lines)

    @staticmethod
    def _cells(row: Row, times: bool) -> dict[str, Any]:
        """Return the row's cells by column name, in the order of the columns."""
        phase = Text(row.phase.value, style=PHASE_STYLES[row.phase.value])
        if row.evicted:
            phase = Text("evicted", style="yellow")
        elif row.finished or row.phase == Phase.CLOSED:
            phase = Text(
                f"closed {row.state}",
                style=CONN_STATE_STYLES.get(row.state, "dim"),
            )
        cells: dict[str, Any] = {
            "#": Text(str(row.number)),
            "client → server": _Endpoints(row.orig, row.resp),
            "state": phase,
        }
        if times:
            cells["age"] = Text(format_seconds(row.age))
            cells["idle"] = Text(format_seconds(row.idle))
        cells["→ bytes"] = Text(format_bytes(row.orig_bytes))
        cells["← bytes"] = Text(format_bytes(row.resp_bytes))
        cells["hs"] = _rtt_text(row)
        cells["rtx"] = Text(
            str(row.retransmissions),
            style="red" if row.retransmissions else "dim",
        )
        return cells


def _column_widths(cells: list[dict[str, Any]]) -> dict[str, int]:
    """Return each column's widest cell or name, in terminal cells."""
    widths = {name: cell_len(name) for name in cells[0]}
    for row_cells in cells:
        for name, cell in row_cells.items():
            length = cell.width if isinstance(cell, _Endpoints) else cell.cell_len
            widths[name] = max(widths[name], length)
    return widths


def _needed_width(names: list[str], widths: dict[str, int]) -> int:
    """Return the cells a table of ``names`` columns needs at ``widths``."""
    return sum(widths[name] for name in names) + _COLUMN_GAP * (len(names) - 1)


def choose_columns(names: list[str], widths: dict[str, int], width: int) -> list[str]:
    """Return ``names`` without the optional columns that do not fit ``width``.

    Optional columns go in ``_DROP_ORDER`` until every column fits at its
    ``widths`` entry, or until none of them is left.
    """
    kept = list(names)
    for name in _DROP_ORDER:
        if _needed_width(kept, widths) <= width:
            break
        if name in kept:
            kept.remove(name)
    return kept


def _caption_rule(console: Console, caption: str, width: int) -> list[Segment]:
    """Return the rule under the column names, ending with `` caption ─``."""
    rule = Text(no_wrap=True, overflow="ellipsis", end="")
    if caption and width >= 8:
        label = Text(f" {caption} ", style="bold")
        label.truncate(width - 3, overflow="ellipsis")
        rule.append("─" * (width - 1 - label.cell_len))
        rule.append_text(label)
        rule.append("─")
    else:
        rule.append("─" * width)
    return list(rule.render(console))


class _Endpoints:
    """``client → server``, shortened to its column's width in the middle of
    each host, so that both ports always stay visible."""

    def __init__(self, orig: str, resp: str) -> None:
        self.orig = orig
        self.resp = resp
        self.width = len(orig) + len(resp) + 3

    def __rich_measure__(
        self, console: Console, options: ConsoleOptions
    ) -> Measurement:
        return Measurement(min(self.width, 16), self.width)

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        text = fit_endpoints(self.orig, self.resp, options.max_width)
        yield Text(text, no_wrap=True, overflow="ellipsis", end="")


def fit_endpoints(orig: str, resp: str, width: int) -> str:
    """Return ``orig → resp`` in at most ``width`` characters if it can be done.

    Each endpoint is ``host:port``. When the whole does not fit, the longer
    host loses characters from its middle, one at a time, which become "…"
    (``shorten_host``), so that the first and the last bytes of an address
    stay readable: ``127.…0.90:59554``. The ports are never cut, so a width
    too small for both ports returns the shortest form, and the caller's
    ellipsis cuts the rest.
    """
    (orig_host, orig_port), (resp_host, resp_port) = map(_split_endpoint, (orig, resp))
    room = width - len(orig_port) - len(resp_port) - len(" → ")
    lengths = [len(orig_host), len(resp_host)]
    # Three characters, the first, "…" and the last, is the shortest a host gets.
    while sum(lengths) > room and max(lengths) > 3:
        longer = 0 if lengths[0] >= lengths[1] else 1
        lengths[longer] -= 1
    orig_shown = shorten_host(orig_host, lengths[0]) + orig_port
    return f"{orig_shown} → {shorten_host(resp_host, lengths[1])}{resp_port}"


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


class TimelinePanel:
    """The selected connection's timeline, cut to the panel's height.

    When the timeline is longer than the panel, its first ``HEAD`` lines (the
    endpoints and the handshake) stay. Below them the panel shows a window of
    the remaining lines, between two lines that count the lines left out above
    and below the window. ``top`` is the first line of that window, counted
    after the head, or None for the window that ends with the newest line.
    Drawing stores the window's ``first`` line and its greatest ``last_top``,
    which is where the newest line shows, so that keys can scroll from there.
    """

    HEAD = 4

    def __init__(self, conn: Connection | None, top: int | None = None) -> None:
        self.conn = conn
        self.top = top
        self.first = 0
        self.last_top = 0

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
            window = timeline_window(
                len(lines), max(1, height - 2), self.HEAD, self.top
            )
            self.first, self.last_top = window.first, window.last_top
            body = _Lines(_window_lines(lines, window))
        yield Panel(
            body,
            title=Text(title, style="bold"),
            title_align="left",
            height=height,
            box=box.ROUNDED,
            padding=(0, 0),
        )


@dataclass(frozen=True)
class TimelineWindow:
    """The lines of a timeline that a panel shows, counted from 0."""

    head: int
    """Lines shown from the start, above the window."""
    first: int
    """The window's first line, counted after the head."""
    count: int
    """Lines in the window."""
    above: int
    """Lines left out between the head and the window."""
    below: int
    """Lines left out after the window."""
    last_top: int
    """The greatest ``first``: the window that ends with the newest line."""
    counted: bool
    """A line above and a line below the window count the lines left out."""


def timeline_window(
    total: int, room: int, head: int, top: int | None
) -> TimelineWindow:
    """Place a window over ``total`` lines to fill ``room`` lines of a panel.

    ``head`` lines stay at the start and ``top`` is the window's first line
    after them, None for the newest lines. A line above and a line below the
    window count the lines left out there, so those take room too. A panel
    too short for the head, two such lines and one more drops the head.
    """
    if total <= room:
        return TimelineWindow(0, 0, total, 0, 0, 0, counted=False)
    if room < head + 3:
        head = 0
    rest = total - head
    space = room - head
    if head == 0:
        # Too little room for the lines that count what is left out.
        last_top = rest - space
        first = last_top if top is None else max(0, min(top, last_top))
        below = rest - first - space
        return TimelineWindow(0, first, space, first, below, last_top, counted=False)
    # At either end one of the two counting lines is missing, so the window
    # is one line longer there.
    last_top = rest - space + 1
    first = last_top if top is None else max(0, min(top, last_top))
    count = space - 1 if first in (0, last_top) else space - 2
    below = rest - first - count
    return TimelineWindow(head, first, count, first, below, last_top, counted=True)


def _window_lines(
    lines: list[list[Segment]], window: TimelineWindow
) -> list[list[Segment]]:
    shown = lines[: window.head]
    if window.counted and window.above:
        shown.append(_marker(f"  … {window.above} lines above · [ scrolls up"))
    start = window.head + window.first
    shown.extend(lines[start : start + window.count])
    if window.counted and window.below:
        shown.append(_marker(f"  … {window.below} lines below · ] scrolls down"))
    return shown


def _marker(text: str) -> list[Segment]:
    return [Segment(text, Style(dim=True))]


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
