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


def evicted(segments: list) -> tuple[dict, str]:
    """Track ``segments`` with room for one connection, then start another.

    The new one comes within the close delay of the first, so the first has
    not left the table on its own yet. Return the first's record and its
    Japanese verdict.
    """
    tracker = FlowTracker(max_connections=1)
    for segment in segments:
        tracker.process(segment)
    tracker.process(Conversation(client_port=40001).client(SYN, at=1.0))
    [conn] = tracker.pop_finished()
    record = build_record(conn)
    return record, build_verdict(conn, record, catalogue("ja"))


def test_verdict_evicted_open_connection() -> None:
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 100)
    record, japanese = evicted(talk.segments)
    assert record["end_reason"] == "evicted"
    assert record["verdict"] == (
        "still open after 100 B; tracking stopped early: the connection table "
        "was full (--max-connections)"
    )
    assert japanese == (
        "100 Bをやり取りした時点でまだ開いていました。接続テーブルが満杯になった"
        "ため（--max-connections）、追跡を途中で止めました"
    )


def test_verdict_evicted_half_open_connection() -> None:
    talk = Conversation()
    talk.client(SYN)
    record, japanese = evicted(talk.segments)
    assert record["end_reason"] == "evicted"
    assert record["verdict"] == (
        "no answer to the SYN; tracking stopped early: the connection table "
        "was full (--max-connections)"
    )
    assert japanese.startswith("SYN に応答がありません。")
    assert japanese.endswith("追跡を途中で止めました")


def test_verdict_evicted_half_closed_connection() -> None:
    talk = Conversation()
    talk.handshake()
    talk.client(FIN | ACK)
    record, _ = evicted(talk.segments)
    sentence = record["verdict"]
    assert record["end_reason"] == "evicted"
    assert sentence.startswith("half-closed: the client sent FIN")
    assert "; tracking stopped early: the connection table was full" in sentence


def test_verdict_closed_connection_not_evicted() -> None:
    record, japanese = evicted(exchange().segments)
    assert record["end_reason"] == "closed"
    assert record["verdict"] == "closed cleanly by the client after 2.1 kB"
    assert "追跡" not in japanese


def test_verdict_syn_missing_from_capture() -> None:
    segments = exchange().segments
    record, japanese = verdicts(segments[1:])
    assert record["handshake"] == "complete"
    assert record["verdict"] == (
        "SYN not captured; closed cleanly by the client after 2.1 kB"
    )
    assert japanese.startswith("SYN はキャプチャされていません。")


def test_verdict_idle_timeout_after_half_close_says_so() -> None:
    talk = Conversation()
    talk.handshake()
    talk.server(FIN | ACK, at=0.1)
    tracker = FlowTracker(idle_timeout=1.0)
    for segment in talk.segments:
        tracker.process(segment)
    later = Conversation(client_port=40001)
    tracker.process(later.client(SYN, at=5.0))
    first = next(c for c in tracker.pop_finished() if c.orig_p == 40000)
    record = build_record(first)
    assert record["end_reason"] == "idle_timeout"
    assert record["verdict"].startswith("half-closed: the server sent FIN")
    assert (
        "then idle longer than --idle-timeout: tracking stopped" in (record["verdict"])
    )
    japanese = build_verdict(first, record, catalogue("ja"))
    assert "--idle-timeout より長く無通信" in japanese
