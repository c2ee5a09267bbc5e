"""``tcpwatch read`` and ``tcpwatch timeline``: offline analysis of capture files."""

import enum
import os
import sys
from pathlib import Path
from typing import Annotated, NamedTuple

import typer

from tcpwatch.cli.common import user_errors
from tcpwatch.cli.live import Backend, MaxConnectionsOption
from tcpwatch.errors import TcpwatchError, UsageError


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    zeek = "zeek"
    mermaid = "mermaid"


Files = Annotated[
    list[Path],
    typer.Argument(
        help="pcap or pcapng files, plain or gzip-compressed; several are read as "
        "one capture in timestamp order.",
        show_default=False,
        # tcpwatch's own error names the file and the fix; click's would not.
        readable=False,
    ),
]
ValidateChecksums = Annotated[
    bool,
    typer.Option(
        "--validate-checksums",
        help="Drop segments whose IPv4 or TCP checksum is wrong (Zeek's C/c history).",
    ),
]
IdleTimeout = Annotated[
    float,
    typer.Option(
        "--idle-timeout",
        min=0.001,
        help="Seconds without packets after which a connection is finished.",
    ),
]
Full = Annotated[
    bool,
    typer.Option("--full", help="Show every segment of long transfers, unfolded."),
]
Selection = Annotated[
    list[str] | None,
    typer.Option(
        "--conn",
        "-n",
        help="Connection number (as in the table) or uid to show; repeatable.",
    ),
]
Format = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-F",
        help="table; or json (one object per line), csv or zeek (conn.log TSV), "
        "which stream one record per connection; or mermaid (a Markdown-ready "
        "sequence diagram per connection).",
    ),
]
ShowTimeline = Annotated[
    bool,
    typer.Option("--timeline", "-t", help="Draw each connection's ladder diagram too."),
]
Explain = Annotated[
    bool,
    typer.Option(
        "--explain",
        help="Add a plain-language note to each step of the timelines.",
    ),
]
Lang = Annotated[
    str,
    typer.Option(
        "--lang",
        help="Language of the table, timelines, explanations and verdicts on "
        "screen: en or ja. json, csv and zeek records keep English verdicts.",
    ),
]
SaveSvg = Annotated[
    Path | None,
    typer.Option(
        "--svg",
        help="Also save the timelines as an SVG image to this file.",
        dir_okay=False,
    ),
]
Separate = Annotated[
    bool,
    typer.Option(
        "--separate",
        help="Analyse each file as an independent capture, in parallel with "
        "--jobs. Without it, several files are read as one capture in "
        "timestamp order, in one process.",
    ),
]
Jobs = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="With --separate: the number of files analysed at once, each in "
        "its own process.",
    ),
]
ReadFilter = Annotated[
    str,
    typer.Option(
        "--filter",
        "-f",
        help="Read only the frames that match this pcap-filter(7) expression, "
        "such as 'port 443' or 'host 10.0.0.5', as tcpdump -r FILE EXPRESSION "
        "does. The rest are counted and left out.",
        show_default=False,
    ),
]
ReadBackend = Annotated[
    Backend,
    typer.Option(
        "--backend",
        help="native: tcpwatch's own reader and decoder. tshark: dissect with "
        "tshark through pyshark (much slower), to check against Wireshark.",
    ),
]
SaveHtml = Annotated[
    Path | None,
    typer.Option(
        "--html",
        help="Also save the timelines as an HTML page to this file.",
        dir_okay=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("read")(read)
    app.command("timeline")(timeline)


def read(
    files: Files,
    output_format: Format = OutputFormat.table,
    show_timeline: ShowTimeline = False,
    conn: Selection = None,
    full: Full = False,
    validate_checksums: ValidateChecksums = False,
    idle_timeout: IdleTimeout = 300.0,
    explain: Explain = False,
    lang: Lang = "en",
    svg: SaveSvg = None,
    html: SaveHtml = None,
    separate: Separate = False,
    jobs: Jobs = 1,
    backend: ReadBackend = Backend.native,
    max_connections: MaxConnectionsOption = 500_000,
    bpf_filter: ReadFilter = "",
) -> None:
    """Analyse capture files: one row (or record) per TCP connection."""
    with user_errors():
        if backend == Backend.tshark and separate:
            raise UsageError("--separate works with the native backend only")
        if backend == Backend.tshark and bpf_filter:
            raise UsageError(
                "--filter works with the native backend only; drop --backend "
                "tshark, or narrow the file first with tcpdump -r FILE -w OUT "
                "EXPRESSION"
            )
        if jobs > 1 and not separate:
            raise UsageError(
                f"--jobs {jobs} analyses files in parallel only with --separate; "
                "add --separate if the files are independent captures, or drop "
                "--jobs to read them as one capture"
            )
        drawn = show_timeline or explain or bool(svg or html)
        if drawn and output_format in (
            OutputFormat.json,
            OutputFormat.csv,
            OutputFormat.zeek,
        ):
            raise UsageError(
                "--timeline, --explain, --svg and --html draw timelines, which go "
                f"with the table, not with --format {output_format.value}; drop one "
                "of them, or use 'tcpwatch timeline'"
            )
        _run(
            [str(path) for path in files],
            output_format,
            timelines=drawn or (bool(conn) and output_format == OutputFormat.table),
            selection=conn or [],
            full=full,
            validate_checksums=validate_checksums,
            idle_timeout=idle_timeout,
            views=TimelineOptions(explain, lang, svg, html),
            separate=separate,
            jobs=jobs,
            backend=backend.value,
            max_connections=max_connections,
            bpf_filter=bpf_filter,
        )


def timeline(
    files: Files,
    conn: Selection = None,
    full: Full = False,
    validate_checksums: ValidateChecksums = False,
    idle_timeout: IdleTimeout = 300.0,
    explain: Explain = False,
    lang: Lang = "en",
    svg: SaveSvg = None,
    html: SaveHtml = None,
    bpf_filter: ReadFilter = "",
) -> None:
    """Draw the ladder diagram of each connection (or of those given with --conn)."""
    with user_errors():
        _run(
            [str(path) for path in files],
            None,
            timelines=True,
            selection=conn or [],
            full=full,
            validate_checksums=validate_checksums,
            idle_timeout=idle_timeout,
            views=TimelineOptions(explain, lang, svg, html),
            bpf_filter=bpf_filter,
        )


def _run(
    paths: list[str],
    output_format: OutputFormat | None,
    *,
    timelines: bool,
    selection: list[str],
    full: bool,
    validate_checksums: bool,
    idle_timeout: float,
    views: "TimelineOptions | None" = None,
    separate: bool = False,
    jobs: int = 1,
    backend: str = "native",
    max_connections: int = 500_000,
    bpf_filter: str = "",
) -> None:
    from tcpwatch.cli.output import OfflineReport
    from tcpwatch.cli.paths import check_output_path

    if views is not None:
        for path, option in ((views.svg, "--svg"), (views.html, "--html")):
            if path is not None:
                check_output_path(path, option)
    # "-" reads the capture from standard input, as tcpdump -r - does.
    paths = ["/dev/stdin" if path == "-" else path for path in paths]
    report = OfflineReport(
        output_format=output_format,
        timelines=timelines,
        selection=selection,
        full=full,
        views=views,
    )
    try:
        status = report.run(
            paths,
            validate_checksums=validate_checksums,
            idle_timeout=idle_timeout,
            separate=separate,
            jobs=jobs,
            backend=backend,
            max_connections=max_connections,
            bpf_filter=bpf_filter,
        )
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    raise typer.Exit(status)


class TimelineOptions(NamedTuple):
    """How timelines are drawn and where else they are saved."""

    explain: bool = False
    lang: str = "en"
    svg: Path | None = None
    html: Path | None = None


def terminal_width() -> int:
    """Return the width for views that must fit a screen, also when piped."""
    try:
        return int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return 120
