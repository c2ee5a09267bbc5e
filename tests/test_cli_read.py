"""The read and timeline commands, through typer's CliRunner and as a process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpwatch.cli.app import app
from tcpwatch.flow.record import RECORD_FIELDS

runner = CliRunner()


def _exchange(client: str, server: str, sport: int, start: float) -> list:
    """Return scapy packets of a short clean exchange with their capture times."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    def pkt(src, dst, sp, dp, flags, seq, ack, data=b""):
        return (
            Ether()
            / IP(src=src, dst=dst)
            / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, window=64000)
            / data
        )

    c, s = client, server
    packets = [
        pkt(c, s, sport, 80, "S", 100, 0),
        pkt(s, c, 80, sport, "SA", 900, 101),
        pkt(c, s, sport, 80, "A", 101, 901),
        pkt(c, s, sport, 80, "PA", 101, 901, b"GET / HTTP/1.0\r\n\r\n"),
        pkt(s, c, 80, sport, "PA", 901, 119, b"x" * 300),
        pkt(c, s, sport, 80, "FA", 119, 1201),
        pkt(s, c, 80, sport, "FA", 1201, 120),
        pkt(c, s, sport, 80, "A", 120, 1202),
    ]
    for index, packet in enumerate(packets):
        packet.time = start + index * 0.001
    return packets


def _refused(client: str, server: str, sport: int, start: float) -> list:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    syn = Ether() / IP(src=client, dst=server) / TCP(sport=sport, dport=81, flags="S")
    rst = (
        Ether()
        / IP(src=server, dst=client)
        / TCP(sport=81, dport=sport, flags="RA", seq=0, ack=syn[TCP].seq + 1)
    )
    syn.time, rst.time = start, start + 0.0003
    return [syn, rst]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    from scapy.utils import wrpcap

    path = tmp_path / "two.pcap"
    packets = _exchange("10.1.0.1", "10.1.0.2", 40001, 1000.0)
    packets += _refused("10.1.0.1", "10.1.0.2", 40002, 1000.5)
    wrpcap(str(path), packets)
    return path


def test_read_table_lists_each_connection(capture: Path):
    result = runner.invoke(app, ["read", str(capture)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "10.1.0.1:40001" in result.output
    assert "10.1.0.2:81" in result.output
    assert "complete" in result.output
    assert "rejected" in result.output
    assert "REJ" in result.output
    assert "2 connections" in result.output


def test_read_json_has_record_fields(capture: Path):
    result = runner.invoke(app, ["read", str(capture), "--format", "json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    by_port = {record["id.resp_p"]: record for record in records}
    assert list(by_port[80]) == list(RECORD_FIELDS)
    assert by_port[80]["conn_state"] == "SF"
    assert by_port[80]["history"] == "ShADdFf"
    assert by_port[80]["orig_bytes"] == 18
    assert by_port[80]["resp_bytes"] == 300
    assert by_port[81]["conn_state"] == "REJ"
    assert by_port[81]["handshake"] == "rejected"
    assert by_port[81]["reject_latency"] == pytest.approx(0.0003, abs=1e-6)
    assert by_port[81]["rtt_syn_synack"] is None


def test_read_csv_header_and_rows(capture: Path):
    result = runner.invoke(app, ["read", str(capture), "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ",".join(RECORD_FIELDS)
    assert len([line for line in lines[1:] if line.count(",") >= 40]) == 2


def test_read_zeek_tsv_header(capture: Path):
    result = runner.invoke(app, ["read", str(capture), "--format", "zeek"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    fields = next(line for line in lines if line.startswith("#fields"))
    assert fields.split("\t")[1:] == list(RECORD_FIELDS)
    rows = [line for line in lines if not line.startswith("#")]
    assert len(rows) == 2
    assert all(len(row.split("\t")) == len(RECORD_FIELDS) for row in rows)


def test_timeline_draws_handshake(capture: Path):
    result = runner.invoke(
        app, ["timeline", str(capture), "--conn", "1"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    assert "SYN seq=0" in result.output
    assert "SYN,ACK seq=0 ack=1" in result.output
    assert "handshake" in result.output
    assert "teardown" in result.output
    assert "connection 2" not in result.output


def test_read_missing_file_names_path(tmp_path: Path):
    missing = tmp_path / "nowhere.pcap"
    result = runner.invoke(app, ["read", str(missing)])
    assert result.exit_code == 2
    assert str(missing) in result.output
    assert "not found" in result.output


def test_read_not_a_capture(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a capture file\n")
    result = runner.invoke(app, ["read", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output


def test_read_truncated_file_keeps_earlier_records(capture: Path, tmp_path: Path):
    data = capture.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 20])
    result = runner.invoke(app, ["read", str(cut), "--format", "json"])
    assert result.exit_code == 1
    records = [
        json.loads(line) for line in result.stdout.splitlines() if line[:1] == "{"
    ]
    assert len(records) == 2
    assert str(cut) in result.output
    assert "analysed" in result.output


def test_read_several_files_as_one_capture(tmp_path: Path):
    from scapy.utils import wrpcap

    packets = _exchange("10.2.0.1", "10.2.0.2", 40010, 50.0)
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    # Each file holds one direction, as two capture points would.
    wrpcap(str(first), [p for p in packets if p.sport == 40010])
    wrpcap(str(second), [p for p in packets if p.sport == 80])
    result = runner.invoke(app, ["read", str(first), str(second), "--format", "json"])
    assert result.exit_code == 0, result.output
    records = [
        json.loads(line) for line in result.stdout.splitlines() if line[:1] == "{"
    ]
    assert len(records) == 1
    assert records[0]["history"] == "ShADdFf"
    assert records[0]["conn_state"] == "SF"


def test_read_piped_output_is_plain(capture: Path):
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(capture), "--timeline"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    assert "10.1.0.1:40001" in done.stdout
    assert "SYN seq=0" in done.stdout


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "read" in result.output
    assert "timeline" in result.output


def test_read_table_in_japanese(capture: Path):
    result = runner.invoke(
        app, ["read", str(capture), "--lang", "ja"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "発信側" in result.output
    assert "完了" in result.output
    assert "拒否" in result.output
    assert "complete" not in result.output


def test_read_max_connections_evicts_and_reports(tmp_path: Path):
    from scripted import Conversation, write_pcap

    from tcpwatch.capture.segment import SYN

    segments = [
        Conversation(client_port=40000 + index).client(SYN, at=1.0 + index / 1000)
        for index in range(30)
    ]
    path = tmp_path / "syns.pcap"
    write_pcap(segments, str(path))

    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(path), "-F", "json"]
        + ["--max-connections", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    reasons = [record["end_reason"] for record in records]
    assert reasons == ["evicted"] * 20 + ["open"] * 10
    assert [record["id.orig_p"] for record in records[:20]] == list(range(40000, 40020))
    summary = done.stderr.splitlines()[-1]
    assert summary.startswith("30 connections;")
    assert summary.endswith("; 20 connections evicted at the --max-connections limit")


def test_read_unknown_conn_number_is_an_error(capture: Path):
    result = runner.invoke(app, ["timeline", str(capture), "--conn", "99"])
    assert result.exit_code == 2
    assert "no connection numbered 99" in result.output
    assert "the capture has 2" in result.output


def test_read_unknown_uid_is_an_error(capture: Path):
    result = runner.invoke(app, ["read", str(capture), "--conn", "Cnosuchuid"])
    assert result.exit_code == 2
    assert "no connection with uid Cnosuchuid" in result.output
    assert "no TCP connections found" not in result.output


def test_read_timeline_options_need_table_format(capture: Path):
    result = runner.invoke(
        app, ["read", str(capture), "--format", "json", "--svg", "out.svg"]
    )
    assert result.exit_code == 2
    assert "go with the table" in result.output


def test_timeline_svg_into_missing_directory(capture: Path, tmp_path: Path):
    target = tmp_path / "missing" / "out.svg"
    result = runner.invoke(app, ["timeline", str(capture), "--svg", str(target)])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_read_dash_reads_standard_input(capture: Path):
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", "-", "--format", "json"],
        input=capture.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2


MIXED = Path(__file__).resolve().parent.parent / "captures" / "mixed.pcap"


def test_read_filter_keeps_matching_connections() -> None:
    everything = runner.invoke(app, ["read", str(MIXED), "-F", "json"])
    result = runner.invoke(app, ["read", str(MIXED), "-F", "json", "-f", "port 54185"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    wanted = [
        record
        for record in map(json.loads, everything.stdout.splitlines())
        if 54185 in (record["id.orig_p"], record["id.resp_p"])
    ]
    assert records == wanted
    assert 0 < len(records) < len(everything.stdout.splitlines())


def test_read_filter_counts_what_it_left_out() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(MIXED), "-f", "port 54185"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = done.stderr.strip().splitlines()[-1]
    assert "54 frames: 54 TCP" in summary
    assert "72 more left out by the filter 'port 54185'" in summary


def test_timeline_filter_invalid_expression() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "timeline", str(MIXED), "-f", "port x y"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid filter 'port x y'" in done.stderr
    assert done.stdout == ""


def test_read_closed_pipe_exit_status(tmp_path: Path) -> None:
    # `tcpwatch read FILE -F json | head -1`: the reader leaves after one line.
    # Status 1 means a damaged capture; a closed pipe gets SIGPIPE's 141.
    capture = tmp_path / "many.pcap"
    from scapy.utils import wrpcap

    packets = []
    for index in range(600):
        packets += _exchange("10.0.0.1", "10.0.0.2", 20000 + index, index * 0.01)
    wrpcap(str(capture), packets)
    commands = [
        ["read", str(capture), "-F", "json"],
        ["read", str(capture)],  # the table: more than a pipe's 64 KiB
        ["timeline", str(capture)],
    ]
    for command in commands:
        tcpwatch = subprocess.Popen(
            [sys.executable, "-m", "tcpwatch", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert tcpwatch.stdout is not None and tcpwatch.stderr is not None
        tcpwatch.stdout.readline()
        tcpwatch.stdout.close()
        errors = tcpwatch.stderr.read()
        assert tcpwatch.wait(timeout=120) == 141, command
        assert b"Traceback" not in errors


def nobody_prefix() -> list[str]:
    """Return the command prefix that runs a program as user nobody.

    Skips the test without root, without setpriv, or when nobody cannot read
    this checkout and its virtualenv.
    """
    import os
    import shutil

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run as another user")
    as_nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import tcpwatch"])
    if probe.returncode != 0:
        pytest.skip("user nobody cannot read this checkout or its virtualenv")
    return as_nobody


@pytest.mark.root
def test_read_unreadable_file_gets_tcpwatch_error(tmp_path: Path) -> None:
    import shutil

    as_nobody = nobody_prefix()
    tmp_path.chmod(0o755)
    capture = tmp_path / "closed.pcap"
    shutil.copy(MIXED, capture)
    capture.chmod(0)
    for command in ("read", "timeline", "replay"):
        done = subprocess.run(
            [*as_nobody, sys.executable, "-m", "tcpwatch", command, str(capture)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, command
        assert done.stderr.startswith(f"tcpwatch: error: {capture}: permission denied")


def test_timeline_svg_loads_nothing_from_the_web(tmp_path: Path) -> None:
    import re

    image = tmp_path / "timeline.svg"
    result = runner.invoke(app, ["timeline", str(MIXED), "--svg", str(image)])
    assert result.exit_code == 0, result.output
    svg = image.read_text()
    assert "<svg" in svg
    assert 'src: local("FiraCode-Regular");' in svg
    assert re.findall(r'url\(["\']?https?:', svg) == []


def test_read_filter_with_brackets_quoted_literally() -> None:
    expression = "tcp[tcpflags] & tcp-syn != 0"
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(MIXED), "-f", expression],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"left out by the filter '{expression}'" in done.stderr


@pytest.mark.root
def test_read_svg_unreachable_directory(tmp_path: Path) -> None:
    as_nobody = nobody_prefix()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    tmp_path.chmod(0o755)
    image = closed / "x.svg"
    done = subprocess.run(
        [*as_nobody, sys.executable, "-m", "tcpwatch", "read", str(MIXED)]
        + ["--svg", str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"--svg {image} cannot be written: permission denied" in done.stderr
