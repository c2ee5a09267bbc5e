"""``tcpwatch live``: capture on an interface and show connections as they happen."""

import enum
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from tcpwatch.errors import UsageError

# Finished connections waiting to be printed. When the reader of the output
# falls this far behind, the capture thread waits, and the packets the kernel
# drops meanwhile show in the drop count.
RECORD_QUEUE_SIZE = 65536
# Segments kept per connection for the dashboard's timeline panel.
# NOTE: memory grows with open connections times this (a few hundred bytes a
# segment), and a long connection's panel stops at its first 2,000 segments.
LIVE_MAX_SEGMENTS = 2000


class LiveFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    zeek = "zeek"


class Backend(enum.StrEnum):
    native = "native"
    tshark = "tshark"


InterfaceArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Interface to capture on, such as eth0 or lo ('any' captures on "
        "all), then optionally a filter expression, as tcpdump takes it: "
        "'tcpwatch live eth0 tcp port 443'. With -i, every word is filter.",
        show_default=False,
        metavar="IFACE EXPRESSION",
    ),
]
InterfaceOption = Annotated[
    str | None,
    typer.Option("--interface", "-i", help="The interface, as tcpdump's -i."),
]
FilterOption = Annotated[
    str,
    typer.Option(
        "--filter",
        "-f",
        help="Capture filter in pcap-filter(7) syntax, such as 'tcp port 443', "
        "run in the kernel.",
    ),
]
SnaplenOption = Annotated[
    int,
    typer.Option(
        "--snaplen",
        "-s",
        min=0,
        help="Bytes kept per frame. 0 keeps 262144 bytes with --write and 256 "
        "otherwise, enough for every header tcpwatch reads.",
    ),
]
CountOption = Annotated[
    int,
    typer.Option(
        "--count", "-c", min=0, help="Stop after this many packets (0: no limit)."
    ),
]
DurationOption = Annotated[
    float,
    typer.Option(
        "--duration", min=0.0, help="Stop after this many seconds (0: no limit)."
    ),
]
WriteOption = Annotated[
    Path | None,
    typer.Option(
        "--write",
        "-w",
        help="Also save every captured frame to this pcap file.",
        dir_okay=False,
    ),
]
NoPromiscOption = Annotated[
    bool,
    typer.Option("--no-promisc", help="Do not put the interface in promiscuous mode."),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="User to switch to once the capture is open (default: SUDO_USER). "
        "The --write file is created as this user.",
    ),
]
FormatOption = Annotated[
    LiveFormat,
    typer.Option(
        "--format",
        "-F",
        help="table: the live dashboard on a terminal, JSON lines when stdout is "
        "not one. json, csv or zeek (conn.log TSV): one record per connection "
        "as it finishes, and the open ones at exit.",
    ),
]
BackendOption = Annotated[
    Backend,
    typer.Option(
        "--backend",
        help="native: a packet socket with a memory-mapped ring. tshark: capture "
        "and dissect with tshark through pyshark (slower).",
    ),
]
IdleTimeoutOption = Annotated[
    float,
    typer.Option(
        "--idle-timeout",
        min=0.001,
        help="Seconds without packets after which a connection is finished.",
    ),
]
MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        "--max-connections",
        min=0,
        help="Connections tracked at once. A new one beyond this first finishes "
        "a connection that has already closed; with none, it evicts the least "
        "recently active (end_reason evicted, counted in the summary). About "
        "2 KB each when half-open. 0 means no limit.",
    ),
]
BufferOption = Annotated[
    int,
    typer.Option(
        "--buffer-size",
        "-B",
        min=2048,
        help="Kernel ring size in KiB, as tcpdump's -B (native backend).",
    ),
]


PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        "-p",
        help="TOML firewall policy to audit every connection against.",
        show_default=False,
    ),
]
TerraformOption = Annotated[
    Path | None,
    typer.Option(
        "--policy-from-terraform",
        help="Terraform file whose aws_security_group resources are the policy.",
        show_default=False,
    ),
]
MemberOption = Annotated[
    list[str] | None,
    typer.Option(
        "--member",
        "-m",
        help="NAME=CIDR: hosts of the aws_security_group with label NAME; repeatable.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("live")(live)


def live(
    interface: InterfaceArgument = None,
    interface_option: InterfaceOption = None,
    bpf_filter: FilterOption = "",
    snaplen: SnaplenOption = 0,
    count: CountOption = 0,
    duration: DurationOption = 0.0,
    write: WriteOption = None,
    no_promisc: NoPromiscOption = False,
    user: UserOption = None,
    output_format: FormatOption = LiveFormat.table,
    backend: BackendOption = Backend.native,
    idle_timeout: IdleTimeoutOption = 300.0,
    max_connections: MaxConnectionsOption = 500_000,
    buffer_size: BufferOption = 32768,
    policy: PolicyOption = None,
    policy_from_terraform: TerraformOption = None,
    member: MemberOption = None,
) -> None:
    """Capture on an interface and show TCP connections as they happen.

    Needs root or CAP_NET_RAW. Stop with Ctrl-C: the --write file is complete,
    and the summary and the connection records are printed.

    Dashboard keys (the table format on a terminal): Up/Down or j/k select a
    connection and show its timeline, PgUp/PgDn and Home/End (or g/G) move
    the selection a page or to the first or last row, [ and ] (or
    Shift+Up/Down) scroll the timeline, Esc follows the newest again, ? or h
    lists the keys, q stops.

    With --policy or
    --policy-from-terraform, every connection is also audited against the
    firewall rules, the audit report is printed at the end, and the exit
    status is 1 when traffic went through a hole in the rules.
    """
    words = list(interface or [])
    name = interface_option or (words.pop(0) if words else None)
    if words:
        expression = " ".join(words)
        if bpf_filter:
            raise UsageError(
                f"two filters given, {bpf_filter!r} with -f and {expression!r} "
                "after the interface; give one, or join them with 'and'"
            )
        bpf_filter = expression
    if not name:
        raise UsageError(
            "no interface given; name one, such as 'tcpwatch live eth0', "
            "or 'any' for all of them"
        )
    options = LiveOptions(
        interface=name,
        bpf_filter=bpf_filter,
        snaplen=snaplen or (262144 if write else 256),
        count=count,
        duration=duration,
        write=str(write) if write else None,
        promiscuous=not no_promisc,
        user=user,
        output_format=output_format,
        backend=backend,
        idle_timeout=idle_timeout,
        buffer_size=buffer_size * 1024,
        max_connections=max_connections,
    )
    session = LiveSession(options)
    if policy or policy_from_terraform or member:
        from tcpwatch.cli.audit import load_policy_option

        session.audit_policy = load_policy_option(
            policy, policy_from_terraform, member or []
        )
    raise typer.Exit(session.run())


@dataclass
class LiveOptions:
    interface: str
    bpf_filter: str
    snaplen: int
    count: int
    duration: float
    write: str | None
    promiscuous: bool
    user: str | None
    output_format: LiveFormat
    backend: Backend
    idle_timeout: float
    buffer_size: int
    max_connections: int = 500_000


class LiveSession:
    """One run of ``tcpwatch live``: open, drop privileges, analyse, report."""

    def __init__(self, options: LiveOptions) -> None:
        self.options = options
        self.dashboard_mode = (
            options.output_format == LiveFormat.table and sys.stdout.isatty()
        )
        self._close_source: Callable[[], None] = lambda: None
        self._listening = ""
        self.audit_policy: Any = None
        """The firewall policy to audit connections against, if any."""
        self.tracker: Any = None

    def run(self) -> int:
        """Run until a limit, a signal or q; return the exit status."""
        from tcpwatch.capture.live_feed import CaptureStatus
        from tcpwatch.flow.tracker import FlowTracker

        options = self.options
        status = CaptureStatus(
            source=options.interface,
            bpf_filter=options.bpf_filter,
            backend=options.backend.value,
        )
        tracker = FlowTracker(
            idle_timeout=options.idle_timeout,
            keep_segments=self.dashboard_mode,
            max_segments=LIVE_MAX_SEGMENTS,
            max_connections=options.max_connections,
        )
        self.tracker = tracker
        decoded = options.backend == Backend.tshark
        if self.dashboard_mode:
            from tcpwatch.render.dashboard import Dashboard

            dashboard = Dashboard(tracker, status, decoded=decoded)
            feed = dashboard.feed
        else:
            record_queue: queue.Queue[Any] = queue.Queue(RECORD_QUEUE_SIZE)
            from tcpwatch.capture.live_feed import FrameFeed

            feed = FrameFeed(tracker, status, record_queue.put, decoded=decoded)
        feed.source_stops = True
        audit = self._attach_audit(feed)
        stop = feed.stop
        batches = self._open_source(status, stop)
        if not self.dashboard_mode:
            batches = _announce(batches, self._listening)
        with _StopOnSignals(stop):
            try:
                if self.dashboard_mode:
                    dashboard.run(batches)
                    dashboard.feed.join()
                    self._print_final_table(dashboard.final_rows())
                else:
                    self._stream_records(feed, batches, record_queue)
            finally:
                stop.set()
                self._close_source()
                self._print_summary(status)
        if audit is not None:
            return self._report_audit(audit)
        return 0

    def _attach_audit(self, feed: Any) -> Any:
        """Chain a ``ConnectionAudit`` in front of the feed's finished callback."""
        if self.audit_policy is None:
            return None
        from tcpwatch.cli.audit import ConnectionAudit

        audit = ConnectionAudit(self.audit_policy)
        forward = feed.on_finished

        def finished(conn: Any) -> None:
            audit.finished(conn)
            if forward is not None:
                forward(conn)

        feed.on_finished = finished
        return audit

    def _report_audit(self, audit: Any) -> int:
        """Print the audit report and return 1 if a hole was found, else 0.

        The report goes to standard error when standard output carries
        connection records, so ``| jq`` still reads only records.
        """
        from tcpwatch.cli.audit import AuditFormat, FailOn, audit_status, print_report

        report = audit.report()
        stream = sys.stdout if self.dashboard_mode else sys.stderr
        print_report(report, [self.options.interface], AuditFormat.report, stream)
        return audit_status(report, {FailOn.hole})

    # -- sources -------------------------------------------------------------

    def _open_source(self, status: Any, stop: threading.Event) -> Iterator[Any]:
        options = self.options
        if options.backend == Backend.tshark:
            from tcpwatch.capture import tshark

            if options.user:
                raise UsageError(
                    "--user works with the native backend only: with --backend "
                    "tshark, dumpcap and tshark run as the user who started tcpwatch"
                )
            tshark.require_tshark()
            source = tshark.TsharkLiveSource(
                options.interface,
                bpf_filter=options.bpf_filter,
                snaplen=options.snaplen,
                promiscuous=options.promiscuous,
                write=options.write,
            )
            self._close_source = source.close
            try:
                source.start(options.count, stop)
            except BaseException:
                source.close()
                raise
            self._listening = (
                f"tcpwatch: listening on {options.interface} through tshark, "
                f"snapshot length {options.snaplen} bytes"
            )
            return source.batches(
                status, stop, count=options.count, duration=options.duration
            )
        from tcpwatch.capture import live

        capture = live.LiveCapture(
            options.interface,
            bpf_filter=options.bpf_filter,
            snaplen=options.snaplen,
            promiscuous=options.promiscuous,
            buffer_size=options.buffer_size,
        )
        writer = None
        try:
            live.drop_privileges(options.user)
            if options.write:
                writer = live.PcapWriter(
                    options.write, capture.link_type, options.snaplen
                )
        except BaseException:
            capture.close()
            raise

        def close() -> None:
            if writer is not None:
                writer.close()
            capture.close()

        self._close_source = close
        link = "EN10MB (Ethernet)"
        if capture.link_type == live.LINKTYPE_LINUX_SLL:
            link = "LINUX_SLL (Linux cooked v1)"
        self._listening = (
            f"tcpwatch: listening on {options.interface}, link-type {link}, "
            f"snapshot length {options.snaplen} bytes"
        )
        return live.capture_batches(
            capture,
            status,
            stop,
            count=options.count,
            duration=options.duration,
            writer=writer,
        )

    # -- output ----------------------------------------------------------------

    def _stream_records(
        self, feed: Any, batches: Iterator[Any], record_queue: "queue.Queue[Any]"
    ) -> None:
        """Print one record per finished connection until the feed ends."""
        from tcpwatch.export import writers
        from tcpwatch.flow.record import build_record

        output_format = self.options.output_format
        writer: writers.RecordWriter
        if output_format == LiveFormat.csv:
            writer = writers.CsvWriter(sys.stdout)
        elif output_format == LiveFormat.zeek:
            opened = time.strftime("%Y-%m-%d-%H-%M-%S")
            writer = writers.ZeekWriter(sys.stdout, opened=opened)
        else:
            writer = writers.JsonLinesWriter(sys.stdout)
        sys.stdout.flush()
        drops = _DropWarnings(feed.status)
        feed.start(batches)
        try:
            while True:
                drops.check()
                try:
                    conn = record_queue.get(timeout=0.25)
                except queue.Empty:
                    if feed.join(timeout=0) and record_queue.empty():
                        break
                    continue
                writer.write(build_record(conn))
                if record_queue.empty():
                    sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (``| head``): not an error. Stop capturing,
            # and point stdout at /dev/null so the exit flush cannot fail.
            feed.stop.set()
            feed.join()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return
        writer.close()

    def _print_final_table(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        from rich.console import Console

        from tcpwatch.render.table import ConnectionTable

        console = Console(highlight=False)
        if not rows:
            console.print("no TCP connections seen", style="yellow")
            return
        from tcpwatch.render.dashboard import KEEP_FINISHED

        title = None
        if len(rows) >= KEEP_FINISHED:
            title = f"the last {len(rows):,} connections"
        console.print(ConnectionTable(rows, title=title))

    def _print_summary(self, status: Any) -> None:
        """Print tcpdump's closing counts and the decoder's on stderr."""
        lines = [f"{status.packets:,} packets captured"]
        if status.received is not None:
            lines.append(f"{status.received:,} packets received by filter")
        if status.dropped is not None:
            lines.append(f"{status.dropped:,} packets dropped by kernel")
        else:
            lines.append("kernel drop count not available")
        noun = "connection" if status.finished == 1 else "connections"
        lines.append(f"{status.finished:,} {noun}; {status.decode.summary()}")
        if self.tracker is not None and self.tracker.evicted:
            lines.append(_evicted_note(self.tracker.evicted))
        print("\n".join(lines), file=sys.stderr, flush=True)


def _evicted_note(evicted: int) -> str:
    noun = "connection" if evicted == 1 else "connections"
    return f"{evicted:,} {noun} evicted at the --max-connections limit"


class _DropWarnings:
    """Warn on stderr while the kernel drops packets, at most every few seconds.

    The dashboard shows the drop count in its header. Without it, this keeps
    drops from going unnoticed until the closing summary.
    """

    INTERVAL = 5.0

    def __init__(self, status: Any) -> None:
        self.status = status
        self.reported = 0
        self.next_time = 0.0

    def check(self) -> None:
        dropped = self.status.dropped or 0
        now = time.monotonic()
        if dropped > self.reported and now >= self.next_time:
            print(
                f"tcpwatch: {dropped:,} packets dropped by kernel so far; "
                "a larger --buffer-size or a narrower --filter can help",
                file=sys.stderr,
                flush=True,
            )
            self.reported = dropped
            self.next_time = now + self.INTERVAL


def _announce(batches: Iterator[Any], message: str) -> Iterator[Any]:
    """Print ``message`` on stderr when the first batch arrives, as tcpdump does.

    The first batch comes once the capture runs, so scripts can wait for the
    line before they start traffic.
    """
    first = True
    for batch in batches:
        if first:
            print(message, file=sys.stderr, flush=True)
            first = False
        yield batch


class _StopOnSignals:
    """Set ``stop`` on SIGINT and SIGTERM instead of raising, while in effect."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._saved: list[Any] = []

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def __enter__(self) -> "_StopOnSignals":
        self._saved = [signal.signal(number, self._handler) for number in self.SIGNALS]
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in zip(self.SIGNALS, self._saved, strict=True):
            signal.signal(number, handler)
