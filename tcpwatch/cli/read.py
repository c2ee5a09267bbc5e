"""``tcpwatch read`` and ``tcpwatch timeline``: offline analysis of capture files."""

import enum
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tcpwatch.errors import TcpwatchError


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    zeek = "zeek"


Files = Annotated[
    list[Path],
    typer.Argument(
        help="pcap or pcapng files, plain or gzip-compressed; several are read as "
        "one capture in timestamp order.",
        show_default=False,
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
        "which stream one record per connection.",
    ),
]
ShowTimeline = Annotated[
    bool,
    typer.Option("--timeline", "-t", help="Draw each connection's ladder diagram too."),
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
) -> None:
    """Analyse capture files: one row (or record) per TCP connection."""
    _run(
        [str(path) for path in files],
        output_format,
        timelines=show_timeline or bool(conn),
        selection=conn or [],
        full=full,
        validate_checksums=validate_checksums,
        idle_timeout=idle_timeout,
    )


def timeline(
    files: Files,
    conn: Selection = None,
    full: Full = False,
    validate_checksums: ValidateChecksums = False,
    idle_timeout: IdleTimeout = 300.0,
) -> None:
    """Draw the ladder diagram of each connection (or of those given with --conn)."""
    _run(
        [str(path) for path in files],
        None,
        timelines=True,
        selection=conn or [],
        full=full,
        validate_checksums=validate_checksums,
        idle_timeout=idle_timeout,
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
) -> None:
    from tcpwatch.cli.output import OfflineReport

    report = OfflineReport(
        output_format=output_format,
        timelines=timelines,
        selection=selection,
        full=full,
    )
    try:
        status = report.run(
            paths, validate_checksums=validate_checksums, idle_timeout=idle_timeout
        )
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    raise typer.Exit(status)


def terminal_width() -> int:
    """Return the width for views that must fit a screen, also when piped."""
    try:
        return int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return 120
