"""The audit command on crafted captures: floods and scans at scale, exit status.

scapy writes the captures, so these tests need no root. Real kernel traffic
is audited in test_audit_loopback.py.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tcpwatch.cli.app import app

WEB = "10.1.0.5"
CLIENT = "198.51.100.4"
SCANNER = "198.51.100.66"
FLOOD_SYNS = 300
SCANNED = [port for port in range(1, 1025) if port != 443]

POLICY = f"""
[groups.web]
hosts = ["{WEB}"]
inbound = [{{ ports = 443, from = ["0.0.0.0/0"] }}]
"""
STRICT_POLICY = f"""
[groups.web]
hosts = ["{WEB}"]
inbound = [{{ ports = 8443, from = ["0.0.0.0/0"] }}]
"""


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, **fields: Any) -> Any:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    return (
        Ether()
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags=flags, **fields)
    )


def timed(packets: list[Any], start: float, step: float) -> list[Any]:
    for index, packet in enumerate(packets):
        packet.time = start + index * step
    return packets


def exchange(
    client: str, server: str, sport: int, port: int, start: float
) -> list[Any]:
    """Return a clean exchange: handshake, one request and reply, FINs."""
    return timed(
        [
            tcp(client, server, sport, port, "S", seq=100),
            tcp(server, client, port, sport, "SA", seq=900, ack=101),
            tcp(client, server, sport, port, "A", seq=101, ack=901),
            tcp(client, server, sport, port, "PA", seq=101, ack=901) / (b"q" * 10),
            tcp(server, client, port, sport, "PA", seq=901, ack=111) / (b"r" * 90),
            tcp(client, server, sport, port, "FA", seq=111, ack=991),
            tcp(server, client, port, sport, "FA", seq=991, ack=112),
            tcp(client, server, sport, port, "A", seq=112, ack=992),
        ],
        start,
        0.001,
    )


def syn_flood(start: float) -> list[Any]:
    """Return SYNs from spoofed sources, each answered by a SYN-ACK and no more."""
    packets = []
    for index in range(FLOOD_SYNS):
        source = f"203.0.{index // 200}.{index % 200 + 1}"
        sport = 1024 + index
        packets += [
            tcp(source, WEB, sport, 443, "S", seq=5000 + index),
            tcp(WEB, source, 443, sport, "SA", seq=7000, ack=5001 + index),
        ]
    return timed(packets, start, 0.002)


def port_scan(start: float) -> list[Any]:
    """Return a SYN scan of ports 1-1024 but 443, each refused with RST."""
    packets = []
    for port in SCANNED:
        packets += [
            tcp(SCANNER, WEB, 40000, port, "S", seq=1),
            tcp(WEB, SCANNER, port, 40000, "RA", seq=0, ack=2),
        ]
    return timed(packets, start, 0.0005)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scapy.utils import wrpcap

    path = tmp_path_factory.mktemp("audit") / "crafted.pcap"
    packets = exchange(CLIENT, WEB, 50000, 443, 1000.0)
    packets += syn_flood(1001.0)
    packets += port_scan(1010.0)
    wrpcap(str(path), packets)
    return path


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def run(*args: str | Path) -> Any:
    return CliRunner().invoke(app, ["audit", *map(str, args)])


def audit_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    result = run("--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_audit_cli_flood_found(crafted: Path, policy: Path) -> None:
    status, document = audit_json("--policy", policy, crafted)
    [flood] = document["floods"]
    assert status == 0
    assert flood["destination"] == f"{WEB}:443"
    assert flood["half_open"] == FLOOD_SYNS
    assert flood["unacknowledged"] == FLOOD_SYNS
    assert flood["sources"] == FLOOD_SYNS
    # One SYN every 4 ms: 2,501 fit in 10 s, so the whole flood is the peak.
    assert flood["peak"] == FLOOD_SYNS


def test_audit_cli_vertical_scan_found(crafted: Path, policy: Path) -> None:
    _, document = audit_json("--policy", policy, crafted)
    [scan] = document["scans"]
    blocked = [f for f in document["findings"] if f["class"] == "blocked"]
    assert scan["kind"] == "vertical"
    assert scan["source"] == SCANNER
    assert scan["distinct"] == len(SCANNED)
    assert scan["rejected"] == len(SCANNED)
    assert scan["probed"] == ["1-442", "444-1024"]
    assert len(blocked) == len(SCANNED)
    assert all(finding["from_scanners"] == 1 for finding in blocked)
    assert document["classes"]["blocked"] == len(SCANNED)


def test_audit_cli_classes_and_json_fields(crafted: Path, policy: Path) -> None:
    _, document = audit_json("--policy", policy, crafted)
    allowed = [f for f in document["findings"] if f["class"] == "allowed"]
    assert document["classes"] == {
        "hole": 0,
        "broken_service": 0,
        "blocked": len(SCANNED),
        "allowed": FLOOD_SYNS + 1,
        "not_covered": 0,
    }
    assert document["records"] == FLOOD_SYNS + 1 + len(SCANNED)
    assert document["captures"] == [str(crafted)]
    assert document["policy"]["groups"]["web"]["egress"] is None
    assert allowed[0]["rules"] == ["web inbound #1: tcp/443 from 0.0.0.0/0"]
    assert allowed[0]["connections"] == FLOOD_SYNS + 1
    assert len(allowed[0]["examples"]) == 10
    assert allowed[0]["omitted"] == FLOOD_SYNS + 1 - 10
    assert document["unused_paths"] == []
    assert document["thresholds"]["scan_ports"] == 15


@pytest.mark.parametrize(
    ("options", "floods", "scans"),
    [
        ([], 1, 1),
        (["--flood-attempts", str(FLOOD_SYNS + 1)], 0, 1),
        # One flood SYN every 4 ms: 126 of them within 0.5 s.
        (["--flood-window", "0.5", "--flood-attempts", "126"], 1, 1),
        (["--flood-window", "0.5", "--flood-attempts", "127"], 0, 1),
        (["--scan-ports", str(len(SCANNED) + 1)], 1, 0),
        # One scan SYN every 1 ms: 101 of them within 0.1 s.
        (["--scan-window", "0.1", "--scan-ports", "101"], 1, 1),
        (["--scan-window", "0.1", "--scan-ports", "102"], 1, 0),
    ],
)
def test_audit_cli_thresholds(
    crafted: Path, policy: Path, options: list[str], floods: int, scans: int
) -> None:
    _, document = audit_json("--policy", policy, *options, crafted)
    assert len(document["floods"]) == floods
    assert len(document["scans"]) == scans


@pytest.mark.parametrize(
    ("fail_on", "status"),
    [
        ([], 0),
        (["--fail-on", "flood"], 1),
        (["--fail-on", "scan"], 1),
        (["--fail-on", "blocked"], 1),
        (["--fail-on", "broken_service"], 0),
        (["--fail-on", "broken_service", "--fail-on", "scan"], 1),
        (["--fail-on", "unsupported"], 0),
    ],
)
def test_audit_cli_fail_on(
    crafted: Path, policy: Path, fail_on: list[str], status: int
) -> None:
    assert run("--policy", policy, *fail_on, crafted).exit_code == status


def test_audit_cli_hole_exit_status(crafted: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text(STRICT_POLICY)
    status, document = audit_json("--policy", strict, crafted)
    assert status == 1
    assert document["classes"]["hole"] == FLOOD_SYNS + 1
    assert document["findings"][0]["missing"][0]["text"] == (
        "no inbound rule of web allows tcp/443 from hosts outside every group"
    )
    assert document["unused_paths"][0]["peer"] == "0.0.0.0/0"


def test_audit_cli_report_text(crafted: Path, policy: Path) -> None:
    result = run("--policy", policy, crafted)
    text = result.stdout
    assert "audit of 1,324 connection attempts against" in text
    assert f"SYN flood on {WEB}:443" in text
    assert f"vertical scan: {SCANNER} probed 1,023 ports of {WEB}" in text
    assert "1,023 findings with 1,023 attempts on 1-442, 444-1024 came only" in (
        text.replace("\n", " ")
    )
    assert "1,324 connections" in result.stderr


def test_audit_cli_fail_on_unsupported(crafted: Path, tmp_path: Path) -> None:
    terraform = tmp_path / "main.tf"
    terraform.write_text(
        'resource "aws_security_group" "web" {\n'
        '  ingress {\n    from_port = 443\n    to_port = 443\n    protocol = "tcp"\n'
        "    cidr_blocks = var.allowed\n  }\n}\n"
    )
    args = ["--policy-from-terraform", terraform, "--member", f"web={WEB}"]
    status, document = audit_json(*args, crafted)
    assert status == 1  # without sources the rule allows nothing: holes
    assert document["policy"]["unsupported"] == [
        "aws_security_group.web ingress #1: cidr_blocks '${var.allowed}' is not a "
        "literal list"
    ]
    result = run(*args, "--fail-on", "unsupported", crafted)
    assert "not read from the policy (the real rules may allow more)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --policy FILE.toml and --policy-from-terraform"),
        (["--policy", "p.toml", "--policy-from-terraform", "m.tf"], "exactly one"),
        (["--policy", "POLICY", "--member", "db=10.0.0.0/8"], "--member applies to"),
        (["--policy", "missing.toml"], "cannot read policy file 'missing.toml'"),
    ],
)
def test_audit_cli_usage_errors(
    crafted: Path, policy: Path, args: list[str], message: str
) -> None:
    args = [str(policy) if arg == "POLICY" else arg for arg in args]
    result = run(*args, crafted)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_audit_cli_missing_capture(policy: Path, tmp_path: Path) -> None:
    result = run("--policy", policy, tmp_path / "none.pcap")
    assert result.exit_code == 2
    assert "none.pcap" in result.stderr


def test_audit_cli_truncated_capture(
    crafted: Path, policy: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.pcap"
    data = crafted.read_bytes()
    cut.write_bytes(data[: len(data) - 30])
    status, document = audit_json("--policy", policy, cut)
    assert status == 3
    assert document["records"] > 0


def test_audit_cli_process_exit_status(crafted: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text(STRICT_POLICY)
    command = [sys.executable, "-m", "tcpwatch", "audit", "--policy"]
    hole = subprocess.run(
        [*command, str(strict), str(crafted)], capture_output=True, text=True
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[groups.web]\nhosts = 1\n")
    invalid = subprocess.run(
        [*command, str(broken), str(crafted)], capture_output=True, text=True
    )
    assert hole.returncode == 1
    assert "holes: denied by the policy, yet accepted (301 connections)" in hole.stdout
    assert invalid.returncode == 2
    assert "groups.web.hosts: missing or empty" in invalid.stderr


def test_connection_audit_from_feed_thread(tmp_path: Path) -> None:
    # A live capture's feed thread finishes connections while the display
    # thread asks for reports; ConnectionAudit serialises the two.
    from tcpwatch.audit.policyfile import load_policy
    from tcpwatch.capture.live_feed import CaptureStatus, FrameFeed
    from tcpwatch.cli.audit import ConnectionAudit
    from tcpwatch.flow.tracker import FlowTracker

    policy_path = tmp_path / "strict.toml"
    policy_path.write_text(STRICT_POLICY)
    connection_audit = ConnectionAudit(load_policy(policy_path))
    packets = exchange(CLIENT, WEB, 50000, 443, 1000.0) + port_scan(1001.0)
    frames = [(float(p.time), 1, bytes(p), len(p), 0) for p in packets]
    batches = [frames[start : start + 50] for start in range(0, len(frames), 50)]
    feed = FrameFeed(
        FlowTracker(), CaptureStatus(source="test"), connection_audit.finished
    )
    feed.start(batches)
    partial = [connection_audit.report().attempts for _ in range(20)]
    assert feed.join(timeout=30)
    report = connection_audit.report()
    assert partial == sorted(partial)
    assert report.attempts == 1 + len(SCANNED)
    assert [str(hole.missing[0]) for hole in report.holes] == [
        "no inbound rule of web allows tcp/443 from hosts outside every group"
    ]
    assert [scan.source for scan in report.scans] == [SCANNER]
