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
KEY_HINT = "↑/↓ j/k select · Esc follow newest · q quit"
"""The footer of a live dashboard: the keys ``KeyReader`` handles."""

HEADER_LINES = 3
FOOTER_LINES = 1


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
    """One frame of the dashboard, drawn to fit the console's size."""

    def __init__(
        self,
        header: Header,
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
            Layout(self.header.render(), name="header", size=HEADER_LINES),
            Layout(name="body"),
            Layout(footer, name="footer", size=FOOTER_LINES),
        )
        table = RowTable(self.rows, self.selected)
        panel = TimelinePanel(self.timeline)
        if width >= WIDE_FROM:
            layout["body"].split_row(
                Layout(table, name="table", ratio=3),
                Layout(panel, name="timeline", ratio=2, minimum_size=60),
            )
        else:
            body = max(2, height - HEADER_LINES - FOOTER_LINES)
            layout["body"].split_column(
                Layout(table, name="table", size=max(4, body // 2)),
                Layout(panel, name="timeline"),
            )
        yield from layout.__rich_console__(console, options.update(height=height))
