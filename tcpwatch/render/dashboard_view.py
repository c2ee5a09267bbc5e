"""One frame of the live dashboard: the header, the panels and the footer.

``DashboardView`` lays out what ``Dashboard.view`` copied from the tracker, so
it is drawn without the feed's lock. The table and timeline panels are in
``dashboard_panels``.
"""

from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.layout import Layout
from rich.text import Text

from tcpwatch.capture.live_feed import CaptureStatus
from tcpwatch.flow.connection import Connection
from tcpwatch.render.dashboard_panels import Row, RowTable, TimelinePanel
from tcpwatch.render.style import CONN_STATE_STYLES, printable
from tcpwatch.units import format_seconds

WIDE_FROM = 140
"""From this many columns the timeline goes beside the table, not below it."""
KEY_HINT = "↑/↓ j/k select · [/] timeline · Esc follow newest · ? keys · q quit"
"""The footer of a live dashboard: the keys ``KeyReader`` handles."""
KEY_HELP = (
    "↑/↓ or j/k: select the row above or below",
    "PgUp/PgDn: a page up or down",
    "Home/End or g/G: the first or last row",
    "[/] or Shift+↑/↓: scroll the timeline",
    "Esc: follow the newest connection",
    "?/h: hide these keys",
    "q: quit",
)
"""Every key of a live dashboard, shown in the footer after ? or h."""

HEADER_LINES = 3
TABLE_GAP = 2
"""Blank columns between the table and the timeline beside it."""
FOOTER_LINES = 1


def footer_lines(
    hint: str, show_help: bool, width: int, extra: tuple[str, ...] = ()
) -> list[str]:
    """Return the footer: ``hint``, or with ``show_help`` every key, wrapped.

    ``extra`` lists a driver's own keys, before the dashboard's.
    """
    if not show_help:
        return [hint]
    lines: list[str] = []
    for entry in (*extra, *KEY_HELP):
        if lines and len(lines[-1]) + len(" · ") + len(entry) <= width:
            lines[-1] += " · " + entry
        else:
            lines.append(entry)
    return lines


def table_height(width: int, height: int, footer: int = FOOTER_LINES) -> int:
    """Return the lines the connection table gets on a ``width`` × ``height`` screen.

    From ``WIDE_FROM`` columns the table has the whole height between the
    header and the footer, and below that the upper half of it.
    """
    body = max(2, height - HEADER_LINES - footer)
    if width >= WIDE_FROM:
        return body
    return max(4, body // 2)


@dataclass
class Header:
    """The header's counters, copied while the feed is paused."""

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
    """One frame of the dashboard, drawn to fit the console's size.

    ``caption`` ends the rule under the table's column names, ``footer`` is
    the last lines, and ``timeline_top`` scrolls the timeline panel (see
    ``TimelinePanel``).
    """

    def __init__(
        self,
        header: Header,
        rows: list[Row],
        selected: str | None,
        timeline: Connection | None,
        hint: str = KEY_HINT,
        *,
        caption: str = "",
        footer: list[str] | None = None,
        timeline_top: int | None = None,
    ) -> None:
        self.header = header
        self.rows = rows
        self.selected = selected
        self.timeline = timeline
        self.footer = footer if footer is not None else [hint]
        self.table = RowTable(rows, selected, caption)
        self.panel = TimelinePanel(timeline, timeline_top)

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = options.max_width
        height = options.height or console.size.height
        footer = Text(
            "\n".join(printable(line) for line in self.footer),
            style="dim",
            no_wrap=True,
            overflow="ellipsis",
            end="",
        )
        layout = Layout()
        layout.split_column(
            Layout(self.header.render(), name="header", size=HEADER_LINES),
            Layout(name="body"),
            Layout(footer, name="footer", size=len(self.footer)),
        )
        if width >= WIDE_FROM:
            # A blank column keeps the table's last column off the panel's border.
            layout["body"].split_row(
                Layout(self.table, name="table", ratio=3),
                Layout(Text(" "), name="gap", size=TABLE_GAP),
                Layout(self.panel, name="timeline", ratio=2, minimum_size=60),
            )
        else:
            size = table_height(width, height, len(self.footer))
            layout["body"].split_column(
                Layout(self.table, name="table", size=size),
                Layout(self.panel, name="timeline"),
            )
        yield from layout.__rich_console__(console, options.update(height=height))
