"""Connection lifecycles as an observer sees them, one crafted capture each.

Each scenario is scripted with ``Conversation``; the out-of-order cases are
written to a pcap file and read through the real decoder and pipeline.
"""

from pathlib import Path

import pytest
from scripted import CLIENT, Conversation, track, track_one, write_pcap

from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN, Segment
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.endpoint import MAX_HANDSHAKE_TIMES
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.flow.zeek import MAX_REPEATED_LETTERS
from tcpwatch.pipeline import read_captures

TFO_COOKIE = bytes([34, 10]) + b"cookie01"
"""TCP Fast Open option (kind 34) with an 8-byte cookie."""


def read_pcap(segments: list[Segment], tmp_path: Path) -> list[dict[str, object]]:
    """Write ``segments`` to a pcap in list order and read it back as records."""
    path = tmp_path / "crafted.pcap"
    write_pcap(segments, str(path))
    conns: list[Connection] = []
    read_captures([str(path)], FlowTracker(), conns.append)
    return [build_record(conn) for conn in sorted(conns, key=lambda c: c.number)]


def test_tracker_syn_retransmitted_is_one_attempt():
    talk = Conversation()
    syn = talk.client(SYN, at=0.0)
    for at in (1.0, 3.0):
        talk.client(SYN, at=at, seq=syn.seq)
    talk.server(SYN | ACK, at=3.02)
    talk.client(ACK, at=3.021)
    record = track_one(talk.segments)
    assert record["syn_retransmissions"] == 2
    assert record["syn_backoffs"] == [1.0, 2.0]
    assert record["history"] == "ShA"
    assert record["handshake"] == "complete"
    assert abs(record["rtt_syn_synack"] - 0.02) < 1e-9
    assert record["orig_retransmissions"] == 0
    assert record["conn_state"] == "S1"
    assert record["verdict"] == (
        "still open at the end of the capture after 0 B; "
        "the SYN was sent 3 times over 3.00 s before an answer"
    )


def test_tracker_synack_retransmitted():
    talk = Conversation()
    talk.client(SYN, at=0.0)
    synack = talk.server(SYN | ACK, at=0.01)
    for at in (1.01, 3.01):
        talk.server(SYN | ACK, at=at, seq=synack.seq)
    talk.client(ACK, at=3.012)
    record = track_one(talk.segments)
    assert record["synack_retransmissions"] == 2
    assert record["synack_backoffs"] == [1.0, 2.0]
    assert record["history"] == "ShA"
    assert record["resp_retransmissions"] == 0
    assert abs(record["rtt_synack_ack"] - 0.002) < 1e-9


def test_tracker_synack_never_acknowledged():
    talk = Conversation()
    talk.client(SYN, at=0.0)
    for at in (0.01, 1.01, 3.01):
        talk.server(SYN | ACK, at=at, seq=5000)
    record = track_one(talk.segments)
    assert record["handshake"] == "incomplete"
    assert record["history"] == "Sh"
    assert record["verdict"] == (
        "handshake did not complete: 3 SYN-ACKs over 3.00 s were never acknowledged"
    )


def test_tracker_simultaneous_open():
    talk = Conversation(client_port=5000, server_port=6000)
    talk.client(SYN)
    talk.server(SYN)
    # Each side answers the other's SYN with a SYN-ACK that repeats its ISN.
    talk.client(SYN | ACK, seq=1000)
    talk.server(SYN | ACK, seq=5000)
    talk.client(ACK)
    talk.client(PSH | ACK, 10)
    talk.server(ACK)
    tracker = FlowTracker(keep_segments=True)
    for segment in talk.segments:
        tracker.process(segment)
    (conn,) = tracker.flush()
    assert conn.segments is not None
    assert [view.marks for view in conn.segments[:4]] == [0, 0, 0, 0]
    record = build_record(conn)
    assert record["handshake"] == "simultaneous_open"
    assert record["syn_retransmissions"] == 0
    assert record["synack_retransmissions"] == 0
    assert record["orig_retransmissions"] == 0
    assert record["resp_retransmissions"] == 0
    assert record["history"] == "SsADa"
    assert record["orig_bytes"] == 10
    assert record["verdict"].startswith("simultaneous open; ")


def test_tracker_fast_open_accepted():
    talk = Conversation()
    talk.client(SYN, 100, options=TFO_COOKIE)
    talk.server(SYN | ACK)
    talk.client(ACK)
    talk.server(PSH | ACK, 200)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["fast_open"] == "accepted"
    assert record["orig_bytes"] == 100
    assert record["orig_retransmissions"] == 0
    # Zeek's history has T for data on a SYN: its end does not pass the
    # sequence number the SYN itself set up. tcpwatch keeps Zeek's letters.
    assert record["history"] == "SThAd"
    assert record["handshake"] == "complete"
    assert "TCP Fast Open) was accepted" in record["verdict"]


def test_tracker_fast_open_not_accepted():
    talk = Conversation()
    syn = talk.client(SYN, 100, options=TFO_COOKIE)
    talk.server(SYN | ACK, ack=syn.seq + 1)
    talk.client(ACK, seq=syn.seq + 1)
    # The server took only the SYN: the client sends the data again.
    talk.client(PSH | ACK, 100, seq=syn.seq + 1)
    talk.server(ACK)
    record = track_one(talk.segments)
    assert record["fast_open"] == "not_accepted"
    assert record["orig_bytes"] == 100
    assert record["orig_retransmissions"] == 1
    assert "not accepted" in record["verdict"]


def test_tracker_fast_open_cookie_request():
    talk = Conversation()
    talk.client(SYN, options=bytes([34, 2]))
    talk.server(SYN | ACK)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["fast_open"] == "cookie_request"


def test_tracker_handshake_ack_carries_data():
    talk = Conversation()
    talk.client(SYN, at=1.0)
    talk.server(SYN | ACK, at=1.01)
    talk.client(PSH | ACK, 50, at=1.011)
    talk.server(ACK, at=1.02)
    record = track_one(talk.segments)
    assert record["handshake"] == "complete"
    assert record["history"] == "ShDa"
    assert abs(record["rtt_synack_ack"] - 0.001) < 1e-9
    assert record["first_byte_time"] == 0.0
    assert record["orig_bytes"] == 50


def test_tracker_simultaneous_close():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10)
    talk.server(ACK)
    client_fin = talk.client(FIN | ACK)
    # The server's FIN crosses the client's: it does not acknowledge it.
    talk.server(FIN | ACK, ack=client_fin.seq)
    talk.client(ACK)
    talk.server(ACK)
    record = track_one(talk.segments)
    assert record["simultaneous_close"] is True
    assert record["teardown"] == "fin"
    assert record["conn_state"] == "SF"
    assert record["verdict"] == "closed cleanly by both sides at once after 10 B"


def test_tracker_ordinary_close_is_not_simultaneous():
    talk = Conversation()
    talk.handshake()
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["simultaneous_close"] is False
    assert record["verdict"] == "closed cleanly by the client after 0 B"


def test_tracker_fin_carries_data():
    talk = Conversation()
    talk.handshake()
    talk.client(FIN | PSH | ACK, 30)
    talk.server(FIN | ACK)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["orig_bytes"] == 30
    assert record["history"] == "ShAFf"
    assert record["conn_state"] == "SF"
    assert record["orig_retransmissions"] == 0


def test_tracker_half_close_data_flows_back():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 20)
    talk.client(FIN | ACK)
    talk.server(ACK)
    for _ in range(3):
        talk.server(PSH | ACK, 500)
        talk.client(ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["resp_bytes"] == 1500
    assert record["orig_bytes"] == 20
    assert record["teardown"] == "fin"
    assert record["conn_state"] == "SF"
    assert record["history"] == "ShADFadf"
    assert record["resp_retransmissions"] == 0
    assert record["orig_dup_acks"] == 0


def test_tracker_rst_after_fin_exchange_is_clean_close():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10)
    talk.server(ACK)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(RST, seq=talk.next_seq[True])
    record = track_one(talk.segments)
    assert record["teardown"] == "fin"
    assert record["conn_state"] == "SF"
    assert record["verdict"].startswith("closed cleanly by the client")


def test_tracker_rst_mid_transfer_by_server():
    talk = Conversation()
    talk.client(SYN, at=0.0)
    talk.server(SYN | ACK, at=0.01)
    talk.client(ACK, at=0.02)
    talk.client(PSH | ACK, 100, at=0.03)
    talk.server(ACK, at=0.04)
    talk.server(RST | ACK, at=2.02)
    record = track_one(talk.segments)
    assert record["conn_state"] == "RSTR"
    assert record["teardown"] == "reset_by_resp"
    assert record["history"] == "ShADar"
    assert record["verdict"] == (
        "reset by the server 2.00 s into the transfer (100 B exchanged)"
    )


def test_tracker_lone_rst_invents_no_handshake():
    talk = Conversation(client_port=40000, server_port=80)
    talk.server(RST | ACK, seq=5000, ack=1000)
    record = track_one(talk.segments)
    assert record["handshake"] == "not_seen"
    assert record["rtt_syn_synack"] is None
    assert record["rtt_synack_ack"] is None
    assert record["orig_pkts"] == 0
    assert record["resp_pkts"] == 1
    assert record["orig_bytes"] == 0
    assert record["history"] == "^r"
    assert record["conn_state"] == "RSTRH"
    assert record["verdict"].startswith("lone RST with no connection seen")


def test_tracker_lone_rst_without_server_port():
    talk = Conversation(client_port=40000, server_port=45000)
    talk.client(RST, seq=123456)
    record = track_one(talk.segments)
    assert record["history"] == "R"
    assert record["conn_state"] == "OTH"
    assert record["handshake"] == "not_seen"
    assert record["verdict"].startswith("lone RST with no connection seen")


def test_tracker_mid_stream_roles_from_ports():
    talk = Conversation(client_port=51000, server_port=443)
    talk.server(PSH | ACK, 100)
    talk.client(ACK)
    talk.client(PSH | ACK, 20)
    talk.server(ACK)
    record = track_one(talk.segments)
    assert record["id.resp_p"] == 443
    assert record["roles_inferred"] is True
    assert record["handshake"] == "not_seen"
    assert record["resp_bytes"] == 100
    assert record["orig_bytes"] == 20
    assert record["verdict"].startswith(
        "capture started mid-stream, roles inferred from ports; "
    )


def test_tracker_mid_stream_roles_guessed():
    talk = Conversation(client_port=51000, server_port=52000)
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    record = track_one(talk.segments)
    assert record["id.orig_p"] == 51000
    assert record["roles_inferred"] is True
    assert record["verdict"].startswith(
        "capture started mid-stream, roles guessed from the first packet; "
    )


def test_tracker_synack_first_roles_not_inferred():
    talk = Conversation(client_port=51000, server_port=52000)
    talk.server(SYN | ACK)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["id.orig_p"] == 51000
    assert record["roles_inferred"] is False


def test_tracker_reordered_file_sorted(tmp_path):
    talk = Conversation()
    talk.client(SYN, at=1.0)
    talk.server(SYN | ACK, at=1.01)
    talk.client(ACK, at=1.02)
    first = talk.client(PSH | ACK, 100, at=1.03)
    second = talk.client(PSH | ACK, 100, at=1.031)
    talk.server(ACK, at=1.04)
    # The file has the SYN-ACK before the SYN and the data swapped, but
    # the timestamps are those of the wire.
    segments = list(talk.segments)
    segments[0], segments[1] = segments[1], segments[0]
    segments[3], segments[4] = second, first
    records = read_pcap(segments, tmp_path)
    assert len(records) == 1
    record = records[0]
    assert record["history"] == "ShADa"
    assert record["roles_inferred"] is False
    assert abs(record["rtt_syn_synack"] - 0.01) < 1e-6
    assert record["orig_out_of_order"] == 0
    assert record["orig_segments_not_captured"] == 0
    assert record["orig_retransmissions"] == 0
    assert record["ts"] == 1.0


def test_tracker_file_order_alone_would_mislead():
    # The same swap fed to the tracker without the reorder buffer: this is
    # what the buffer in the offline pipeline prevents.
    talk = Conversation()
    talk.handshake()
    first = talk.client(PSH | ACK, 100)
    second = talk.client(PSH | ACK, 100)
    segments = talk.segments[:3] + [second, first]
    record = track_one(segments)
    assert record["orig_segments_not_captured"] == 1
    assert record["orig_out_of_order"] == 1


def test_tracker_port_reuse_on_closing_tuple():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10)
    talk.client(FIN | ACK)
    second = Conversation(client_isn=900000, server_isn=700000)
    second.time = talk.time + 0.5
    second.handshake()
    tracker = FlowTracker(keep_segments=True)
    for segment in talk.segments + second.segments:
        tracker.process(segment)
    conns = sorted(tracker.flush(), key=lambda c: c.number)
    assert len(conns) == 2
    first_record, second_record = (build_record(conn) for conn in conns)
    assert first_record["end_reason"] == "reused"
    assert first_record["orig_bytes"] == 10
    assert second_record["port_reused"] is True
    assert second_record["history"] == "ShA"
    assert conns[1].segments is not None
    assert conns[1].segments[0].marks & analysis.PORT_REUSE


def test_tracker_repeated_syn_after_reject():
    talk = Conversation()
    syn = talk.client(SYN)
    talk.server(RST | ACK, seq=0)
    talk.client(SYN, seq=syn.seq, at=talk.time + 1.0)
    records = track(talk.segments)
    assert len(records) == 1
    assert records[0]["syn_retransmissions"] == 1


def test_tracker_stray_synack_does_not_inflate_bytes():
    talk = Conversation()
    talk.handshake()
    talk.server(PSH | ACK, 1000)
    talk.client(ACK)
    talk.server(SYN | ACK, seq=99_000_000, advance=False)
    talk.server(PSH | ACK, 500)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["resp_bytes"] == 1500
    assert record["stray_syns"] == 1
    assert record["conn_state"] == "S1"


def test_tracker_sequence_wrap_both_sides():
    talk = Conversation(client_isn=0xFFFFFF00, server_isn=0xFFFFFFF0)
    talk.handshake()
    for _ in range(4):
        talk.client(PSH | ACK, 1000)
        talk.server(ACK)
    talk.server(PSH | ACK, 3000)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["orig_bytes"] == 4000
    assert record["resp_bytes"] == 3000
    assert record["orig_retransmissions"] == 0
    assert record["resp_retransmissions"] == 0
    assert record["missed_bytes"] == 0
    assert record["history"] == "ShADad"


def test_tracker_retransmission_back_across_wrap():
    talk = Conversation(client_isn=0xFFFFFF00)
    talk.handshake()
    before_wrap = talk.client(PSH | ACK, 1000)  # raw numbers wrap inside it
    talk.client(PSH | ACK, 1000)
    talk.server(ACK, ack=before_wrap.seq)  # acknowledges nothing of it yet
    again = talk.client(PSH | ACK, 1000, seq=before_wrap.seq, at=talk.time + 0.3)
    talk.server(ACK)
    tracker = FlowTracker(keep_segments=True)
    for segment in talk.segments:
        tracker.process(segment)
    (conn,) = tracker.flush()
    record = build_record(conn)
    assert again.seq == 0xFFFFFF01
    assert record["orig_bytes"] == 2000
    assert record["orig_retransmissions"] == 1
    assert conn.segments is not None
    views = [view for view in conn.segments if view.segment is again]
    assert views[0].rel_seq == 1
    assert views[0].marks & analysis.RETRANSMISSION
    assert conn.segments[-1].rel_ack == 2001


def test_tracker_idle_timeout_recorded():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10, at=1.0)
    late = Conversation(client_port=40001)
    late.client(SYN, at=100.0)
    records = track(talk.segments + late.segments, idle_timeout=30.0)
    assert records[0]["teardown"] == "idle_timeout"
    assert records[0]["end_reason"] == "idle_timeout"
    assert records[0]["verdict"].startswith("idle too long")
    assert records[1]["end_reason"] == "open"


def test_tracker_idle_after_half_close_keeps_end_reason():
    talk = Conversation()
    talk.handshake()
    talk.client(FIN | ACK, at=1.0)
    late = Conversation(client_port=40001)
    late.client(SYN, at=100.0)
    records = track(talk.segments + late.segments, idle_timeout=30.0)
    assert records[0]["teardown"] == "half_closed"
    assert records[0]["end_reason"] == "idle_timeout"


def test_tracker_half_duplex_capture_verdict():
    talk = Conversation(server_port=22)
    talk.client(SYN)
    talk.client(ACK, ack=5001)
    talk.client(PSH | ACK, 300, ack=5001)
    record = track_one(talk.segments)
    assert record["resp_pkts"] == 0
    assert record["orig_bytes"] == 300
    assert record["verdict"].startswith("only the client's side was captured")


def test_tracker_full_table_evicts_least_recently_active():
    tracker = FlowTracker(max_connections=2)
    first = Conversation(client_port=40001)
    second = Conversation(client_port=40002)
    third = Conversation(client_port=40003)
    tracker.process(first.client(SYN, at=1.0))
    tracker.process(second.client(SYN, at=2.0))
    tracker.process(first.client(SYN, at=3.0, seq=1000))  # a retransmitted SYN
    tracker.process(third.client(SYN, at=4.0))

    evicted = tracker.pop_finished()

    assert [conn.orig_p for conn in evicted] == [40002]
    assert evicted[0].end_reason == "evicted"
    assert tracker.evicted == 1
    assert sorted(conn.orig_p for conn in tracker.active()) == [40001, 40003]


def test_tracker_evicted_record():
    talk = Conversation(client_port=40001)
    talk.handshake()
    other = Conversation(client_port=40002)
    other.client(SYN)

    records = track(talk.segments + other.segments, max_connections=1)

    assert records[0]["end_reason"] == "evicted"
    assert records[0]["teardown"] == "open"
    assert records[0]["conn_state"] == "S1"
    assert records[1]["end_reason"] == "open"


def test_tracker_eviction_follows_activity_order():
    tracker = FlowTracker(max_connections=100)
    talks = [Conversation(client_port=40000 + index) for index in range(100)]
    for index, talk in enumerate(talks):
        tracker.process(talk.client(SYN, at=float(index)))
    # Touch the even ones again, oldest first: the odd ones are now older.
    for index in range(0, 100, 2):
        tracker.process(talks[index].client(SYN, at=100.0 + index, seq=1000))
    for index in range(50):
        late = Conversation(client_port=50000 + index)
        tracker.process(late.client(SYN, at=200.0 + index))

    evicted = [conn.orig_p for conn in tracker.pop_finished()]

    assert evicted == [40000 + index for index in range(1, 100, 2)]
    assert tracker.evicted == 50


def test_tracker_without_connection_limit():
    tracker = FlowTracker(max_connections=0)
    for index in range(300):
        tracker.process(Conversation(client_port=1024 + index).client(SYN))

    assert tracker.pop_finished() == []
    assert len(list(tracker.active())) == 300


def test_tracker_flush_in_activity_order():
    tracker = FlowTracker()
    talks = [Conversation(client_port=40000 + index) for index in range(3)]
    for talk in talks:
        tracker.process(talk.client(SYN, at=1.0))
    tracker.process(talks[0].client(SYN, at=2.0, seq=1000))

    finished = tracker.flush()

    assert [conn.orig_p for conn in finished] == [40001, 40002, 40000]


def test_tracker_land_segment():
    land = Segment(1.0, CLIENT, CLIENT, 80, 80, 1000, 0, SYN, 65535, 0, 40, b"", b"")
    tracker = FlowTracker()
    tracker.process(land)
    tracker.process(land._replace(ts=2.0, flags=RST))
    tracker.expire(20.0)

    finished = tracker.pop_finished()

    assert len(finished) == 1
    assert finished[0].end_reason == "closed"
    assert build_record(finished[0])["orig_pkts"] == 2


def test_tracker_syn_flood_on_one_tuple_counts_every_syn():
    talk = Conversation()
    for index in range(1000):
        talk.client(SYN, at=float(index), seq=1000)

    record = track_one(talk.segments)

    assert record["syn_retransmissions"] == 999
    assert len(record["syn_backoffs"]) == MAX_HANDSHAKE_TIMES - 2
    assert record["handshake_duration"] is None
    assert record["verdict"] == "no answer: 1000 SYNs over 16 min 39 s"


def test_tracker_rst_flood_history_bounded():
    talk = Conversation()
    talk.handshake()
    for index in range(500):
        talk.client(RST, seq=2000 + index * 10)

    record = track_one(talk.segments)

    assert record["history"].startswith("ShAR")
    assert len(record["history"]) == MAX_REPEATED_LETTERS


def test_tracker_idle_expiry_follows_last_activity():
    tracker = FlowTracker(idle_timeout=85.0)
    first = Conversation(client_port=40001)
    second = Conversation(client_port=40002)
    tracker.process(first.client(SYN, at=0.0))
    tracker.expire(5.0)
    tracker.process(second.client(SYN, at=10.0))
    tracker.process(first.client(SYN, at=20.0, seq=1000))

    tracker.expire(100.0)
    at_100 = [conn.orig_p for conn in tracker.pop_finished()]
    tracker.expire(104.0)
    at_104 = [conn.orig_p for conn in tracker.pop_finished()]
    tracker.expire(106.0)
    at_106 = [conn.orig_p for conn in tracker.pop_finished()]

    assert at_100 == [40002]
    assert at_104 == []
    assert at_106 == [40001]


def test_tracker_short_idle_timeout_ends_each_pause():
    talk = Conversation()
    talk.handshake()
    for index in range(5):
        talk.client(PSH | ACK, 10, at=0.01 + index * 0.3)
        talk.server(ACK)

    records = track(talk.segments, idle_timeout=0.05)

    assert len(records) == 5
    assert [record["end_reason"] for record in records[:4]] == ["idle_timeout"] * 4
    assert records[4]["end_reason"] == "open"
    assert records[0]["handshake"] == "complete"
    assert [record["orig_bytes"] for record in records] == [10] * 5


def idle_boundary_segments(timeout: float, busy: bool) -> list[Segment]:
    """Three client segments: a pause of exactly ``timeout``, then one just over.

    With ``busy``, another connection sends every 1/64 s meanwhile, so the
    pauses are not pauses of the whole capture.
    """
    talk = Conversation(client_port=40000)
    talk.client(PSH | ACK, 10, at=1.0)
    talk.client(PSH | ACK, 10, at=1.0 + timeout)
    talk.client(PSH | ACK, 10, at=1.0 + 2 * timeout + 2**-20)
    if not busy:
        return talk.segments
    other = Conversation(client_port=40001)
    for index in range(int(3 * timeout * 64) + 2):
        other.client(PSH | ACK, 10, at=1.0 + index / 64)
    return sorted(talk.segments + other.segments, key=lambda segment: segment.ts)


@pytest.mark.parametrize("busy", [False, True], ids=["alone", "busy"])
@pytest.mark.parametrize("timeout", [0.0625, 300.0])
def test_tracker_idle_timeout_boundary(timeout: float, busy: bool):
    # Both timeouts and all the times are exact binary fractions.
    segments = idle_boundary_segments(timeout, busy)

    records = track(segments, idle_timeout=timeout)

    talk = [record for record in records if record["id.orig_p"] == 40000]
    assert len(talk) == 2
    assert talk[0]["orig_pkts"] == 2
    assert talk[0]["end_reason"] == "idle_timeout"
    assert talk[1]["orig_pkts"] == 1
    assert talk[1]["end_reason"] == "open"


def test_tracker_short_idle_timeout_sweeps_other_connections():
    tracker = FlowTracker(idle_timeout=0.0625)
    quiet = Conversation(client_port=40000)
    busy = Conversation(client_port=40001)
    tracker.process(quiet.client(PSH | ACK, 10, at=1.0))
    finished_by = {}
    for index in range(1, 9):
        tracker.process(busy.client(PSH | ACK, 10, at=1.0 + index / 64))
        finished_by[index] = [conn.orig_p for conn in tracker.pop_finished()]

    # The quiet connection has been idle for more than the timeout from
    # 1 + 5/64 s on. The sweep runs every half timeout, 2/64 s, so it finishes
    # the connection within one more interval.
    assert finished_by[4] == []
    assert [40000] in (finished_by[5], finished_by[6])
    assert sum(len(ports) for ports in finished_by.values()) == 1


def test_tracker_sweep_interval_follows_close_delay():
    tracker = FlowTracker(close_delay=0.0625)
    closing = Conversation(client_port=40000)
    busy = Conversation(client_port=40001)
    closing.handshake()
    closing.client(FIN | ACK, at=0.999)
    # The connection's last time: a closed connection keeps the time of the
    # packet that closed it.
    closing.server(FIN | ACK, at=1.0)
    closing.client(ACK, at=1.0)
    for segment in closing.segments:
        tracker.process(segment)
    finished_by = {}
    for index in range(1, 9):
        tracker.process(busy.client(PSH | ACK, 10, at=1.0 + index / 64))
        finished_by[index] = [conn.orig_p for conn in tracker.pop_finished()]

    assert finished_by[4] == []
    assert [40000] in (finished_by[5], finished_by[6])


def closed_exchange(client_port: int, at: float) -> Conversation:
    """Handshake, request, response and both FINs, starting at ``at``."""
    talk = Conversation(client_port=client_port)
    talk.client(SYN, at=at)
    talk.server(SYN | ACK)
    talk.client(ACK)
    talk.client(PSH | ACK, 100)
    talk.server(PSH | ACK, 200)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    return talk


def test_tracker_full_table_finishes_closed_connection_first():
    tracker = FlowTracker(max_connections=2)
    still_open = Conversation(client_port=40001)
    still_open.client(SYN, at=1.0)
    still_open.server(SYN | ACK)
    still_open.client(ACK)
    closed = closed_exchange(40002, at=2.0)
    third = Conversation(client_port=40003)
    third.client(SYN, at=3.0)
    for segment in still_open.segments + closed.segments + third.segments:
        tracker.process(segment)

    finished = tracker.pop_finished()

    assert [conn.orig_p for conn in finished] == [40002]
    assert finished[0].end_reason == "closed"
    assert tracker.evicted == 0
    assert sorted(conn.orig_p for conn in tracker.active()) == [40001, 40003]


def test_tracker_full_table_closed_connections_not_evicted():
    clean = closed_exchange(40001, at=1.0)
    refused = Conversation(client_port=40002)
    refused.client(SYN, at=2.0)
    refused.server(RST | ACK, seq=0)
    reset = Conversation(client_port=40003)
    reset.client(SYN, at=3.0)
    reset.server(SYN | ACK)
    reset.client(ACK)
    reset.client(PSH | ACK, 5)
    reset.server(RST | ACK)
    last = Conversation(client_port=40004)
    last.client(SYN, at=4.0)
    tracker = FlowTracker(max_connections=1)
    segments = clean.segments + refused.segments + reset.segments + last.segments
    for segment in segments:
        tracker.process(segment)

    finished = tracker.flush()
    records = [build_record(conn) for conn in finished]

    assert tracker.evicted == 0
    assert [record["end_reason"] for record in records] == ["closed"] * 3 + ["open"]
    assert [record["conn_state"] for record in records] == ["SF", "REJ", "RSTR", "S0"]
    assert records[0]["verdict"].startswith("closed cleanly")
    assert records[1]["verdict"].startswith("server refused")
    assert records[2]["verdict"].startswith("reset by the server")


def test_tracker_full_table_fin_then_rst_is_closed():
    # The FIN closes the client's side first, so the later RST does not
    # start a close delay: the connection leaves the table from its front.
    talk = Conversation(client_port=40001)
    talk.handshake()
    talk.client(FIN | ACK)
    talk.client(RST | ACK)
    late = Conversation(client_port=40002)
    late.client(SYN, at=1.0)
    tracker = FlowTracker(max_connections=1)
    for segment in talk.segments + late.segments:
        tracker.process(segment)

    finished = tracker.pop_finished()

    assert [conn.orig_p for conn in finished] == [40001]
    assert finished[0].end_reason == "closed"
    assert tracker.evicted == 0


def test_tracker_full_table_evicts_open_after_closed():
    tracker = FlowTracker(max_connections=2)
    still_open = Conversation(client_port=40001)
    still_open.client(SYN, at=1.0)
    closed = closed_exchange(40002, at=2.0)
    for segment in still_open.segments + closed.segments:
        tracker.process(segment)
    for port in (40003, 40004):
        tracker.process(Conversation(client_port=port).client(SYN, at=3.0))

    finished = tracker.pop_finished()

    assert [conn.orig_p for conn in finished] == [40002, 40001]
    assert [conn.end_reason for conn in finished] == ["closed", "evicted"]
    assert tracker.evicted == 1
