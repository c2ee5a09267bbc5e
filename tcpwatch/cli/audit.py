"""``tcpwatch audit``: check the connections in captures against firewall rules.

Exit status: 0 when nothing that ``--fail-on`` selects was found (by default,
no hole), and 1 when something was. 2 means an invalid option, an invalid
policy, or a policy or capture file that could not be opened. 3 means a
capture file broke part way and the part that was read held nothing that
``--fail-on`` selects.

``load_policy_option``, ``ConnectionAudit``, ``audit_status`` and
``print_report`` are meant for commands that audit live traffic too.
"""

import enum
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from tcpwatch.errors import TcpwatchError, UsageError

if TYPE_CHECKING:
    from tcpwatch.audit.classifier import AuditReport
    from tcpwatch.audit.detect import Thresholds
    from tcpwatch.audit.policy import Policy
    from tcpwatch.flow.connection import Connection

EXIT_CLEAN = 0
EXIT_FOUND = 1
EXIT_ERROR = 2
EXIT_PARTIAL = 3


class AuditFormat(enum.StrEnum):
    report = "report"
    json = "json"


class FailOn(enum.StrEnum):
    """Finding kinds that make the exit status 1."""

    hole = "hole"
    broken_service = "broken_service"
    blocked = "blocked"
    scan = "scan"
    flood = "flood"
    unsupported = "unsupported"


Captures = Annotated[
    list[Path],
    typer.Argument(
        help="pcap or pcapng files, plain or gzip-compressed; several are read as "
        "one capture in timestamp order.",
        show_default=False,
        # tcpwatch's own error names the file and the fix; click's would not.
        readable=False,
    ),
]
PolicyFile = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        "-p",
        help="TOML policy file: groups of hosts and their inbound and egress rules.",
        show_default=False,
    ),
]
TerraformFile = Annotated[
    Path | None,
    typer.Option(
        "--policy-from-terraform",
        help="Terraform file whose aws_security_group resources are the policy.",
        show_default=False,
    ),
]
Members = Annotated[
    list[str] | None,
    typer.Option(
        "--member",
        "-m",
        help="NAME=CIDR: hosts of the aws_security_group with label NAME; "
        "repeatable, several CIDRs may be joined by commas.",
        show_default=False,
    ),
]
Format = Annotated[
    AuditFormat,
    typer.Option("--format", "-F", help="report (for people) or json."),
]
Examples = Annotated[
    int,
    typer.Option(
        "--examples",
        min=0,
        help="Connections listed per finding; 0 lists them all.",
    ),
]
ScanPorts = Annotated[
    int,
    typer.Option(
        "--scan-ports",
        min=1,
        help="Distinct ports of one host a source must fail on within "
        "--scan-window to be reported as a vertical scan.",
    ),
]
ScanHosts = Annotated[
    int,
    typer.Option(
        "--scan-hosts",
        min=1,
        help="Distinct hosts a source must fail on, on one port, within "
        "--scan-window to be reported as a horizontal scan.",
    ),
]
ScanWindow = Annotated[
    float,
    typer.Option("--scan-window", min=0.0, help="Scan window in seconds."),
]
FloodAttempts = Annotated[
    int,
    typer.Option(
        "--flood-attempts",
        min=1,
        help="Half-open attempts to one host and port within --flood-window "
        "that are reported as a SYN flood.",
    ),
]
FloodWindow = Annotated[
    float,
    typer.Option("--flood-window", min=0.0, help="Flood window in seconds."),
]
FailOnOption = Annotated[
    list[FailOn] | None,
    typer.Option(
        "--fail-on",
        help="Finding kind that makes the exit status 1; repeatable. Default: hole.",
        show_default=False,
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
ValidateChecksums = Annotated[
    bool,
    typer.Option(
        "--validate-checksums",
        help="Drop segments whose IPv4 or TCP checksum is wrong.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    captures: Captures,
    policy: PolicyFile = None,
    policy_from_terraform: TerraformFile = None,
    member: Members = None,
    output_format: Format = AuditFormat.report,
    examples: Examples = 10,
    scan_ports: ScanPorts = 15,
    scan_hosts: ScanHosts = 25,
    scan_window: ScanWindow = 300.0,
    flood_attempts: FloodAttempts = 100,
    flood_window: FloodWindow = 10.0,
    fail_on: FailOnOption = None,
    idle_timeout: IdleTimeout = 300.0,
    validate_checksums: ValidateChecksums = False,
) -> None:
    """Check every connection attempt in captures against firewall rules.

    Each attempt is allowed, a broken service (allowed but refused or
    unanswered), a hole (denied yet accepted) or blocked (denied and refused
    or unanswered). SYN scans and SYN floods are reported with their evidence.
    Exit status: 0 clean, 1 a hole (or what --fail-on selects) was found,
    2 invalid input, 3 a capture file broke part way.
    """
    from tcpwatch.audit.detect import Thresholds

    try:
        loaded = load_policy_option(policy, policy_from_terraform, member or [])
        thresholds = Thresholds(
            scan_ports=scan_ports,
            scan_hosts=scan_hosts,
            scan_window=scan_window,
            flood_attempts=flood_attempts,
            flood_window=flood_window,
        )
        connection_audit = ConnectionAudit(loaded, thresholds, examples=examples)
        paths = [str(path) for path in captures]
        broken = _read(paths, connection_audit, idle_timeout, validate_checksums)
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_ERROR) from None
    report = connection_audit.report()
    print_report(report, paths, output_format)
    status = audit_status(report, set(fail_on or [FailOn.hole]))
    if status == EXIT_CLEAN and broken:
        status = EXIT_PARTIAL
    raise typer.Exit(status)


def load_policy_option(
    policy: Path | None, terraform: Path | None, members: list[str]
) -> "Policy":
    """Load the policy given by ``--policy`` or ``--policy-from-terraform``.

    Raises:
        UsageError: neither or both are given, or ``--member`` is given
            without a Terraform file.
        PolicyError: the file cannot be read or is invalid.
    """
    if (policy is None) == (terraform is None):
        raise UsageError(
            "give exactly one of --policy FILE.toml and --policy-from-terraform FILE.tf"
        )
    if policy is not None:
        if members:
            raise UsageError(
                "--member applies to --policy-from-terraform only; in a TOML "
                "policy, list each group's hosts under 'hosts'"
            )
        from tcpwatch.audit.policyfile import load_policy

        return load_policy(policy)
    from tcpwatch.audit.terraform import load_terraform, parse_members

    assert terraform is not None
    return load_terraform(terraform, parse_members(members))


class ConnectionAudit:
    """Audit connections as a tracker finishes them, from any thread.

    Pass ``finished`` as the callback that receives finished connections
    (``FrameFeed``'s ``on_finished``, or ``read_captures``'s), and call
    ``report`` for the summary so far. A lock serialises both, so a capture
    thread may add while a display thread reports.
    """

    def __init__(
        self,
        policy: "Policy",
        thresholds: "Thresholds | None" = None,
        examples: int = 10,
    ) -> None:
        from tcpwatch.audit.classifier import AuditClassifier

        self.classifier = AuditClassifier(policy, thresholds, examples=examples)
        self._lock = threading.Lock()

    def finished(self, conn: "Connection") -> None:
        """Audit one finished connection."""
        from tcpwatch.flow.record import build_record

        record = build_record(conn)
        with self._lock:
            self.classifier.add(record)

    def report(self) -> "AuditReport":
        with self._lock:
            return self.classifier.report()


def audit_status(report: "AuditReport", fail_on: set[FailOn]) -> int:
    """Return ``EXIT_FOUND`` if the report contains any kind in ``fail_on``."""
    from tcpwatch.audit.classifier import AuditClass

    present = {
        FailOn.hole: report.counts[AuditClass.HOLE] > 0,
        FailOn.broken_service: report.counts[AuditClass.BROKEN_SERVICE] > 0,
        FailOn.blocked: report.counts[AuditClass.BLOCKED] > 0,
        FailOn.scan: bool(report.scans),
        FailOn.flood: bool(report.floods),
        FailOn.unsupported: bool(report.policy.unsupported),
    }
    return EXIT_FOUND if any(present[kind] for kind in fail_on) else EXIT_CLEAN


def _read(
    paths: list[str],
    connection_audit: ConnectionAudit,
    idle_timeout: float,
    validate_checksums: bool,
) -> bool:
    """Audit every connection in ``paths``; return True if a file broke part way."""
    from rich.console import Console

    from tcpwatch.flow.tracker import FlowTracker
    from tcpwatch.pipeline import read_captures

    tracker = FlowTracker(idle_timeout=idle_timeout)
    result = read_captures(
        paths,
        tracker,
        connection_audit.finished,
        validate_checksums=validate_checksums,
    )
    stderr = Console(file=sys.stderr, highlight=False)
    noun = "connection" if result.connections == 1 else "connections"
    summary = f"{result.connections:,} {noun}; {result.stats.summary()}"
    if result.reordered:
        summary += f"; {result.reordered:,} segments out of timestamp order"
    stderr.print(
        summary,
        style="dim",
        soft_wrap=True,
        markup=False,
    )
    for error in result.errors:
        stderr.print(
            f"tcpwatch: error: {error}; the packets before it were audited",
            style="red",
            soft_wrap=True,
            markup=False,
        )
    return bool(result.errors)


def print_report(
    report: "AuditReport",
    sources: list[str],
    output_format: AuditFormat,
    stream: TextIO | None = None,
) -> None:
    """Print the report as a rich report or one JSON document.

    ``stream`` defaults to standard output; ``tcpwatch live`` passes standard
    error when standard output carries connection records.
    """
    from rich.console import Console

    from tcpwatch.audit.report import AuditView, report_json

    stream = stream or sys.stdout
    if output_format == AuditFormat.json:
        json.dump(report_json(report, sources), stream, indent=2)
        stream.write("\n")
        return
    from tcpwatch.cli.read import terminal_width

    console = Console(file=stream, highlight=False)
    width = None if console.is_terminal else terminal_width()
    console.print(AuditView(report, sources), width=width, crop=False)
