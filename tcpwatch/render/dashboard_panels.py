"""The live dashboard's panels: the connection table and the selected timeline.

Both draw copies taken while the feed was paused: ``Row`` records for the
table, and a copy of the selected connection for the timeline.
"""

from dataclasses import dataclass
from typing import Any

from rich import box
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


class RowTable:
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


class TimelinePanel:
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
