"""Timeline options of ``tcpwatch read`` and ``tcpwatch timeline``, end to end."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpwatch.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pcap of one clean exchange and one refused attempt, built with scapy."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    def packet(src, dst, sport, dport, flags, seq, ack, data=b"", options=()):
        return (
            Ether()
            / IP(src=src, dst=dst)
            / TCP(
                sport=sport,
                dport=dport,
                flags=flags,
                seq=seq,
                ack=ack,
                window=64000,
                options=list(options),
            )
            / data
        )

    syn_options = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b"")]
    c, s = "192.0.2.1", "192.0.2.2"
    packets = [
        packet(c, s, 40001, 80, "S", 100, 0, options=syn_options),
        packet(s, c, 80, 40001, "SA", 900, 101, options=syn_options),
        packet(c, s, 40001, 80, "A", 101, 901),
        packet(c, s, 40001, 80, "PA", 101, 901, b"GET / HTTP/1.0\r\n\r\n"),
        packet(s, c, 80, 40001, "PA", 901, 119, b"x" * 300),
        packet(c, s, 40001, 80, "FA", 119, 1201),
        packet(s, c, 80, 40001, "FA", 1201, 120),
        packet(c, s, 40001, 80, "A", 120, 1202),
        packet(c, s, 40002, 81, "S", 7000, 0),
        packet(s, c, 81, 40002, "RA", 0, 7001),
    ]
    for index, item in enumerate(packets):
        item.time = 100.0 + index * 0.002
    path = tmp_path_factory.mktemp("timeline") / "two.pcap"
    wrpcap(str(path), packets)
    return path


def test_timeline_cli_title_and_verdict(capture: Path):
    result = runner.invoke(app, ["timeline", str(capture)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert re.search(r"^connection 1 \(C\w{17}\)$", result.stdout, re.M)
    assert "verdict: closed cleanly" in result.stdout
    assert "verdict: server refused" in result.stdout


def test_timeline_cli_explain(capture: Path):
    result = runner.invoke(
        app, ["timeline", str(capture), "--explain"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    assert "The client asks to open a connection. Its ISN is 100" in result.stdout
    assert "The server rejects the connection with a RST" in result.stdout


def test_read_explain_implies_timelines(capture: Path):
    result = runner.invoke(
        app, ["read", str(capture), "--explain"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    assert "Three-way handshake" in result.stdout


def test_timeline_cli_japanese(capture: Path):
    result = runner.invoke(
        app,
        ["timeline", str(capture), "--lang", "ja", "--explain", "--conn", "2"],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    assert "コネクション 2" in result.stdout
    assert "発信側 192.0.2.1:40002" in result.stdout
    assert "判定: サーバーが拒否" in result.stdout
    assert "RST で接続を拒否します" in result.stdout
    assert "verdict" not in result.stdout


def test_timeline_cli_unknown_language(capture: Path):
    result = runner.invoke(app, ["timeline", str(capture), "--lang", "tlh"])
    assert result.exit_code == 2
    assert "'tlh'" in result.output
    assert "en, ja" in result.output


def test_timeline_cli_saves_svg_and_html(capture: Path, tmp_path: Path):
    svg, html = tmp_path / "t.svg", tmp_path / "t.html"
    result = runner.invoke(
        app,
        ["timeline", str(capture), "--svg", str(svg), "--html", str(html)],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    svg_text = svg.read_text(encoding="utf-8")
    assert svg_text.startswith("<svg")
    assert "SYN,ACK" in svg_text.replace("&#160;", " ")
    html_text = html.read_text(encoding="utf-8")
    assert "<!DOCTYPE html>" in html_text
    assert "SYN,ACK" in html_text
    # The saved copies keep colour even though the output was captured.
    assert "color" in html_text


def test_read_svg_implies_timelines(capture: Path, tmp_path: Path):
    svg = tmp_path / "r.svg"
    result = runner.invoke(app, ["read", str(capture), "--svg", str(svg)])
    assert result.exit_code == 0, result.output
    assert "responder" in svg.read_text(encoding="utf-8")


def test_read_format_mermaid(capture: Path):
    result = runner.invoke(app, ["read", str(capture), "--format", "mermaid"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("```mermaid\nsequenceDiagram\n") == 2
    assert "    O->>R: SYN seq=0 win=64000" in result.stdout
    assert "    R-xO: RST,ACK" in result.stdout


def test_timeline_piped_is_plain_and_fits(capture: Path):
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "timeline", str(capture), "--explain"],
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    for line in done.stdout.splitlines():
        assert len(line) <= 80, line
