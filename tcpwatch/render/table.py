"""The connection table: one row per connection record."""

from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from tcpwatch.i18n import Catalogue, catalogue
from tcpwatch.render.grid import Grid, GridColumn
from tcpwatch.render.style import CONN_STATE_STYLES, HANDSHAKE_STYLES, TEARDOWN_STYLES
from tcpwatch.units import format_bytes, format_seconds

# Below this many columns the table puts two values in each cell.
NARROW_BELOW = 120
# From this many columns on, the verdict gets a column of its own.
VERDICT_FROM = 150


def endpoint_text(address: str, port: int) -> str:
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def shorten_endpoint(endpoint: str, width: int) -> str:
    """Return ``endpoint`` (``host:port``) in at most ``width`` characters.

    The port stays whole. The host loses characters from its middle, which
    become "…", so that both the network part at its start and the host
    part at its end stay readable: ``fd12:3456:…:3333:4444]:37884``.
    """
    if len(endpoint) <= width:
        return endpoint
    host, colon, port = endpoint.rpartition(":")
    room = width - len(port) - len(colon)
    if room < 3:
        return endpoint[: max(width - 1, 0)] + "…"
    return shorten_host(host, room) + colon + port


def shorten_host(host: str, length: int) -> str:
    """Return ``host`` in ``length`` characters, its middle replaced by "…"."""
    if length >= len(host):
        return host
    if length < 3:
        return host[:length]
    tail = (length - 1) // 2
    head = length - 1 - tail
    return host[:head] + "…" + host[len(host) - tail :]


def handshake_time(record: dict[str, Any], cat: Catalogue | None = None) -> Text:
    """Return the handshake timing that fits the record's handshake class."""
    cat = cat or catalogue()
    if record["handshake"] == "rejected" and record["reject_latency"] is not None:
        latency = format_seconds(record["reject_latency"])
        return Text(cat.text("table.reject_time", time=latency), style="red")
    if record["rtt_syn_synack"] is not None:
        return Text(format_seconds(record["rtt_syn_synack"]))
    return Text("-", style="dim")


class ConnectionTable:
    """A rich renderable table of connection records, one row each.

    ``rows`` are (connection number, record) pairs in display order. Column
    names and class names come from the catalogue of ``lang``. The verdict is
    the record's own sentence, so a caller that wants it in another language
    puts the translated sentence in the record. ``show_verdict`` adds the
    verdict column; by default it appears from ``VERDICT_FROM`` columns.
    """

    def __init__(
        self,
        rows: Sequence[tuple[int, dict[str, Any]]],
        title: str | None = None,
        show_verdict: bool | None = None,
        lang: str = "en",
    ) -> None:
        self.rows = rows
        self.title = title
        self.show_verdict = show_verdict
        self.cat = catalogue(lang)

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = options.max_width
        show_verdict = self.show_verdict
        if show_verdict is None:
            show_verdict = width >= VERDICT_FROM
        if width >= NARROW_BELOW:
            # The widest layout that fits: with the verdict, without it, and
            # at last two values per cell.
            for verdict in (True, False) if show_verdict else (False,):
                grid = self._wide_grid(verdict)
                if grid.fits(width):
                    yield grid
                    return
        yield self._narrow_grid()

    def _wide_grid(self, show_verdict: bool) -> Grid:
        """One value per column, and the verdict last when ``show_verdict``."""
        text = self.cat.text
        columns = [GridColumn("#", justify="right", style="dim")]
        for key in ("originator", "responder", "handshake", "teardown"):
            columns.append(GridColumn(text(f"table.{key}")))
        for key in ("duration", "orig_bytes", "resp_bytes", "hs_time"):
            columns.append(GridColumn(text(f"table.{key}"), justify="right"))
        columns.append(GridColumn(text("table.state")))
        if show_verdict:
            columns.append(GridColumn(text("table.verdict"), wrap=True, min_width=28))

        rows = []
        for number, record in self.rows:
            row = [
                Text(str(number)),
                Text(endpoint_text(record["id.orig_h"], record["id.orig_p"])),
                Text(endpoint_text(record["id.resp_h"], record["id.resp_p"])),
                self._class("handshake", record, HANDSHAKE_STYLES),
                self._class("teardown", record, TEARDOWN_STYLES),
                Text(format_seconds(record["duration"])),
                Text(format_bytes(record["orig_bytes"])),
                Text(format_bytes(record["resp_bytes"])),
                handshake_time(record, self.cat),
                _styled(record["conn_state"], CONN_STATE_STYLES),
            ]
            if show_verdict:
                row.append(Text(record["verdict"]))
            rows.append(row)
        return Grid(columns, rows, title=self.title)

    def _narrow_grid(self) -> Grid:
        """Two lines per row, originator above responder, for 80-column screens."""
        text = self.cat.text
        columns = [
            GridColumn("#", justify="right", style="dim"),
            GridColumn(
                text("table.originator") + "\n" + text("table.responder"),
                wrap=True,
                min_width=8,
                shorten=shorten_endpoint,
            ),
            GridColumn(text("table.handshake") + "\n" + text("table.teardown")),
            GridColumn(
                text("table.duration") + "\n" + text("table.hs_time"), justify="right"
            ),
            GridColumn(
                text("table.orig_bytes") + "\n" + text("table.resp_bytes"),
                justify="right",
            ),
            GridColumn(text("table.state")),
        ]
        rows = []
        for number, record in self.rows:
            endpoints = Text(endpoint_text(record["id.orig_h"], record["id.orig_p"]))
            endpoints.append(
                "\n" + endpoint_text(record["id.resp_h"], record["id.resp_p"])
            )
            classes = self._class("handshake", record, HANDSHAKE_STYLES)
            classes.append("\n")
            classes.append_text(self._class("teardown", record, TEARDOWN_STYLES))
            times = Text(format_seconds(record["duration"]) + "\n")
            times.append_text(handshake_time(record, self.cat))
            sizes = Text(
                format_bytes(record["orig_bytes"])
                + "\n"
                + format_bytes(record["resp_bytes"])
            )
            rows.append(
                [
                    Text(str(number)),
                    endpoints,
                    classes,
                    times,
                    sizes,
                    _styled(record["conn_state"], CONN_STATE_STYLES),
                ]
            )
        return Grid(columns, rows, title=self.title)

    def _class(
        self, field: str, record: dict[str, Any], styles: dict[str, str]
    ) -> Text:
        """Return the handshake or teardown class in the table's language."""
        value = record[field]
        return Text(self.cat.text(f"{field}.{value}"), style=styles.get(value, ""))


def _styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))
