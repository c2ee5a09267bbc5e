"""Property tests: random segment sequences must never break the tracker."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN, Segment
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.record import RECORD_FIELDS, build_record
from tcpwatch.flow.states import Handshake, Teardown
from tcpwatch.flow.tracker import FlowTracker

HOSTS = (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
PORTS = (80, 40000, 40001)
CONN_STATES = {
    "S0",
    "S1",
    "SF",
    "REJ",
    "S2",
    "S3",
    "RSTO",
    "RSTR",
    "RSTOS0",
    "RSTRH",
    "SH",
    "SHR",
    "OTH",
}
END_REASONS = {"open", "closed", "idle_timeout", "reused"}
HISTORY_LETTERS = set("SHADFRCGTWIQ^shadfrcgtwiq")
OPTIONS = (
    b"",
    bytes([2, 4, 5, 0xB4, 1, 3, 3, 7, 4, 2]),
    bytes([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
    bytes([1, 1, 5, 10, 0, 0, 3, 0xE8, 0, 0, 7, 0xD0]),
    bytes([34, 2]),
    bytes([3, 3]),  # truncated option
)
BASES = (1000, 5000, 0xFFFFFF00)


@st.composite
def segments(draw: st.DrawFn) -> list[Segment]:
    """Draw a list of segments between two hosts on a few port pairs."""
    count = draw(st.integers(min_value=1, max_value=60))
    ts = 1000.0
    result = []
    for _ in range(count):
        from_first = draw(st.booleans())
        client_port = draw(st.sampled_from(PORTS[1:]))
        src, dst = HOSTS if from_first else HOSTS[::-1]
        sport, dport = (client_port, 80) if from_first else (80, client_port)
        flags = draw(st.sampled_from((SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK)))
        flags |= draw(st.sampled_from((0, 0, 0, RST, FIN, SYN)))
        base = draw(st.sampled_from(BASES))
        seq = (base + draw(st.integers(-3000, 300000))) & 0xFFFFFFFF
        if draw(st.integers(0, 9)) == 0:
            seq = draw(st.integers(0, 0xFFFFFFFF))
        ack = (draw(st.sampled_from(BASES)) + draw(st.integers(-3000, 300000))) & (
            0xFFFFFFFF
        )
        length = draw(st.sampled_from((0, 0, 1, 100, 1448)))
        ts += draw(st.sampled_from((0.0, 0.000004, 0.001, 0.3, 3.0, 400.0, -0.002)))
        options = draw(st.sampled_from(OPTIONS))
        result.append(
            Segment(
                ts,
                src,
                dst,
                sport,
                dport,
                seq,
                ack,
                flags,
                draw(st.sampled_from((0, 1, 512, 65535))),
                length,
                40 + len(options) + length,
                options,
                b"x" * min(length, 64),
            )
        )
    return result


def check_invariants(stream: list[Segment], idle_timeout: float) -> None:
    tracker = FlowTracker(idle_timeout=idle_timeout, keep_segments=True)
    finished: list[Connection] = []
    for segment in stream:
        tracker.process(segment)
        finished += tracker.pop_finished()
    finished += tracker.flush()
    assert list(tracker.active()) == []
    numbers = [conn.number for conn in finished]
    assert len(numbers) == len(set(numbers)), "a connection finished twice"
    assert sorted(numbers) == list(range(1, tracker.connections + 1))
    packets = 0
    for conn in finished:
        assert conn.finished
        record = build_record(conn)
        assert list(record) == list(RECORD_FIELDS)
        for name in ("orig_bytes", "resp_bytes", "missed_bytes"):
            assert record[name] >= 0, name
        for name in ("orig_missed_bytes", "resp_missed_bytes"):
            assert record[name] >= 0, name
        assert record["conn_state"] in CONN_STATES
        assert record["handshake"] in {item.value for item in Handshake}
        assert record["teardown"] in {item.value for item in Teardown}
        assert record["end_reason"] in END_REASONS
        assert set(record["history"]) <= HISTORY_LETTERS
        assert record["verdict"]
        assert record["duration"] >= 0
        assert all(gap >= 0 for gap in record["syn_backoffs"])
        packets += record["orig_pkts"] + record["resp_pkts"]
    assert packets == len(stream)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments(), st.sampled_from((300.0, 1.0)))
def test_tracker_random_segments_keep_invariants(stream, idle_timeout):
    check_invariants(stream, idle_timeout)


@pytest.mark.slow
@settings(
    max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(segments(), st.sampled_from((300.0, 1.0, 0.01)))
def test_tracker_random_segments_keep_invariants_long(stream, idle_timeout):
    check_invariants(stream, idle_timeout)
