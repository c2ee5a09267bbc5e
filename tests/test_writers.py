"""Record writers: Zeek's TSV conn.log, CSV and JSON lines."""

import csv
import enum
import io
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scripted import Conversation, track

from tcpwatch.capture.segment import ACK, FIN, PSH, SYN
from tcpwatch.export.writers import (
    CsvWriter,
    JsonLinesWriter,
    ZeekWriter,
    json_line,
    zeek_type,
)
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.record import RECORD_FIELDS, build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import read_captures

ROOT = Path(__file__).resolve().parent.parent

ZEEK_HEADER_KEYS = (
    "#separator",
    "#set_separator",
    "#empty_field",
    "#unset_field",
    "#path",
    "#open",
    "#fields",
    "#types",
)


def records() -> list[dict[str, object]]:
    talk = Conversation()
    syn = talk.client(SYN, at=10.0)
    talk.client(SYN, seq=syn.seq, at=11.0)
    talk.server(SYN | ACK, at=11.01)
    talk.client(ACK, at=11.02)
    talk.client(PSH | ACK, 100, at=11.03)
    talk.server(ACK, at=11.04)
    talk.client(FIN | ACK, at=11.05)
    talk.server(FIN | ACK, at=11.06)
    talk.client(ACK, at=11.07)
    lone = Conversation(client_port=40001)
    lone.client(SYN, at=12.0)
    return track(talk.segments + lone.segments)


def zeek_text() -> str:
    stream = io.StringIO()
    writer = ZeekWriter(stream, opened="2024-01-02-03-04-05")
    for record in records():
        writer.write(record)
    writer.close()
    return stream.getvalue()


def test_writers_zeek_header():
    lines = zeek_text().splitlines()
    assert lines[0] == "#separator \\x09"
    for line, key in zip(lines[:8], ZEEK_HEADER_KEYS, strict=True):
        assert line.split("\t")[0].split(" ")[0] == key
    assert lines[1] == "#set_separator\t,"
    assert lines[2] == "#empty_field\t(empty)"
    assert lines[3] == "#unset_field\t-"
    assert lines[4] == "#path\tconn"
    assert lines[5] == "#open\t2024-01-02-03-04-05"
    assert lines[6].split("\t")[1:] == list(RECORD_FIELDS)
    assert len(lines[7].split("\t")[1:]) == len(RECORD_FIELDS)
    assert lines[-1] == "#close\t2024-01-02-03-04-05"


def test_writers_zeek_types():
    assert zeek_type("ts") == "time"
    assert zeek_type("id.orig_p") == "port"
    assert zeek_type("duration") == "interval"
    assert zeek_type("orig_bytes") == "count"
    assert zeek_type("roles_inferred") == "bool"
    assert zeek_type("syn_backoffs") == "vector[interval]"
    assert zeek_type("fast_open") == "string"


def test_writers_zeek_rows_parse_by_header():
    lines = zeek_text().splitlines()
    fields = lines[6].split("\t")[1:]
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in lines[8:-1]]
    assert len(rows) == 2
    first, second = rows
    assert first["conn_state"] == "SF"
    assert first["ts"] == "10.000000"
    assert first["syn_backoffs"] == "1.000000"
    assert first["roles_inferred"] == "F"
    assert second["conn_state"] == "S0"
    assert second["rtt_syn_synack"] == "-"
    assert second["syn_backoffs"] == "(empty)"
    assert second["resp_mss"] == "-"


@pytest.mark.skipif(
    shutil.which("zeek-cut") is None and shutil.which("bro-cut") is None,
    reason="zeek-cut (or bro-cut from Debian's bro-aux) is not installed",
)
def test_writers_zeek_cut_reads_the_log():
    tool = shutil.which("zeek-cut") or shutil.which("bro-cut")
    assert tool is not None
    done = subprocess.run(
        [tool, "id.orig_p", "conn_state", "history", "syn_retransmissions"],
        input=zeek_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "40000\tSF\tShADaFf\t1",
        "40001\tS0\tS\t0",
    ]


def test_writers_zeek_escapes_markers():
    stream = io.StringIO()
    writer = ZeekWriter(stream, opened="2024-01-02-03-04-05")
    record = dict(records()[0])
    record["history"] = "-"
    record["verdict"] = "tab\there"
    record["fast_open"] = ""
    writer.write(record)
    cells = dict(
        zip(RECORD_FIELDS, stream.getvalue().splitlines()[-1].split("\t"), strict=True)
    )
    assert cells["history"] == "\\x2d"
    assert cells["verdict"] == "tab\\x09here"
    assert cells["fast_open"] == "(empty)"


def test_writers_csv_lists_and_nulls():
    stream = io.StringIO()
    writer = CsvWriter(stream)
    for record in records():
        writer.write(record)
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert rows[0]["syn_backoffs"] == "1.0"
    assert rows[0]["simultaneous_close"] == "false"
    assert rows[1]["rtt_syn_synack"] == ""


def test_writers_json_lines():
    stream = io.StringIO()
    writer = JsonLinesWriter(stream)
    for record in records():
        writer.write(record)
    rows = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert list(rows[0]) == list(RECORD_FIELDS)
    assert rows[0]["syn_backoffs"] == [1.0]


def _dumps(record: object) -> str:
    """Return the line the JSON writer must match: json.dumps with UTF-8 text."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def _capture_records(path: Path) -> list[dict[str, object]]:
    conns: list[Connection] = []
    read_captures([str(path)], FlowTracker(), conns.append)
    return [build_record(conn) for conn in conns]


def test_writers_json_line_matches_json_on_captures():
    paths = sorted((ROOT / "captures").glob("*.pcap*"))
    assert len(paths) >= 5
    for path in paths:
        records = _capture_records(path)
        assert records, path.name
        for record in records:
            assert json_line(record) == _dumps(record), (path.name, record["uid"])


@pytest.mark.slow
def test_writers_json_line_matches_json_on_corpus():
    corpus = sorted((ROOT / "benchmarks" / "corpus").glob("*.pcap"))
    if not corpus:
        pytest.skip("no benchmark corpus; `make bench` records it")
    for path in corpus:
        for record in _capture_records(path):
            assert json_line(record) == _dumps(record), (path.name, record["uid"])


class _Color(enum.Enum):
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


class _Kind(enum.StrEnum):
    SYN = "syn"


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**70,
        True,
        False,
        None,
        0.0,
        -0.0,
        1e-07,
        1796404704.050515,
        1e300,
        math.nan,
        math.inf,
        -math.inf,
        "",
        "plain",
        'quote " and back\\slash',
        "tab\tnew\nline\rreturn\b\f",
        "control \x00\x01\x1f and delete \x7f",
        "µs, 東京, emoji \U0001f600",
        "line separator \u2028 and paragraph \u2029",
        "lone surrogate \ud800",
        [],
        [1.0, 2.5],
        [None, True, "x", [1]],
        (1, 2),
        {"nested": [1, {"deep": None}]},
        _Level.HIGH,
        _Kind.SYN,
    ],
    ids=repr,
)
def test_writers_json_line_matches_json_value(value: object):
    record = {"uid": "C1", "value": value, "ts": 1.5}
    assert json_line(record) == _dumps(record)


def test_writers_json_line_key_order_and_odd_keys():
    record = {"z": 1, "a": 2, 'we"ird\n': 3, "ключ": 4, "": 5}
    assert json_line(record) == _dumps(record)


def test_writers_json_line_non_string_keys():
    record = {1: "one", None: "none", False: "no", 2.5: "float"}
    assert json_line(record) == _dumps(record)  # type: ignore[arg-type]


def test_writers_json_line_empty_record():
    assert json_line({}) == "{}\n"


def test_writers_json_line_rejects_unencodable_value():
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_line({"uid": "C1", "value": _Color.RED})


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), _json_values, max_size=12))
def test_writers_json_line_matches_json_on_random_records(record):
    assert json_line(record) == _dumps(record)


def test_writers_json_line_matches_json_on_changed_record():
    record = dict(records()[0])
    record["verdict"] = 'refused: "quoted"\ttab \x00 µs \u2028'
    record["history"] = "ShAD\\"
    record["fast_open"] = "数据"
    record["rtt_syn_synack"] = math.nan
    record["syn_backoffs"] = [1.0, math.inf]
    assert json_line(record) == _dumps(record)
