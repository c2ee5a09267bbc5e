"""Record writers. Each takes records one at a time, so output can stream."""

import csv
import json
import math
from typing import Any, Protocol, TextIO

from tcpwatch.flow.record import RECORD_FIELDS


class RecordWriter(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonLinesWriter:
    """One JSON object per line, fields in ``RECORD_FIELDS`` order."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.stream.flush()


class CsvWriter:
    """CSV with a header row; empty cells for null values, true/false for booleans."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(RECORD_FIELDS)

    def write(self, record: dict[str, Any]) -> None:
        self._writer.writerow(_csv_value(record.get(name)) for name in RECORD_FIELDS)

    def close(self) -> None:
        self.stream.flush()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


# Zeek's TSV types for the conn.log fields tcpwatch shares with it, and for
# its own fields, so that zeek-cut and Zeek's log readers accept the file.
_ZEEK_TYPES = {
    "ts": "time",
    "uid": "string",
    "id.orig_h": "addr",
    "id.orig_p": "port",
    "id.resp_h": "addr",
    "id.resp_p": "port",
    "proto": "enum",
    "duration": "interval",
    "conn_state": "string",
    "history": "string",
    "handshake": "string",
    "teardown": "string",
    "verdict": "string",
    "roles_inferred": "bool",
    "sack_permitted": "bool",
}
_INTERVAL_FIELDS = {
    "rtt_syn_synack",
    "rtt_synack_ack",
    "reject_latency",
    "first_byte_time",
    "handshake_duration",
    "transfer_duration",
    "teardown_duration",
}


def zeek_type(name: str) -> str:
    if name in _ZEEK_TYPES:
        return _ZEEK_TYPES[name]
    if name in _INTERVAL_FIELDS:
        return "interval"
    return "count"


class ZeekWriter:
    """Zeek's conn.log in its TSV format: ``#`` header lines, ``-`` for unset.

    The header follows Zeek's ASCII writer (``#separator``, ``#fields``,
    ``#types``, ...), so ``zeek-cut`` reads the file.
    """

    def __init__(self, stream: TextIO, opened: str = "1970-01-01-00-00-00") -> None:
        self.stream = stream
        self.opened = opened
        stream.write("#separator \\x09\n")
        stream.write("#set_separator\t,\n")
        stream.write("#empty_field\t(empty)\n")
        stream.write("#unset_field\t-\n")
        stream.write("#path\tconn\n")
        stream.write(f"#open\t{opened}\n")
        stream.write("#fields\t" + "\t".join(RECORD_FIELDS) + "\n")
        stream.write("#types\t" + "\t".join(zeek_type(n) for n in RECORD_FIELDS) + "\n")

    def write(self, record: dict[str, Any]) -> None:
        cells = [_zeek_value(name, record.get(name)) for name in RECORD_FIELDS]
        self.stream.write("\t".join(cells) + "\n")

    def close(self) -> None:
        self.stream.write(f"#close\t{self.opened}\n")
        self.stream.flush()


def _zeek_value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.6f}"
    text = str(value)
    if text == "":
        return "(empty)"
    # Zeek escapes the separator and non-printable bytes as \xNN.
    return "".join(
        ch if ch.isprintable() and ch != "\t" else f"\\x{ord(ch):02x}" for ch in text
    )
