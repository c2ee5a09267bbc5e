"""Printing an offline analysis: table, timelines or streamed records."""

import re
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console

from tcpwatch.flow.connection import Connection
from tcpwatch.flow.record import build_record
from tcpwatch.render.style import printable

if TYPE_CHECKING:
    from tcpwatch.pipeline import ReadResult

# Width for a piped table: wide enough that no cell is cut.
_PIPE_TABLE_WIDTH = 400


class OfflineReport:
    """Run the offline pipeline and print its results.

    Machine formats (json, csv, zeek) stream one record per connection as the
    tracker finishes it, and mermaid one diagram per connection. The table and
    timelines are printed when the capture has been read, in the order
    connections were first seen.
    """

    def __init__(
        self,
        output_format: Any,
        timelines: bool,
        selection: list[str],
        full: bool,
        views: Any = None,
    ) -> None:
        self.output_format = output_format.value if output_format else None
        self.timelines = timelines
        self.numbers = {int(value) for value in selection if value.isdigit()}
        self.uids = {value for value in selection if not value.isdigit()}
        self.full = full
        self.views = views
        """``read.TimelineOptions``: explanations, language, SVG and HTML files."""
        self.stdout = Console(file=sys.stdout, highlight=False)
        self.stderr = Console(file=sys.stderr, highlight=False)
        self.rows: list[tuple[int, dict[str, Any]]] = []
        self.found: set[str] = set()
        """``--conn`` values that matched a connection."""
        self.kept: list[Connection] = []
        self.writer: Any = None
        self.file_lines: list[str] = []
        """With ``--separate``: one summary line per file, in the order read."""

    def run(
        self,
        paths: list[str],
        *,
        validate_checksums: bool,
        idle_timeout: float,
        separate: bool = False,
        jobs: int = 1,
        backend: str = "native",
        max_connections: int = 500_000,
        bpf_filter: str = "",
    ) -> int:
        """Read ``paths`` and print; return the exit status (1 if a file broke).

        With ``separate``, each file is an independent capture, analysed in
        up to ``jobs`` worker processes at once. With ``bpf_filter``, only the
        frames that match the pcap-filter(7) expression are analysed.
        """
        from functools import partial

        from tcpwatch.flow.tracker import FlowTracker
        from tcpwatch.i18n import catalogue
        from tcpwatch.parallel import read_separately
        from tcpwatch.pipeline import read_captures

        catalogue(self._lang)  # an unknown language fails before reading
        frame_filter = None
        if bpf_filter:
            from tcpwatch.capture.bpf import FrameFilter

            frame_filter = FrameFilter(bpf_filter)  # a bad one fails up front
        keep = self.timelines or self.output_format == "mermaid"
        make_tracker = partial(
            FlowTracker,
            idle_timeout=idle_timeout,
            keep_segments=keep,
            max_connections=max_connections,
        )
        self.writer = self._make_writer()
        if backend == "tshark":
            from tcpwatch.capture.tshark import read_captures_tshark

            result = read_captures_tshark(
                paths,
                make_tracker(),
                self._finished,
                validate_checksums=validate_checksums,
            )
        elif separate:
            result = read_separately(
                paths,
                make_tracker,
                self._finished,
                jobs=jobs,
                validate_checksums=validate_checksums,
                on_file=self._file_done,
                bpf_filter=bpf_filter,
            )
        else:
            result = read_captures(
                paths,
                make_tracker(),
                self._finished,
                validate_checksums=validate_checksums,
                frame_filter=frame_filter,
            )
        if self.writer is not None:
            self.writer.close()
        else:
            self._print_views()
            if _reader_gone(sys.stdout):
                # A large write into a pipe whose reader left part way can end
                # without an error in Python; stop as the other formats do.
                raise BrokenPipeError(32, "the reader of standard output left")
        for line in self.file_lines:
            self.stderr.print(line, style="dim", soft_wrap=True, markup=False)
        noun = "connection" if result.connections == 1 else "connections"
        summary = f"{result.connections:,} {noun}; {result.stats.summary()}"
        if bpf_filter and result.filtered:
            summary += (
                f"; {result.filtered:,} more left out by the filter "
                f"{printable(bpf_filter)!r}"
            )
        if result.reordered:
            noun = "segment" if result.reordered == 1 else "segments"
            summary += f"; {result.reordered:,} {noun} out of timestamp order"
        if result.evicted:
            noun = "connection" if result.evicted == 1 else "connections"
            summary += (
                f"; {result.evicted:,} {noun} evicted at the --max-connections limit"
            )
        self.stderr.print(summary, style="dim", soft_wrap=True, markup=False)
        if frame_filter is not None:
            for link_type, reason in sorted(frame_filter.unusable.items()):
                self.stderr.print(
                    f"note: the filter {bpf_filter!r} cannot apply to frames of "
                    f"link type {link_type} ({reason}), so all of them were left "
                    "out; write a filter for that link type, as tcpdump -r would "
                    "need",
                    style="yellow",
                    soft_wrap=True,
                    markup=False,
                )
        if (
            result.stats.bad_checksum
            and result.stats.bad_checksum * 2 >= result.stats.tcp
        ):
            self.stderr.print(
                "note: most segments had bad checksums and were dropped; a capture "
                "taken on a sending host (loopback included) holds checksums that "
                "the network card fills in later, so read it without "
                "--validate-checksums",
                style="yellow",
                soft_wrap=True,
            )
        for error in result.errors:
            # An error with an offset broke a file part way; one without
            # (only with --separate) kept the file from being read at all.
            after = "; the packets before it were analysed" if error.offset else ""
            self.stderr.print(
                f"tcpwatch: error: {error}{after}",
                style="red",
                soft_wrap=True,
                markup=False,
            )
        if self._report_unmatched(result.connections):
            return 2
        return 1 if result.errors else 0

    def _file_done(self, path: str, before: int, part: "ReadResult") -> None:
        """Note which connection numbers and frames came from ``path``."""
        count = part.connections
        if count == 0:
            numbers = "no connections"
        elif count == 1:
            numbers = f"connection {before + 1:,}"
        else:
            numbers = f"connections {before + 1:,} to {before + count:,}"
        self.file_lines.append(f"{printable(path)}: {numbers}; {part.stats.summary()}")

    def _make_writer(self) -> Any:
        from tcpwatch.export import writers

        if self.output_format == "json":
            return writers.JsonLinesWriter(sys.stdout)
        if self.output_format == "csv":
            return writers.CsvWriter(sys.stdout)
        if self.output_format == "zeek":
            return writers.ZeekWriter(sys.stdout)
        if self.output_format == "mermaid":
            from tcpwatch.export.mermaid import MermaidWriter

            return MermaidWriter(sys.stdout, full=self.full, lang=self._lang)
        return None

    @property
    def _lang(self) -> str:
        return str(self.views.lang) if self.views is not None else "en"

    def _selected(self, conn: Connection) -> bool:
        if not self.numbers and not self.uids:
            return True
        if conn.number in self.numbers:
            self.found.add(str(conn.number))
            return True
        if conn.uid in self.uids:
            self.found.add(conn.uid)
            return True
        return False

    def _report_unmatched(self, connections: int) -> bool:
        """Print an error for each ``--conn`` value that matched nothing.

        Returns True when there was such a value.
        """
        wanted = {str(number) for number in self.numbers} | self.uids
        missing = sorted(wanted - self.found)
        for value in missing:
            kind = "numbered" if value.isdigit() else "with uid"
            self.stderr.print(
                f"tcpwatch: error: --conn {printable(value)}: no connection {kind} "
                f"{printable(value)}; the capture has {connections:,}, numbered "
                f"1 to {connections:,} in the table",
                style="red",
                soft_wrap=True,
                markup=False,
            )
        return bool(missing)

    def _finished(self, conn: Connection) -> None:
        if not self._selected(conn):
            return
        if self.output_format == "mermaid":
            self.writer.write(conn)
            if self.timelines:
                self.kept.append(conn)
            return
        record = build_record(conn)
        if self.writer is not None:
            self.writer.write(record)
            if self.timelines:
                self.kept.append(conn)
            return
        if self.output_format == "table":
            if self._lang != "en":
                from tcpwatch.i18n import catalogue
                from tcpwatch.render.explain import build_verdict

                cat = catalogue(self._lang)
                record = dict(record, verdict=build_verdict(conn, record, cat))
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
            table = ConnectionTable(self.rows, lang=self._lang)
            console.print(table, width=width, crop=False)
        elif self.output_format == "table" and not (self.numbers or self.uids):
            from tcpwatch.i18n import catalogue

            console.print(catalogue(self._lang).text("table.empty"), style="yellow")
        if self.timelines:
            from tcpwatch.cli.read import terminal_width

            width = None if console.is_terminal else terminal_width()
            views = self.views
            explain = bool(views and views.explain)
            saved = self._recording_console(width or console.width)
            for conn in sorted(self.kept, key=lambda c: c.number):
                timeline = Timeline(
                    conn,
                    full=self.full,
                    explain=explain,
                    lang=self._lang,
                    title=True,
                    verdict=True,
                )
                console.print()
                console.print(timeline, width=width, crop=False)
                if saved is not None:
                    saved.print()
                    saved.print(timeline, crop=False)
            if saved is not None:
                self._save(saved)

    def _recording_console(self, width: int) -> Console | None:
        """Return a console that records the timelines for --svg and --html."""
        views = self.views
        if views is None or not (views.svg or views.html):
            return None
        import io

        return Console(
            file=io.StringIO(),
            record=True,
            width=width,
            force_terminal=True,
            color_system="truecolor",
            highlight=False,
        )

    def _save(self, recorded: Console) -> None:
        views = self.views
        from tcpwatch.cli.paths import write_failed

        if views.svg:
            svg = recorded.export_svg(title="tcpwatch timeline", clear=False)
            try:
                views.svg.write_text(_without_web_fonts(svg), encoding="utf-8")
            except OSError as error:
                raise write_failed(views.svg, "--svg", error) from None
        if views.html:
            try:
                recorded.save_html(str(views.html), clear=False)
            except OSError as error:
                raise write_failed(views.html, "--html", error) from None


_WEB_FONT = re.compile(r',\s*url\("https?://[^"]*"\)\s*format\("[^"]*"\)')


def _without_web_fonts(svg: str) -> str:
    """Drop the font addresses on the web from rich's SVG export.

    rich's template loads Fira Code from a public CDN, so opening the image
    would make a request to a third party and look different offline. The
    ``local()`` font and the monospace fallback stay.
    """
    return _WEB_FONT.sub("", svg)


def _reader_gone(stream: Any) -> bool:
    """Return whether ``stream`` is a pipe whose reading end has been closed."""
    import select

    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))
