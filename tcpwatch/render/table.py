"""The connection table: one row per connection record."""

from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from tcpwatch.render.style import CONN_STATE_STYLES, HANDSHAKE_STYLES, TEARDOWN_STYLES
from tcpwatch.units import format_bytes, format_seconds


def endpoint_text(address: str, port: int) -> str:
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def handshake_time(record: dict[str, Any]) -> Text:
    """Return the handshake timing that fits the record's handshake class."""
    if record["handshake"] == "rejected" and record["reject_latency"] is not None:
        return Text("RST " + format_seconds(record["reject_latency"]), style="red")
    if record["rtt_syn_synack"] is not None:
        return Text(format_seconds(record["rtt_syn_synack"]))
    return Text("-", style="dim")


# Below this many columns the table puts two values in each cell.
NARROW_BELOW = 120


class ConnectionTable:
    """A rich renderable table of connection records, one row each.

    ``show_verdict`` adds the verdict column; by default it appears when the
    console is at least 150 columns wide.
    """

    def __init__(
        self,
        rows: Sequence[tuple[int, dict[str, Any]]],
        title: str | None = None,
        show_verdict: bool | None = None,
    ) -> None:
        self.rows = rows
        """(connection number, record) pairs, in display order."""
        self.title = title
        self.show_verdict = show_verdict

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = options.max_width
        if width < NARROW_BELOW:
            yield self._narrow_table()
            return
        show_verdict = self.show_verdict
        if show_verdict is None:
            show_verdict = width >= 150
        table = Table(title=self.title, header_style="bold", pad_edge=False)
        table.add_column("#", justify="right", style="dim")
        table.add_column("originator", no_wrap=True)
        table.add_column("responder", no_wrap=True)
        table.add_column("handshake", no_wrap=True)
        table.add_column("teardown", no_wrap=True)
        table.add_column("duration", justify="right", no_wrap=True)
        table.add_column("orig bytes", justify="right", no_wrap=True)
        table.add_column("resp bytes", justify="right", no_wrap=True)
        table.add_column("hs time", justify="right", no_wrap=True)
        table.add_column("state", no_wrap=True)
        if show_verdict:
            table.add_column("verdict", overflow="fold")
        for number, record in self.rows:
            row = [
                Text(str(number)),
                Text(endpoint_text(record["id.orig_h"], record["id.orig_p"])),
                Text(endpoint_text(record["id.resp_h"], record["id.resp_p"])),
                _styled(record["handshake"], HANDSHAKE_STYLES),
                _styled(record["teardown"], TEARDOWN_STYLES),
                Text(format_seconds(record["duration"])),
                Text(format_bytes(record["orig_bytes"])),
                Text(format_bytes(record["resp_bytes"])),
                handshake_time(record),
                _styled(record["conn_state"], CONN_STATE_STYLES),
            ]
            if show_verdict:
                row.append(Text(record["verdict"]))
            table.add_row(*row)
        yield table

    def _narrow_table(self) -> Table:
        """Two lines per row, originator above responder, for 80-column screens."""
        table = Table(title=self.title, header_style="bold", pad_edge=False)
        table.add_column("#", justify="right", style="dim")
        table.add_column("originator\nresponder", overflow="fold")
        table.add_column("handshake\nteardown", no_wrap=True)
        table.add_column("duration\nhs time", justify="right", no_wrap=True)
        table.add_column("orig bytes\nresp bytes", justify="right", no_wrap=True)
        table.add_column("state", no_wrap=True)
        for number, record in self.rows:
            endpoints = Text(endpoint_text(record["id.orig_h"], record["id.orig_p"]))
            endpoints.append(
                "\n" + endpoint_text(record["id.resp_h"], record["id.resp_p"])
            )
            classes = _styled(record["handshake"], HANDSHAKE_STYLES)
            classes.append("\n")
            classes.append_text(_styled(record["teardown"], TEARDOWN_STYLES))
            times = Text(format_seconds(record["duration"]) + "\n")
            times.append_text(handshake_time(record))
            sizes = Text(
                format_bytes(record["orig_bytes"])
                + "\n"
                + format_bytes(record["resp_bytes"])
            )
            table.add_row(
                Text(str(number)),
                endpoints,
                classes,
                times,
                sizes,
                _styled(record["conn_state"], CONN_STATE_STYLES),
            )
        return table


def _styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))
