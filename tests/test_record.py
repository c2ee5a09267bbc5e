"""The connection record: field order, classes, timings and verdicts."""

from scripted import Conversation, track_one

from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN
from tcpwatch.flow.record import RECORD_FIELDS, backoffs

# The fields of the first release, in order: CSV and Zeek TSV readers rely on
# their positions, so new fields only ever go after them.
FIRST_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "handshake",
    "teardown",
    "roles_inferred",
    "verdict",
    "rtt_syn_synack",
    "rtt_synack_ack",
    "reject_latency",
    "syn_retransmissions",
    "synack_retransmissions",
    "orig_retransmissions",
    "resp_retransmissions",
    "orig_out_of_order",
    "resp_out_of_order",
    "orig_dup_acks",
    "resp_dup_acks",
    "orig_zero_windows",
    "resp_zero_windows",
    "orig_keepalives",
    "resp_keepalives",
    "orig_mss",
    "resp_mss",
    "orig_wscale",
    "resp_wscale",
    "sack_permitted",
    "first_byte_time",
    "handshake_duration",
    "transfer_duration",
    "teardown_duration",
]


def clean_exchange() -> Conversation:
    talk = Conversation()
    talk.client(SYN, at=0.0)
    talk.server(SYN | ACK, at=0.01)
    talk.client(ACK, at=0.02)
    talk.client(PSH | ACK, 100, at=0.03)
    talk.server(PSH | ACK, 2000, at=0.05)
    talk.client(ACK, at=0.06)
    talk.client(FIN | ACK, at=0.5)
    talk.server(FIN | ACK, at=0.51)
    talk.client(ACK, at=0.52)
    return talk


def test_record_first_fields_keep_their_places():
    assert RECORD_FIELDS[: len(FIRST_FIELDS)] == tuple(FIRST_FIELDS)


def test_record_fields_are_unique():
    assert len(set(RECORD_FIELDS)) == len(RECORD_FIELDS)


def test_record_keys_follow_record_fields():
    record = track_one(clean_exchange().segments)
    assert tuple(record) == RECORD_FIELDS


def test_record_phase_durations():
    record = track_one(clean_exchange().segments)
    assert abs(record["handshake_duration"] - 0.02) < 1e-9
    assert abs(record["transfer_duration"] - 0.48) < 1e-9
    assert abs(record["teardown_duration"] - 0.02) < 1e-9
    assert abs(record["first_byte_time"] - 0.01) < 1e-9
    assert record["end_reason"] == "closed"


def test_record_backoffs():
    assert backoffs([]) == []
    assert backoffs([5.0]) == []
    assert backoffs([0.0, 1.0, 3.0, 7.0]) == [1.0, 2.0, 4.0]


def test_record_verdict_clean():
    record = track_one(clean_exchange().segments)
    assert record["verdict"] == "closed cleanly by the client after 2.1 kB"


def test_record_verdict_names_retransmissions():
    talk = Conversation()
    talk.handshake()
    data = talk.client(PSH | ACK, 100, at=1.0)
    talk.client(PSH | ACK, 100, seq=data.seq, at=1.3)
    talk.server(ACK, at=1.31)
    record = track_one(talk.segments)
    assert record["verdict"] == (
        "still open at the end of the capture after 100 B; "
        "1 retransmission by the client"
    )


def test_record_verdict_out_of_order_is_hedged():
    talk = Conversation()
    talk.client(SYN, at=0.0)
    talk.server(SYN | ACK, at=0.01)
    talk.client(ACK, at=0.02)
    first = talk.client(PSH | ACK, 100, at=1.0)
    second = talk.client(PSH | ACK, 100, at=1.0)
    talk.segments[-2:] = [second, first._replace(ts=1.0005)]
    record = track_one(talk.segments)
    assert "1 segment from the client out of order" in record["verdict"]
    assert "the capture cannot tell" in record["verdict"]


def test_record_verdict_missed_bytes_and_zero_window():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 300)
    talk.segments.pop()
    talk.server(ACK, window=0)
    record = track_one(talk.segments)
    assert "the capture missed 300 B that were acknowledged" in record["verdict"]
    assert "the server's receive window was full" in record["verdict"]


def test_record_verdict_reset_after_handshake_before_data():
    talk = Conversation()
    talk.handshake()
    talk.client(RST | ACK, at=talk.time + 0.5)
    record = track_one(talk.segments)
    assert record["verdict"] == (
        "reset by the client 500.0 ms after the handshake, before any data"
    )


def test_record_verdict_rejected():
    talk = Conversation()
    syn = talk.client(SYN, at=0.0)
    talk.client(SYN, seq=syn.seq, at=1.0)
    talk.server(RST | ACK, seq=0, at=1.0004)
    record = track_one(talk.segments)
    assert record["verdict"] == (
        "server refused: SYN answered by RST after 400 µs (2 SYNs)"
    )
