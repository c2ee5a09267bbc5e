"""Record writers. Each takes records one at a time, so output can stream."""

import csv
import json
import math
import time
from json.encoder import encode_basestring
from typing import Any, Final, Protocol, TextIO

from tcpwatch.flow.record import RECORD_FIELDS


class RecordWriter(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonLinesWriter:
    """One JSON object per line, fields in the record's order (``RECORD_FIELDS``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json_line(record))

    def close(self) -> None:
        self.stream.flush()


# The encoder whose output json_line reproduces: json.dumps(record,
# ensure_ascii=False). A record holds no containers that could refer back to
# themselves, so the check for circular references is left out.
_encode: Final = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode

# ', "name": ' for each record field, so that a field's name is escaped once
# per run instead of once per record.
_MEMBER_PREFIXES: Final = {
    name: ", " + encode_basestring(name) + ": " for name in RECORD_FIELDS
}


def json_line(record: dict[str, Any]) -> str:
    """Return ``record`` as one line of JSON, ending with a newline.

    The line is the same, byte for byte, as ``json.dumps(record,
    ensure_ascii=False) + "\\n"``. The common values (int, float, str, bool,
    None, lists of them) are formatted here, and anything else by the json
    module's encoder. That encoder escapes every key of every record again.
    On the records of the 200,000-packet benchmark capture, this function
    took 10 us per record in the mypyc-compiled build and the encoder 17 us.
    Under CPython both took 15-17 us.
    """
    parts: list[str] = []
    for key, value in record.items():
        prefix = _MEMBER_PREFIXES.get(key)
        if prefix is None:
            if not isinstance(key, str):
                # json turns numbers, booleans and None used as keys into
                # strings; leave that, and its errors, to json itself.
                return _encode(record) + "\n"
            prefix = ", " + encode_basestring(key) + ": "
        parts.append(prefix)
        # Most record fields are counts: format them without a call.
        parts.append(str(value) if type(value) is int else _json_value(value))
    if not parts:
        return "{}\n"
    parts[0] = "{" + parts[0].removeprefix(", ")
    parts.append("}\n")
    return "".join(parts)


def _json_value(value: object) -> str:
    """Return ``value`` in JSON, as the json module's encoder writes it."""
    if type(value) is int:
        return str(value)
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is str:
        # The C function the encoder uses: it copies the string only when a
        # character needs escaping (quote, backslash, control characters).
        return encode_basestring(value)
    if type(value) is float and math.isfinite(value):
        # float.__repr__ is the encoder's format for finite floats. NaN and
        # the infinities are left to the encoder, which writes NaN, Infinity
        # and -Infinity.
        return repr(value)
    if type(value) is list:
        return "[" + ", ".join([_json_value(item) for item in value]) + "]"
    # Subclasses of int, float and str (enums among them), tuples and dicts.
    # A value json cannot encode raises TypeError here, as in json.dumps.
    return _encode(value)


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
