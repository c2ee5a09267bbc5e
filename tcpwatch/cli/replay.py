"""``tcpwatch replay``: play a capture file into the live dashboard at its own pace."""

import itertools
import os
import select
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple, cast

import typer

from tcpwatch.cli.live import LiveFormat
from tcpwatch.cli.read import ReadFilter
from tcpwatch.errors import TcpwatchError, UsageError

Files = Annotated[
    list[Path],
    typer.Argument(
        help="pcap or pcapng files, plain or gzip-compressed; several are replayed "
        "as one capture in timestamp order.",
        show_default=False,
        # tcpwatch's own error names the file and the fix; click's would not.
        readable=False,
    ),
]
Speed = Annotated[
    float,
    typer.Option(
        "--speed",
        min=0.001,
        help="Playback speed: 1 is the recorded pace, 0.1 slow motion, 10 ten "
        "times faster.",
    ),
]
Step = Annotated[
    bool,
    typer.Option(
        "--step",
        help="Advance one segment per key press: Space, Enter, n or the right "
        "arrow; q stops. The dashboard's selection, scroll and help keys work "
        "as without --step. After the last segment, one more of the step keys "
        "ends the replay.",
    ),
]
Format = Annotated[
    LiveFormat,
    typer.Option(
        "--format",
        "-F",
        help="table (the dashboard on a terminal, a table at the end otherwise), "
        "or json, csv or zeek: one record per connection as it finishes.",
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

FORMATS = ("table", "json", "csv", "zeek")
STEP_KEYS = (b" ", b"\n", b"\r", b"n")
"""Keys that release the next segment in step mode, with the right arrow."""
RIGHT_ARROWS = (b"\x1b[C", b"\x1bOC")
"""The right arrow in normal and in application cursor key mode."""
QUIT_KEYS = (b"q", b"Q")
STEP_HINT = "Space/Enter/→ next segment · ↑/↓ j/k select · ? keys · q quit"
"""The dashboard's footer in step mode."""
STEP_HELP = "Space/Enter/n/→: the next segment"
"""The step keys' line among every key, shown after ? or h in step mode."""
END_HINT = "end of capture · Space/Enter/→ or q to finish"
"""The footer once the last segment of a step-mode replay is shown."""


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    files: Files,
    speed: Speed = 1.0,
    step: Step = False,
    output_format: Format = LiveFormat.table,
    idle_timeout: IdleTimeout = 300.0,
    bpf_filter: ReadFilter = "",
) -> None:
    """Play capture files into the live dashboard at their recorded pace.

    Dashboard keys: Up/Down or j/k select a connection, PgUp/PgDn and
    Home/End (or g/G) move the selection a page or to the first or last row,
    [ and ] (or Shift+Up/Down) scroll the timeline, Esc follows the newest
    again, ? or h lists the keys, q stops. With --step: Space, Enter, n or
    Right shows the next segment, and the other keys work as above.
    """
    try:
        status = _replay(
            [str(path) for path in files],
            speed,
            step,
            output_format.value,
            idle_timeout,
            bpf_filter,
        )
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    raise typer.Exit(status)


def _replay(
    paths: list[str],
    speed: float,
    step: bool,
    output_format: str,
    idle_timeout: float,
    bpf_filter: str = "",
) -> int:
    from tcpwatch.capture.replay import ReplayClock, ReplaySource
    from tcpwatch.flow.tracker import FlowTracker

    if output_format not in FORMATS:
        raise UsageError(
            f"unknown format {output_format!r}; use one of: {', '.join(FORMATS)}"
        )
    dashboard = output_format == "table" and sys.stdout.isatty()
    if step and not (dashboard and sys.stdin.isatty()):
        raise UsageError(
            "--step needs a terminal for the dashboard and for key presses; "
            "run it in a terminal without --format or redirection"
        )
    frame_filter = None
    if bpf_filter:
        from tcpwatch.capture.bpf import FrameFilter

        frame_filter = FrameFilter(bpf_filter)  # a bad one fails up front
    source = ReplaySource(paths, frame_filter=frame_filter)
    clock = ReplayClock(speed)
    tracker = FlowTracker(idle_timeout=idle_timeout, keep_segments=dashboard)
    if dashboard:
        connections, replayed = _run_dashboard(paths, source, clock, tracker, step)
    else:
        connections, replayed = _run_plain(source, clock, tracker, output_format)
    return _report(source, connections, replayed)


def _run_plain(
    source: Any, clock: Any, tracker: Any, output_format: str
) -> tuple[int, int]:
    """Replay without a screen: stream records, or print the table at the end.

    Returns the number of connections and of segments replayed.
    """
    from rich.console import Console

    from tcpwatch.capture.replay import paced
    from tcpwatch.export import writers
    from tcpwatch.flow.record import build_record

    writer: Any = None
    if output_format == "json":
        writer = writers.JsonLinesWriter(sys.stdout)
    elif output_format == "csv":
        writer = writers.CsvWriter(sys.stdout)
    elif output_format == "zeek":
        writer = writers.ZeekWriter(sys.stdout)
    rows: list[tuple[int, dict[str, Any]]] = []
    counts = {"connections": 0, "segments": 0}

    def emit(conns: list[Any]) -> None:
        counts["connections"] += len(conns)
        for conn in conns:
            record = build_record(conn)
            if writer is not None:
                writer.write(record)
                sys.stdout.flush()
            else:
                rows.append((conn.number, record))

    for batch in paced(source, clock):
        counts["segments"] += len(batch)
        for segment in batch:
            tracker.process(segment)
        emit(tracker.pop_finished())
    emit(tracker.flush())
    if writer is not None:
        writer.close()
        return counts["connections"], counts["segments"]
    from tcpwatch.cli.read import terminal_width
    from tcpwatch.render.table import ConnectionTable

    rows.sort(key=lambda row: row[0])
    Console(highlight=False).print(
        ConnectionTable(rows), width=terminal_width(), crop=False
    )
    return counts["connections"], counts["segments"]


def _run_dashboard(
    paths: list[str], source: Any, clock: Any, tracker: Any, step: bool
) -> tuple[int, int]:
    """Replay into the live dashboard, then print the table of connections.

    Returns the number of connections and of segments replayed.
    """
    from rich.console import Console

    from tcpwatch.capture.live_feed import CaptureStatus
    from tcpwatch.capture.replay import paced
    from tcpwatch.render.dashboard import KEY_HINT, Dashboard
    from tcpwatch.render.table import ConnectionTable

    names = ", ".join(Path(path).name for path in paths)
    mode = "step" if step else f"×{clock.speed:g}"
    status = CaptureStatus(source=f"replay {names} ({mode})")
    segments = iter(source)
    first = next(segments, None)
    if first is not None:
        # The header's running time counts from the capture's first segment.
        status.started = first.ts
        segments = itertools.chain([first], segments)
        if step:
            clock.hold(first.ts)
        else:
            clock.rebase(first.ts)
    dashboard = Dashboard(
        tracker,
        status,
        clock=clock.now,
        keys=not step,
        decoded=True,
        hint=STEP_HINT if step else KEY_HINT,
        extra_help=(STEP_HELP,) if step else (),
    )
    status.decode = source.decoder.stats
    stepper = _StepKeys(dashboard) if step else None
    batches = paced(
        segments,
        clock,
        step=stepper.wait if stepper else None,
        stop=dashboard.feed.stop.is_set,
    )
    if stepper is not None:
        batches = _wait_after_last(batches, stepper, dashboard)
    try:
        if stepper is not None:
            stepper.start()
        # The feed takes segment batches when built with decoded=True.
        dashboard.run(cast(Any, batches)).join()
    finally:
        if stepper is not None:
            stepper.close()
    rows = dashboard.final_rows()
    if rows:
        Console(highlight=False).print(ConnectionTable(rows))
    return status.finished, status.packets


def _wait_after_last(
    batches: Iterator[Sequence[Any]], stepper: "_StepKeys", dashboard: Any
) -> Iterator[Sequence[Any]]:
    """Yield ``batches``, then wait for one more key before the replay ends.

    Without the wait, the last segment would end the replay, and the screen
    would close before anyone saw that segment on it.
    """
    yield from batches
    if dashboard.feed.stop.is_set():
        return
    dashboard.hint = END_HINT
    stepper.discard_pending()
    stepper.wait(None)


def _report(source: Any, connections: int, replayed: int) -> int:
    """Print the summary line and any file error; return the exit status.

    After a whole replay the line is the one ``tcpwatch read`` prints. A
    replay stopped early counts the segments replayed, because the decoder's
    frame counts include segments read ahead that were never shown.
    """
    noun = "connection" if connections == 1 else "connections"
    if source.complete:
        summary = f"{connections:,} {noun}; {source.decoder.stats.summary()}"
        if source.reorder.reordered:
            summary += f"; {source.reorder.reordered:,} segments out of timestamp order"
        if source.frame_filter is not None and source.frame_filter.rejected:
            summary += (
                f"; {source.frame_filter.rejected:,} more left out by the filter "
                f"{source.frame_filter.expression!r}"
            )
    else:
        summary = (
            f"{connections:,} {noun}; replay stopped after {replayed:,} "
            "TCP segments, before the end of the capture"
        )
    print(summary, file=sys.stderr)
    for error in source.capture.errors:
        print(
            f"tcpwatch: error: {error}; the packets before it were replayed",
            file=sys.stderr,
        )
    return 1 if source.capture.errors else 0


class _StepKeys:
    """Wait for a key press before each segment, with the terminal in cbreak mode.

    The dashboard reads no keys itself in step mode, so keys other than the
    step keys and q are passed on to it here.
    """

    def __init__(self, dashboard: Any) -> None:
        self.dashboard = dashboard
        self.stop = dashboard.feed.stop
        self.fd = sys.stdin.fileno()
        self._saved: Any = None
        self._pending = 0

    def start(self) -> None:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    def close(self) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def discard_pending(self) -> None:
        """Forget step keys typed ahead, so the next ``wait`` takes a new key."""
        self._pending = 0

    def wait(self, segment: object) -> bool:
        """Block until a step key (True) or q (False); False once stopped.

        Keys typed faster than the segments are shown are kept, so five
        quick presses release five segments.
        """
        while not self.stop.is_set():
            if self._pending:
                self._pending -= 1
                return True
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            typed = count_keys(os.read(self.fd, 64))
            self._pass_on(typed.others)
            if typed.quit_requested:
                self.stop.set()
                return False
            self._pending += typed.steps
        return False

    def _pass_on(self, keys: list[bytes]) -> None:
        from tcpwatch.render.dashboard_keys import press_keys

        for key in keys:
            press_keys(self.dashboard, key)


class StepInput(NamedTuple):
    """The keys of one read from the terminal in step mode."""

    steps: int
    """Step keys: each releases one segment."""
    quit_requested: bool
    """Whether q was typed. Keys after it are left out."""
    others: list[bytes]
    """Every other key, in the order typed, for the dashboard."""


def count_keys(typed: bytes) -> StepInput:
    """Count the step keys in ``typed``, and collect the dashboard's keys."""
    from tcpwatch.render.dashboard_keys import split_keys

    steps = 0
    others: list[bytes] = []
    for key in split_keys(typed):
        if key in QUIT_KEYS:
            return StepInput(steps, True, others)
        if key in STEP_KEYS or key in RIGHT_ARROWS:
            steps += 1
        else:
            others.append(key)
    return StepInput(steps, False, others)
