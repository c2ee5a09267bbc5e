"""``tcpwatch demo``: synthesised scenarios for everyone, live loopback as root."""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tcpwatch.cli.app import app
from tcpwatch.demo import SCENARIOS, make_capture
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import read_captures

runner = CliRunner()
is_root = os.geteuid() == 0
needs_capture = pytest.mark.skipif(not is_root, reason="live demos need root")


def flat(text: str) -> str:
    """Return output with line breaks from wrapping turned back into spaces."""
    return re.sub(r"\s*\n\s*", " ", text)


def records_of(path: Path) -> list[dict[str, Any]]:
    conns: list[Any] = []
    read_captures([str(path)], FlowTracker(), conns.append)
    conns.sort(key=lambda conn: conn.number)
    return [build_record(conn) for conn in conns]


def only_record(path: Path) -> dict[str, Any]:
    records = records_of(path)
    assert len(records) == 1, f"expected one connection, got {len(records)}"
    return records[0]


# What each scenario must show, in both its synthesised and its live version.
EXPECTED = {
    "clean": {"handshake": "complete", "teardown": "fin", "conn_state": "SF"},
    "refused": {"handshake": "rejected", "conn_state": "REJ"},
    "abort": {"handshake": "complete", "teardown": "reset_by_resp"},
    "half-close": {"handshake": "complete", "teardown": "fin", "conn_state": "SF"},
    "slow-server": {"handshake": "complete", "teardown": "fin"},
    "bulk": {"handshake": "complete", "teardown": "fin"},
    "loss": {"handshake": "complete", "teardown": "fin"},
    "zero-window": {"handshake": "complete", "teardown": "fin"},
    "simultaneous-open": {"handshake": "simultaneous_open", "teardown": "fin"},
    "no-reply": {"handshake": "no_reply", "conn_state": "S0"},
}


def test_demo_expectations_cover_every_scenario():
    assert sorted(EXPECTED) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_demo_synthesised_scenario(name: str, tmp_path: Path):
    capture = make_capture(SCENARIOS[name], tmp_path / "s.pcap", synthesise=True)
    assert capture.synthesised
    assert capture.reason == "requested"
    record = only_record(capture.path)
    for field, value in EXPECTED[name].items():
        assert record[field] == value, field


def test_demo_synthesised_loss_shows_recovery(tmp_path: Path):
    path = make_capture(SCENARIOS["loss"], tmp_path / "l.pcap").path
    record = only_record(path)
    assert record["resp_retransmissions"] >= 1
    assert record["orig_retransmissions"] >= 1
    assert record["orig_dup_acks"] >= 3
    assert record["missed_bytes"] == 0


def test_demo_synthesised_zero_window(tmp_path: Path):
    path = make_capture(SCENARIOS["zero-window"], tmp_path / "z.pcap").path
    record = only_record(path)
    assert record["resp_zero_windows"] >= 2
    assert record["orig_bytes"] == 20 * 1448


def test_demo_synthesised_no_reply_retries(tmp_path: Path):
    path = make_capture(SCENARIOS["no-reply"], tmp_path / "n.pcap").path
    record = only_record(path)
    assert record["syn_retransmissions"] == 3
    assert record["orig_pkts"] == 4


def test_demo_synthesised_is_reproducible(tmp_path: Path):
    first = make_capture(SCENARIOS["clean"], tmp_path / "a.pcap", synthesise=True)
    second = make_capture(SCENARIOS["clean"], tmp_path / "b.pcap", synthesise=True)
    assert first.path.read_bytes() == second.path.read_bytes()


def test_demo_stack_scenario_is_always_synthesised(tmp_path: Path):
    capture = make_capture(SCENARIOS["loss"], tmp_path / "l.pcap")
    assert capture.synthesised
    assert capture.reason == "stack"


def test_demo_list_describes_every_scenario():
    result = runner.invoke(app, ["demo", "--list"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for name in SCENARIOS:
        assert name in result.stdout
    assert "Simultaneous open (always synthesised)" in result.stdout
    assert "Clean exchange (real loopback traffic when run as root)" in result.stdout


def test_demo_list_piped_has_no_trailing_spaces():
    result = runner.invoke(app, ["demo", "--list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) > 20
    assert [line for line in lines if line != line.rstrip()] == []


def test_demo_list_in_japanese():
    result = runner.invoke(app, ["demo", "--list", "--lang", "ja"])
    assert result.exit_code == 0, result.output
    assert "同時オープン" in result.stdout


def test_demo_unknown_scenario():
    result = runner.invoke(app, ["demo", "teleport"])
    assert result.exit_code == 2
    assert "'teleport'" in result.output
    assert "simultaneous-open" in result.output


def test_demo_cli_synthesised_says_so(tmp_path: Path):
    saved = tmp_path / "saved.pcap"
    result = runner.invoke(
        app,
        ["demo", "loss", "--write", str(saved)],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    output = flat(result.stdout)
    assert "These packets are synthesised with scapy" in output
    assert "does not produce this on demand" in output
    assert "[fast retransmission]" in result.stdout
    assert "verdict: closed cleanly" in result.stdout
    assert only_record(saved)["resp_retransmissions"] >= 1


def test_demo_cli_saves_svg_and_html(tmp_path: Path):
    svg, html = tmp_path / "demo.svg", tmp_path / "demo.html"
    result = runner.invoke(
        app,
        ["demo", "refused", "--synthesise", "--svg", str(svg), "--html", str(html)],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    assert svg.read_text(encoding="utf-8").startswith("<svg")
    assert "RST,ACK" in html.read_text(encoding="utf-8")


def test_demo_cli_japanese(tmp_path: Path):
    result = runner.invoke(
        app,
        ["demo", "zero-window", "--lang", "ja"],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    assert "シナリオ: ゼロウィンドウ" in result.stdout
    assert "scapy で合成したもの" in flat(result.stdout)
    assert "[ゼロウィンドウ]" in result.stdout
    assert "判定: " in result.stdout


# -- live loopback (root) ---------------------------------------------------------

LIVE = [name for name, scenario in SCENARIOS.items() if scenario.live]


@pytest.mark.root
@needs_capture
@pytest.mark.parametrize("name", LIVE)
def test_demo_live_scenario(name: str, tmp_path: Path):
    saved = tmp_path / f"{name}.pcap"
    result = runner.invoke(
        app,
        ["demo", name, "--write", str(saved), "--no-explain"],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "Real packets" in result.stdout
    assert "synthesised" not in result.stdout
    record = only_record(saved)
    assert record["id.orig_h"] == "127.0.0.1"
    for field, value in EXPECTED[name].items():
        assert record[field] == value, field
    assert f"verdict: {record['verdict']}" in flat(result.stdout)
    assert "The kernel dropped" not in result.stdout


@pytest.mark.root
@needs_capture
def test_demo_live_slow_server_waits(tmp_path: Path):
    saved = tmp_path / "slow.pcap"
    result = runner.invoke(app, ["demo", "slow-server", "--write", str(saved)])
    assert result.exit_code == 0, result.output
    record = only_record(saved)
    assert record["duration"] >= 0.5
    assert record["rtt_syn_synack"] < 0.1


@pytest.mark.root
@needs_capture
def test_demo_live_bulk_carries_a_megabyte(tmp_path: Path):
    saved = tmp_path / "bulk.pcap"
    result = runner.invoke(app, ["demo", "bulk", "--write", str(saved)])
    assert result.exit_code == 0, result.output
    assert only_record(saved)["resp_bytes"] > 1_000_000


@pytest.mark.root
@needs_capture
def test_demo_capture_ignores_other_connections_on_its_port(tmp_path: Path):
    # Another program's connection that uses the lesson server's port number
    # as its own source port must not show up in the lesson.
    from tcpwatch.demo.capture import LoopbackCapture

    def listening(host: str) -> socket.socket:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, 0))
        server.listen(1)
        return server

    with listening("127.0.0.1") as lesson, listening("127.0.0.1") as other:
        port = lesson.getsockname()[1]
        saved = tmp_path / "lesson.pcap"
        with socket.socket() as client:
            client.bind(("127.0.0.1", 0))
            with LoopbackCapture(saved, port, client.getsockname()[1]):
                with socket.socket() as stranger:
                    stranger.bind(("127.0.0.2", port))
                    stranger.connect(other.getsockname())
                    other.accept()[0].close()
                client.connect(("127.0.0.1", port))
                lesson.accept()[0].close()
    records = records_of(saved)
    assert len(records) == 1
    assert records[0]["id.resp_p"] == port


@pytest.mark.root
def test_demo_without_root_synthesises(tmp_path: Path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root")
    as_nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    env = {"COLUMNS": "100", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    tmp_path.chmod(0o777)
    probe = subprocess.run(
        [*as_nobody, sys.executable, "-c", "import tcpwatch.cli.app"],
        capture_output=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    if probe.returncode != 0:
        pytest.skip("user nobody cannot read this checkout or its virtualenv")
    done = subprocess.run(
        [*as_nobody, sys.executable, "-m", "tcpwatch", "demo", "clean", "--no-explain"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    output = flat(done.stdout)
    assert "These packets are synthesised with scapy" in output
    assert "capturing on loopback needs root" in output
    assert "verdict: closed cleanly" in done.stdout


def test_demo_write_to_missing_directory_fails_first(tmp_path: Path):
    target = tmp_path / "missing" / "demo.pcap"
    result = CliRunner().invoke(
        app, ["demo", "refused", "--synthesise", "-w", str(target)]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert str(target) in result.output
    # The check comes before the lesson, so nothing of it was printed.
    assert "SYN" not in result.output
    assert "Traceback" not in result.output
