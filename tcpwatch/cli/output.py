"""Printing an offline analysis: table, timelines or streamed records."""

import sys
from typing import Any

from rich.console import Console

from tcpwatch.flow.connection import Connection
from tcpwatch.flow.record import build_record

# Width for a piped table: wide enough that no cell is cut.
_PIPE_TABLE_WIDTH = 400


class OfflineReport:
    """Run the offline pipeline and print its results.

    Machine formats (json, csv, zeek) stream one record per connection as the
    tracker finishes it. The table and timelines are printed when the capture
    has been read, in the order connections were first seen.
    """

    def __init__(
        self,
        output_format: Any,
        timelines: bool,
        selection: list[str],
        full: bool,
    ) -> None:
        self.output_format = output_format.value if output_format else None
        self.timelines = timelines
        self.numbers = {int(value) for value in selection if value.isdigit()}
        self.uids = {value for value in selection if not value.isdigit()}
        self.full = full
        self.stdout = Console(file=sys.stdout, highlight=False)
        self.stderr = Console(file=sys.stderr, highlight=False)
        self.rows: list[tuple[int, dict[str, Any]]] = []
        self.kept: list[Connection] = []
        self.writer: Any = None

    def run(
        self, paths: list[str], *, validate_checksums: bool, idle_timeout: float
    ) -> int:
        """Read ``paths`` and print; return the exit status (1 if a file broke)."""
        from tcpwatch.flow.tracker import FlowTracker
        from tcpwatch.pipeline import read_captures

        tracker = FlowTracker(idle_timeout=idle_timeout, keep_segments=self.timelines)
        self.writer = self._make_writer()
        result = read_captures(
            paths,
            tracker,
            self._finished,
            validate_checksums=validate_checksums,
        )
        if self.writer is not None:
            self.writer.close()
        else:
            self._print_views()
        noun = "connection" if result.connections == 1 else "connections"
        summary = f"{result.connections:,} {noun}; {result.stats.summary()}"
        if result.reordered:
            summary += f"; {result.reordered:,} segments out of timestamp order"
        self.stderr.print(summary, style="dim", soft_wrap=True)
        for error in result.errors:
            self.stderr.print(
                f"tcpwatch: error: {error}; the packets before it were analysed",
                style="red",
                soft_wrap=True,
            )
        return 1 if result.errors else 0

    def _make_writer(self) -> Any:
        from tcpwatch.export import writers

        if self.output_format == "json":
            return writers.JsonLinesWriter(sys.stdout)
        if self.output_format == "csv":
            return writers.CsvWriter(sys.stdout)
        if self.output_format == "zeek":
            return writers.ZeekWriter(sys.stdout)
        return None

    def _selected(self, conn: Connection) -> bool:
        if not self.numbers and not self.uids:
            return True
        return conn.number in self.numbers or conn.uid in self.uids

    def _finished(self, conn: Connection) -> None:
        if not self._selected(conn):
            return
        record = build_record(conn)
        if self.writer is not None:
            self.writer.write(record)
            if self.timelines:
                self.kept.append(conn)
            return
        if self.output_format == "table":
            self.rows.append((conn.number, record))
        if self.timelines:
            conn.segments = conn.segments or []
            self.kept.append(conn)

    def _print_views(self) -> None:
        from tcpwatch.render.table import ConnectionTable
        from tcpwatch.render.timeline import Timeline

        console = self.stdout
        if self.rows:
            self.rows.sort(key=lambda row: row[0])
            width = None if console.is_terminal else _PIPE_TABLE_WIDTH
            console.print(ConnectionTable(self.rows), width=width, crop=False)
        elif self.output_format == "table":
            console.print("no TCP connections found", style="yellow")
        if self.timelines:
            from tcpwatch.cli.read import terminal_width

            width = None if console.is_terminal else terminal_width()
            for conn in sorted(self.kept, key=lambda c: c.number):
                console.print()
                console.print(
                    f"connection {conn.number} ({conn.uid})", style="bold", width=width
                )
                console.print(Timeline(conn, full=self.full), width=width, crop=False)
