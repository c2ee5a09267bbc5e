"""Flow tracker scenarios: scripted segments in, connection records out."""

from scripted import Conversation, track, track_one

from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN


def test_tracker_clean_exchange():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    talk.server(PSH | ACK, 1000)
    talk.client(ACK)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["conn_state"] == "SF"
    assert record["history"] == "ShADadFf"
    assert record["handshake"] == "complete"
    assert record["teardown"] == "fin"
    assert record["orig_bytes"] == 100
    assert record["resp_bytes"] == 1000
    assert record["orig_pkts"] == 6
    assert record["resp_pkts"] == 4
    assert record["orig_mss"] == 1460
    assert record["orig_wscale"] == 7
    assert record["sack_permitted"] is True
    assert record["verdict"] == "closed cleanly by the client after 1.1 kB"


def test_tracker_handshake_timings():
    talk = Conversation()
    talk.client(SYN, at=10.0)
    talk.server(SYN | ACK, at=10.004)
    talk.client(ACK, at=10.0045)
    record = track_one(talk.segments)
    assert abs(record["rtt_syn_synack"] - 0.004) < 1e-9
    assert abs(record["rtt_synack_ack"] - 0.0005) < 1e-9
    assert record["reject_latency"] is None
    assert record["conn_state"] == "S1"
    assert record["teardown"] == "open"


def test_tracker_rejected_connection():
    talk = Conversation()
    talk.client(SYN, at=1.0)
    talk.server(RST | ACK, at=1.0004, seq=0)
    record = track_one(talk.segments)
    assert record["conn_state"] == "REJ"
    assert record["history"] == "Sr"
    assert record["handshake"] == "rejected"
    assert record["teardown"] == "reset_by_resp"
    assert abs(record["reject_latency"] - 0.0004) < 1e-9
    assert record["rtt_syn_synack"] is None
    assert record["verdict"].startswith("server refused: SYN answered by RST after")


def test_tracker_syn_without_reply():
    talk = Conversation()
    for at in (0.0, 1.0, 3.0):
        talk.client(SYN, at=at, seq=1000)
    record = track_one(talk.segments)
    assert record["conn_state"] == "S0"
    assert record["history"] == "S"
    assert record["handshake"] == "no_reply"
    assert record["syn_retransmissions"] == 2
    assert record["orig_pkts"] == 3
    assert record["verdict"] == "no answer: 3 SYNs over 3.00 s"


def test_tracker_abort_by_originator():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10)
    talk.server(ACK)
    talk.client(RST | ACK)
    record = track_one(talk.segments)
    assert record["conn_state"] == "RSTO"
    assert record["history"] == "ShADaR"
    assert record["teardown"] == "reset_by_orig"


def test_tracker_half_close_with_data_after():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 20)
    talk.client(FIN | ACK)
    talk.server(ACK)
    for _ in range(3):
        talk.server(PSH | ACK, 500)
        talk.client(ACK)
    record = track_one(talk.segments)
    assert record["teardown"] == "half_closed"
    assert record["conn_state"] == "S2"
    assert record["resp_bytes"] == 1500
    assert record["orig_bytes"] == 20


def test_tracker_rst_after_fin_exchange_stays_clean():
    talk = Conversation()
    talk.handshake()
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    talk.server(RST)
    record = track_one(talk.segments)
    assert record["conn_state"] == "SF"
    assert record["teardown"] == "fin"


def test_tracker_mid_stream_roles_from_port():
    talk = Conversation(client_port=51000, server_port=443)
    talk.server(PSH | ACK, 100)
    talk.client(ACK)
    talk.server(PSH | ACK, 100)
    record = track_one(talk.segments)
    assert record["id.resp_p"] == 443
    assert record["roles_inferred"] is True
    assert record["handshake"] == "not_seen"
    assert record["history"].startswith("^")
    assert record["conn_state"] == "OTH"


def test_tracker_synack_first_names_responder():
    talk = Conversation(client_port=51000, server_port=8443)
    talk.server(SYN | ACK)
    talk.client(ACK)
    record = track_one(talk.segments)
    assert record["id.orig_p"] == 51000
    assert record["roles_inferred"] is False
    assert record["history"] == "^hA"


def test_tracker_port_reuse_new_isn():
    talk = Conversation()
    talk.handshake()
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    second = Conversation(client_isn=900000, server_isn=700000)
    second.time = talk.time + 1
    second.handshake()
    records = track(talk.segments + second.segments)
    assert len(records) == 2
    assert records[0]["conn_state"] == "SF"
    assert records[1]["conn_state"] == "S1"
    assert records[1]["history"] == "ShA"


def test_tracker_sequence_wraparound():
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


def test_tracker_retransmission_counted_once():
    talk = Conversation()
    talk.handshake()
    first = talk.client(PSH | ACK, 500)
    talk.client(PSH | ACK, 500, seq=first.seq, at=talk.time + 0.3)
    talk.server(ACK)
    record = track_one(talk.segments)
    assert record["orig_bytes"] == 500
    assert record["orig_retransmissions"] == 1
    assert "T" in record["history"]


def test_tracker_idle_timeout_finishes_connection():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10, at=1.0)
    late = Conversation(client_port=40001)
    late.client(SYN, at=100.0)
    records = track(talk.segments + late.segments, idle_timeout=30.0)
    assert records[0]["teardown"] == "idle_timeout"
    assert records[1]["teardown"] == "open"


def test_tracker_simultaneous_open_is_one_connection():
    talk = Conversation(client_port=5000, server_port=6000)
    talk.client(SYN)
    talk.server(SYN)
    talk.client(SYN | ACK, seq=1000)
    talk.server(SYN | ACK, seq=5000)
    talk.client(ACK)
    talk.server(ACK)
    record = track_one(talk.segments)
    assert record["handshake"] == "simultaneous_open"
    assert record["syn_retransmissions"] == 0
    assert record["synack_retransmissions"] == 0
