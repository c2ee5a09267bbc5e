"""``tcpwatch demo``: a TCP lesson on real loopback traffic or synthesised packets."""

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from tcpwatch.cli.read import TimelineOptions
from tcpwatch.errors import TcpwatchError, UsageError

ScenarioName = Annotated[
    str | None,
    typer.Argument(
        help="Scenario to run (see --list); the clean exchange by default.",
        show_default=False,
    ),
]
ListScenarios = Annotated[
    bool, typer.Option("--list", help="Describe every scenario and exit.")
]
Write = Annotated[
    Path | None,
    typer.Option(
        "--write",
        "-w",
        help="Save the demo's capture to this pcap file.",
        dir_okay=False,
    ),
]
Explain = Annotated[
    bool,
    typer.Option(
        "--explain/--no-explain", help="Add a plain-language note to each step."
    ),
]
Lang = Annotated[str, typer.Option("--lang", help="Language of the lesson: en or ja.")]
Full = Annotated[
    bool,
    typer.Option("--full", help="Show every segment of long transfers, unfolded."),
]
SaveSvg = Annotated[
    Path | None,
    typer.Option(
        "--svg",
        help="Also save the timeline as an SVG image to this file.",
        dir_okay=False,
    ),
]
SaveHtml = Annotated[
    Path | None,
    typer.Option(
        "--html",
        help="Also save the timeline as an HTML page to this file.",
        dir_okay=False,
    ),
]
Synthesise = Annotated[
    bool,
    typer.Option(
        "--synthesise",
        help="Use synthesised packets even where a live loopback capture is possible.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    scenario: ScenarioName = None,
    list_scenarios: ListScenarios = False,
    write: Write = None,
    explain: Explain = True,
    lang: Lang = "en",
    full: Full = False,
    synthesise: Synthesise = False,
    svg: SaveSvg = None,
    html: SaveHtml = None,
) -> None:
    """Show a TCP connection step by step, captured live as root or synthesised."""
    try:
        from tcpwatch.cli.paths import check_output_path

        for path, option in ((write, "--write"), (svg, "--svg"), (html, "--html")):
            if path is not None:
                check_output_path(path, option)
        views = TimelineOptions(explain=explain, lang=lang, svg=svg, html=html)
        _demo(scenario, list_scenarios, write, views, full, synthesise)
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None


def _demo(
    name: str | None,
    list_scenarios: bool,
    write: Path | None,
    views: TimelineOptions,
    full: bool,
    synthesise: bool,
) -> None:
    from rich.console import Console

    from tcpwatch.demo import DEFAULT_SCENARIO, SCENARIOS, make_capture
    from tcpwatch.i18n import catalogue

    lang = views.lang
    cat = catalogue(lang)
    console = Console(highlight=False)
    if list_scenarios:
        _print_list(console, lang)
        return
    name = name or DEFAULT_SCENARIO
    if name not in SCENARIOS:
        raise UsageError(
            f"no demo scenario {name!r}; use one of: {', '.join(SCENARIOS)} "
            "(tcpwatch demo --list describes them)"
        )
    scenario = SCENARIOS[name]
    workdir = Path(tempfile.mkdtemp(prefix="tcpwatch-demo-"))
    try:
        path = workdir / f"{name}.pcap"
        capture = make_capture(scenario, path, synthesise=synthesise)
        console.print(
            cat.text("demo.scenario", title=cat.text(scenario.key + ".title")),
            style="bold",
        )
        console.print(cat.text(scenario.key + ".about"))
        if capture.synthesised:
            reason = cat.text("demo.reason." + capture.reason)
            console.print(cat.text("demo.synthesised", reason=reason), style="yellow")
        else:
            console.print(cat.text("demo.live"), style="green")
            if capture.dropped:
                dropped = cat.count("demo.dropped", capture.dropped)
                console.print(dropped, style="yellow")
        status = _show(capture.path, views, full=full)
        if write is not None:
            from tcpwatch.cli.paths import write_failed

            try:
                shutil.copyfile(capture.path, write)
            except OSError as error:
                raise write_failed(write, "--write", error) from None
            console.print(cat.text("demo.saved", path=str(write)), style="dim")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raise typer.Exit(status)


def _show(path: Path, views: TimelineOptions, *, full: bool) -> int:
    """Read the demo's capture through the offline pipeline and draw its timelines."""
    from tcpwatch.cli.output import OfflineReport

    report = OfflineReport(
        output_format=None,
        timelines=True,
        selection=[],
        full=full,
        views=views,
    )
    return report.run([str(path)], validate_checksums=False, idle_timeout=300.0)


def _print_list(console: object, lang: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from tcpwatch.demo import SCENARIOS
    from tcpwatch.i18n import catalogue

    assert isinstance(console, Console)
    cat = catalogue(lang)
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 1, 0))
    table.add_column(no_wrap=True, style="bold")
    table.add_column(overflow="fold")
    for scenario in SCENARIOS.values():
        kind = "demo.list.live" if scenario.live else "demo.list.synthesised"
        about = f"{cat.text(scenario.key + '.title')} ({cat.text(kind)})\n"
        about += cat.text(scenario.key + ".about")
        table.add_row(scenario.name, about)
    if console.is_terminal:
        console.print(table)
        return
    # Piped: without the spaces that pad each line out to the table's width.
    with console.capture() as captured:
        console.print(table)
    lines = captured.get().splitlines()
    console.file.write("".join(line.rstrip() + "\n" for line in lines))
