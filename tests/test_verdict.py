"""Verdict sentences when the capture holds only part of a connection."""

from scripted import Conversation

from tcpwatch.capture.segment import ACK, FIN, PSH, SYN
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.i18n import catalogue
from tcpwatch.render.explain import build_verdict


def exchange() -> Conversation:
    """A clean exchange: handshake, request, response, FINs both ways."""
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    talk.server(PSH | ACK, 2000)
    talk.client(ACK)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    return talk


def verdicts(segments: list) -> tuple[dict, str]:
    """Return the record (English verdict inside) and the Japanese verdict."""
    tracker = FlowTracker()
    for segment in segments:
        tracker.process(segment)
    [conn] = tracker.flush()
    record = build_record(conn)
    return record, build_verdict(conn, record, catalogue("ja"))


def test_verdict_synack_missing_from_capture() -> None:
    segments = exchange().segments
    record, japanese = verdicts(segments[:1] + segments[2:])
    assert record["verdict"] == (
        "SYN-ACK not captured; closed cleanly by the client after 2.1 kB"
    )
    assert japanese.startswith("SYN-ACK はキャプチャされていません。")


def test_verdict_only_the_server_side_captured() -> None:
    from scripted import SERVER

    segments = [s for s in exchange().segments if s.src == SERVER]
    record, japanese = verdicts(segments)
    assert record["orig_pkts"] == 0
    assert record["verdict"].startswith(
        "only the server's side was captured (2.0 kB sent): the client's packets"
    )
    assert japanese.startswith("サーバー側だけがキャプチャされています")


def test_verdict_only_the_client_side_captured_in_japanese() -> None:
    from scripted import CLIENT

    segments = [s for s in exchange().segments if s.src == CLIENT]
    record, japanese = verdicts(segments)
    assert record["verdict"].startswith("only the client's side was captured")
    assert japanese.startswith("クライアント側だけがキャプチャされています")


def test_verdict_synack_never_acknowledged_stays() -> None:
    talk = Conversation()
    talk.client(SYN)
    talk.server(SYN | ACK)
    record, _ = verdicts(talk.segments)
    assert record["verdict"] == (
        "handshake did not complete: the SYN-ACK was never acknowledged"
    )
