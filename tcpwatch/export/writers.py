"""Record writers. Each takes records one at a time, so output can stream."""

import csv
import json
import math
import time
from typing import Any, Protocol, TextIO

from tcpwatch.flow.record import RECORD_FIELDS


class RecordWriter(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonLinesWriter:
    """One JSON object per line, fields in ``RECORD_FIELDS`` order."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        # Built once: json.dumps would set up an encoder for every record.
        # A record holds no containers that could refer back to themselves,
        # so the check for circular references is left out.
        self._encode = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(self._encode(record) + "\n")

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
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
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
    "end_reason": "string",
    "fast_open": "string",
    "roles_inferred": "bool",
    "sack_permitted": "bool",
    "simultaneous_close": "bool",
    "port_reused": "bool",
    "orig_sack_permitted": "bool",
    "resp_sack_permitted": "bool",
    "orig_timestamps": "bool",
    "resp_timestamps": "bool",
    "timestamps": "bool",
    "syn_backoffs": "vector[interval]",
    "synack_backoffs": "vector[interval]",
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
    ``#types``, ...), so ``zeek-cut`` reads the file. Values are written as
    that writer writes them: times and intervals with six decimals, ``T`` and
    ``F`` for booleans, ``-`` for unset, ``(empty)`` for an empty string or
    vector, vector items separated by ``,``.

    Args:
        stream: where to write.
        opened: the ``#open`` and ``#close`` stamp, ``YYYY-MM-DD-HH-MM-SS``.
            Without it, each line gets the current local time, as in Zeek.
    """

    def __init__(self, stream: TextIO, opened: str | None = None) -> None:
        self.stream = stream
        self.fixed_stamp = opened
        if opened is None:
            opened = time.strftime(_ZEEK_TIME_FORMAT)
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
        closed = self.fixed_stamp or time.strftime(_ZEEK_TIME_FORMAT)
        self.stream.write(f"#close\t{closed}\n")
        self.stream.flush()


_ZEEK_TIME_FORMAT = "%Y-%m-%d-%H-%M-%S"


def _zeek_value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        if not value:
            return "(empty)"
        return ",".join(_zeek_value(name, item).replace(",", "\\x2c") for item in value)
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.6f}"
    text = str(value)
    if text == "":
        return "(empty)"
    if text in ("-", "(empty)"):
        # A string that reads as the unset or empty marker gets its first
        # character escaped, as Zeek's ASCII writer does.
        return f"\\x{ord(text[0]):02x}" + text[1:]
    # Zeek escapes the separator and non-printable bytes as \xNN.
    return "".join(
        ch if ch.isprintable() and ch != "\t" else f"\\x{ord(ch):02x}" for ch in text
    )
