"""Audits of real kernel TCP traffic on loopback, captured with tcpdump.

Linux routes all of 127.0.0.0/8 to lo, so binding clients and servers to
different addresses in 127.8.0.0/16 makes a small three-tier network on one
machine: a client, a load balancer, app servers and databases. tcpdump on lo,
filtered to that network, records what the kernel really sent. A refused
attempt is a real RST from a port with no listener. An unanswered attempt is a
SYN that the kernel drops because the listener's accept queue is full.
"""

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tcpwatch.audit.classifier import AuditClass, AuditClassifier, AuditReport
from tcpwatch.audit.policyfile import load_policy
from tcpwatch.audit.report import AuditView
from tcpwatch.cli.app import app
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import read_captures

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        not hasattr(os, "geteuid")
        or os.geteuid() != 0
        or shutil.which("tcpdump") is None,
        reason="needs root and tcpdump to capture on lo",
    ),
]

DATA = Path(__file__).parent / "data" / "audit"
NETWORK = "127.8.0.0/16"
CLIENT = "127.8.0.2"
SCANNER = "127.8.0.3"
LB = "127.8.0.10"
APP = "127.8.0.20"
APP_DOWN = "127.8.0.21"
"""An app server address with no listener: HTTP to it is refused."""
DB = "127.8.0.30"
DB_FULL = "127.8.0.31"
"""A database whose accept queue is full: SYNs to it go unanswered."""
CLIENT_PORT = 9000
SCANNED_PORTS = range(20000, 20020)
SWEPT_HOSTS = [f"127.8.1.{n}" for n in range(1, 31)]
MEMBERS = ["lb=127.8.0.10/32", "app=127.8.0.20/31", "db=127.8.0.30/31"]


class Server:
    """A listener that answers each connection's request with ``pong``."""

    def __init__(self, address: str, port: int, backlog: int = 16) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((address, port))
        self.socket.listen(backlog)
        self.thread: threading.Thread | None = None

    def serve(self) -> "Server":
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()
        return self

    def _accept_loop(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return  # the listener was closed
            with connection:
                connection.settimeout(5)
                connection.recv(100)
                connection.sendall(b"pong")
                connection.recv(100)  # b"" once the client sends FIN

    def close(self) -> None:
        # shutdown wakes the accept() in the serving thread before close.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def exchange(source: str, target: str, port: int) -> None:
    """Connect from ``source``, send a request, read the reply, close with FIN."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.bind((source, 0))
        client.settimeout(5)
        client.connect((target, port))
        client.sendall(b"ping")
        assert client.recv(100) == b"pong"


def refused(source: str, target: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.bind((source, 0))
        client.settimeout(5)
        with pytest.raises(ConnectionRefusedError):
            client.connect((target, port))


def unanswered(source: str, target: str, port: int) -> None:
    """Try to connect and give up after the first SYN retransmission (about 1 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.bind((source, 0))
        client.settimeout(1.3)
        with pytest.raises(TimeoutError):
            client.connect((target, port))


def connect_and_hold(source: str, target: str, port: int) -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.bind((source, 0))
    client.settimeout(5)
    client.connect((target, port))
    return client


def run_network() -> None:
    """Make every kind of traffic the audit tests check, in a fixed order."""
    servers = [
        Server(LB, 443).serve(),
        Server(APP, 80).serve(),
        Server(DB, 3306).serve(),
        Server(CLIENT, CLIENT_PORT).serve(),
    ]
    # listen(0) lets one connection wait in the accept queue; with it full,
    # Linux drops further SYNs without an answer.
    full = Server(DB_FULL, 3306, backlog=0)
    held = connect_and_hold(APP, DB_FULL, 3306)
    try:
        exchange(CLIENT, LB, 443)  # allowed: HTTPS from anywhere
        exchange(LB, APP, 80)  # allowed: HTTP from the load balancer
        exchange(APP, DB, 3306)  # allowed: MySQL from the app servers
        exchange(CLIENT, DB, 3306)  # hole: the client reaches the database
        exchange(DB, CLIENT, CLIENT_PORT)  # hole: the database has no egress
        refused(CLIENT, APP, 8080)  # blocked: no rule, no listener
        refused(LB, APP_DOWN, 80)  # broken service: allowed, refused
        unanswered(APP, DB_FULL, 3306)  # broken service: allowed, no answer
        for port in SCANNED_PORTS:  # vertical scan of the database
            refused(SCANNER, DB, port)
        exchange(SCANNER, DB, 3306)  # the scan finds the open port: a hole
        for host in SWEPT_HOSTS:  # horizontal scan outside every group
            refused(SCANNER, host, 22)
    finally:
        held.close()
        full.close()
        for server in servers:
            server.close()


def wait_for_text(stream: Any, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.1)
        if ready:
            line = stream.readline()
            if not line:
                return False
            if text in line:
                return True
    return False


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("audit") / "three-tier.pcap"
    # -Z root: tcpdump's own user could not write into the private directory.
    # --immediate-mode: packets are written at once, not lost when it stops.
    command = ["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-Z", "root"]
    command += ["-s", "256", "-w", str(path), "net", NETWORK]
    tcpdump = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_text(tcpdump.stderr, "listening on", timeout=10)
        run_network()
        time.sleep(0.3)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
    yield path


def audit(capture: Path, classifier: AuditClassifier) -> AuditReport:
    def finished(conn: Any) -> None:
        classifier.add(build_record(conn))

    result = read_captures([str(capture)], FlowTracker(), finished)
    assert not result.errors
    return classifier.report()


def findings(report: AuditReport, kind: AuditClass) -> list[Any]:
    return [finding for finding in report.findings if finding.audit_class == kind]


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


# -- TOML policy -----------------------------------------------------------


@pytest.fixture(scope="module")
def toml_report(capture: Path) -> AuditReport:
    policy = load_policy(DATA / "three-tier.toml")
    return audit(capture, AuditClassifier(policy, examples=0))


def test_audit_loopback_allowed(toml_report: AuditReport) -> None:
    allowed = {
        (finding.rules[0].name, finding.port): finding
        for finding in findings(toml_report, AuditClass.ALLOWED)
    }
    assert set(allowed) == {
        ("lb inbound #1", 443),
        ("app inbound #1", 80),
        ("db inbound #1", 3306),
    }
    assert allowed[("lb inbound #1", 443)].sources.counts == {CLIENT: 1}
    assert allowed[("app inbound #1", 80)].sources.counts == {LB: 1}
    # The app's exchange with the database and the connection that filled the
    # accept queue of the second database.
    assert allowed[("db inbound #1", 3306)].count == 2
    assert toml_report.counts[AuditClass.ALLOWED] == 4


def test_audit_loopback_holes(toml_report: AuditReport) -> None:
    holes = {str(finding.missing[0]): finding for finding in toml_report.holes}
    inbound = "no inbound rule of db allows tcp/3306 from hosts outside every group"
    egress = "no egress rule of db allows tcp/9000 to hosts outside every group"
    assert set(holes) == {inbound, egress}
    assert holes[inbound].sources.counts == {CLIENT: 1, SCANNER: 1}
    assert holes[inbound].from_scanners == 1
    assert holes[egress].sources.counts == {DB: 1}
    assert holes[egress].destinations.counts == {CLIENT: 1}
    assert toml_report.counts[AuditClass.HOLE] == 3


def test_audit_loopback_broken_services(toml_report: AuditReport) -> None:
    broken = {
        finding.rules[0].name: finding
        for finding in findings(toml_report, AuditClass.BROKEN_SERVICE)
    }
    assert set(broken) == {"app inbound #1", "db inbound #1"}
    assert broken["app inbound #1"].outcomes["rejected"] == 1
    assert broken["app inbound #1"].destinations.counts == {APP_DOWN: 1}
    assert broken["db inbound #1"].outcomes["no_reply"] == 1
    assert broken["db inbound #1"].destinations.counts == {DB_FULL: 1}
    # The app's egress rule allows MySQL too: both rules decided the attempt.
    assert [rule.name for rule in broken["db inbound #1"].rules] == [
        "db inbound #1",
        "app egress #1",
    ]


def test_audit_loopback_blocked(toml_report: AuditReport) -> None:
    blocked = findings(toml_report, AuditClass.BLOCKED)
    by_port = {finding.port: finding for finding in blocked}
    assert set(by_port) == {8080, *SCANNED_PORTS}
    assert by_port[8080].sources.counts == {CLIENT: 1}
    assert by_port[8080].from_scanners == 0
    assert str(by_port[8080].missing[0]) == (
        "no inbound rule of app allows tcp/8080 from hosts outside every group"
    )
    assert all(by_port[port].from_scanners == 1 for port in SCANNED_PORTS)
    assert toml_report.counts[AuditClass.BLOCKED] == 1 + len(SCANNED_PORTS)


def test_audit_loopback_not_covered(toml_report: AuditReport) -> None:
    assert toml_report.counts[AuditClass.NOT_COVERED] == len(SWEPT_HOSTS)
    assert toml_report.not_covered.outcomes["rejected"] == len(SWEPT_HOSTS)


def test_audit_loopback_unused_paths(toml_report: AuditReport) -> None:
    unused = [(path.label, failed) for path, failed in toml_report.unused]
    assert unused == [("lb inbound tcp/443 from ::/0", 0)]


def test_audit_loopback_scans(toml_report: AuditReport) -> None:
    scans = {scan.kind: scan for scan in toml_report.scans}
    assert set(scans) == {"vertical", "horizontal"}
    vertical = scans["vertical"]
    assert vertical.source == SCANNER
    assert vertical.target == DB
    assert vertical.distinct == len(SCANNED_PORTS)
    assert vertical.rejected == len(SCANNED_PORTS)
    assert vertical.probed == ("20000-20019",)
    assert vertical.accepted == ("3306",)
    horizontal = scans["horizontal"]
    assert horizontal.source == SCANNER
    assert horizontal.target == "tcp/22"
    assert horizontal.distinct == len(SWEPT_HOSTS)
    assert horizontal.probed == tuple(SWEPT_HOSTS)
    assert toml_report.floods == []


def test_audit_loopback_report_text(toml_report: AuditReport) -> None:
    console = Console(file=None, width=160, record=True, color_system=None)
    console.print(AuditView(toml_report))
    text = console.export_text()
    assert "holes: denied by the policy, yet accepted (3 connections)" in text
    assert "no egress rule of db allows tcp/9000 to hosts outside every group" in text
    assert "vertical scan: 127.8.0.3 probed 20 ports of 127.8.0.30" in text
    assert "20 more findings with 20 attempts on 20000-20019" in text


# -- Terraform policy through the command line -----------------------------


def test_audit_loopback_terraform_three_tier(capture: Path) -> None:
    members = [arg for member in MEMBERS for arg in ("--member", member)]
    status, output = run_cli(
        "audit",
        "--policy-from-terraform",
        str(DATA / "three-tier.tf"),
        *members,
        "--format",
        "json",
        str(capture),
    )
    document = json.loads(output)
    classes = document["classes"]
    assert status == 1
    assert classes["hole"] == 3
    assert classes["allowed"] == 4
    assert classes["broken_service"] == 2
    assert classes["blocked"] == 1 + len(SCANNED_PORTS)
    assert classes["not_covered"] == len(SWEPT_HOSTS)
    holes = [f for f in document["findings"] if f["class"] == "hole"]
    assert {hole["missing"][0]["text"] for hole in holes} == {
        "no inbound rule of db allows tcp/3306 from hosts outside every group",
        "no egress rule of db allows tcp/9000 to hosts outside every group",
    }
    allowed_rules = sorted(
        f["rules"][0] for f in document["findings"] if f["class"] == "allowed"
    )
    assert allowed_rules == [
        "aws_security_group.app ingress #1: tcp/80 from lb "
        "(HTTP from the load balancer)",
        "aws_security_group.db ingress #1: tcp/3306 from app "
        "(MySQL from the app servers)",
        "aws_security_group.lb ingress #1: tcp/443 from 0.0.0.0/0, ::/0 "
        "(HTTPS from anywhere)",
    ]
    assert [path["peer"] for path in document["unused_paths"]] == ["::/0"]
    assert document["policy"]["unsupported"] == []
    assert any(
        "aws_security_group.db has no egress block" in note
        for note in document["policy"]["notes"]
    )


def test_audit_loopback_terraform_no_holes(capture: Path) -> None:
    # With members for the load balancer only, the app and database groups
    # apply to no host: their traffic is not covered, so nothing is a hole.
    status, _ = run_cli(
        "audit",
        "--policy-from-terraform",
        str(DATA / "three-tier.tf"),
        "--member",
        "lb=127.8.0.10/32",
        "--format",
        "json",
        str(capture),
    )
    assert status == 0
