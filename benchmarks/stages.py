"""Time the stages of ``tcpwatch read -F json`` in one process.

    python -m benchmarks.stages [--runs 5] [FILE]

Each stage is timed together with the ones before it, as CPU time of this
process, and the minimum of ``--runs`` runs is reported per packet:

- read: iterate over the capture's frames.
- decode: decode the frames into segments.
- track: ``read_captures``, which adds the reorder buffer and the tracker.
- record: build each finished connection's record.
- json: write each record as a JSON line to an in-memory stream.

Then the per-connection costs, each over every connection of the file: the
uid, the record and the JSON line. Start-up is not included anywhere. Run it
under the compiled copy with ``PYTHONPATH=benchmarks/build/compiled`` (and
``python -P``), as ``benchmarks.run`` does.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

from tcpwatch.capture.decoder import Decoder
from tcpwatch.capture.pcapfile import MergedCapture
from tcpwatch.export.writers import JsonLinesWriter
from tcpwatch.flow.connection import Connection, make_uid
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import read_captures

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "benchmarks" / "corpus" / "loopback-200k.pcap"


def cpu_time(work: Callable[[], object], runs: int) -> float:
    """Return the minimum CPU time of ``runs`` calls of ``work``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def read_only(path: str) -> None:
    capture = MergedCapture([path])
    for _ in capture:
        pass
    capture.close()


def read_and_decode(path: str) -> None:
    capture = MergedCapture([path])
    for _ in Decoder().segments(capture):
        pass
    capture.close()


def read_and_track(path: str, on_finished: Callable[[Connection], None]) -> None:
    read_captures([path], FlowTracker(), on_finished)


def stage_times(path: str, runs: int) -> dict[str, float]:
    """Return the CPU seconds of each stage, added to the stages before it."""
    writer = JsonLinesWriter(io.StringIO())

    def to_json(conn: Connection) -> None:
        writer.write(build_record(conn))

    def discard(conn: Connection) -> None:
        pass

    def record_only(conn: Connection) -> None:
        build_record(conn)

    return {
        "read": cpu_time(lambda: read_only(path), runs),
        "decode": cpu_time(lambda: read_and_decode(path), runs),
        "track": cpu_time(lambda: read_and_track(path, discard), runs),
        "record": cpu_time(lambda: read_and_track(path, record_only), runs),
        "json": cpu_time(lambda: read_and_track(path, to_json), runs),
    }


def connection_costs(path: str, runs: int) -> dict[str, float]:
    """Return the CPU seconds per connection for its uid, record and JSON line."""
    conns: list[Connection] = []
    read_captures([path], FlowTracker(), conns.append)
    records = [build_record(conn) for conn in conns]
    identities = [
        (c.number, c.orig_h, c.orig_p, c.resp_h, c.resp_p, c.start_time) for c in conns
    ]
    writer = JsonLinesWriter(io.StringIO())

    def uids() -> None:
        for identity in identities:
            make_uid(*identity)

    def build() -> None:
        for conn in conns:
            build_record(conn)

    def write() -> None:
        writer.stream = io.StringIO()
        for record in records:
            writer.write(record)

    count = len(conns)
    return {
        "connections": count,
        "uid": cpu_time(uids, runs) / count,
        "record": cpu_time(build, runs) / count,
        "json": cpu_time(write, runs) / count,
    }


def count_frames(path: str) -> int:
    capture = MergedCapture([path])
    decoder = Decoder()
    for _ in decoder.segments(capture):
        pass
    capture.close()
    return decoder.stats.frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages")
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--runs", type=int, default=5, help="runs per stage")
    args = parser.parse_args(argv)
    path = str(args.file)
    packets = count_frames(path)
    import tcpwatch.flow.record

    compiled = not tcpwatch.flow.record.__file__.endswith(".py")
    build = "compiled" if compiled else "pure Python"
    print(f"{args.file.name}: {packets:,} packets, {build}, min of {args.runs} runs")
    before = 0.0
    for name, seconds in stage_times(path, args.runs).items():
        added = (seconds - before) / packets * 1e6
        print(f"  {name:8s} {seconds:6.3f} s  +{added:5.2f} us per packet")
        before = seconds
    print(f"  total    {before / packets * 1e6:5.2f} us per packet")
    costs = connection_costs(path, args.runs)
    connections = int(costs.pop("connections"))
    print(f"per connection ({connections:,} connections):")
    for name, seconds in costs.items():
        share = seconds * connections / packets * 1e6
        print(f"  {name:8s} {seconds * 1e6:6.2f} us  ({share:.2f} us per packet)")


if __name__ == "__main__":
    main()
