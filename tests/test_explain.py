"""Explanations: a note per step, in every language, built from the segments."""

import pytest
from scripted import MSS_WS_SACK, Conversation

from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.i18n import LANGUAGES, Catalogue, catalogue
from tcpwatch.render.explain import (
    Explainer,
    build_verdict,
    payload_preview,
    verdict_text,
)


def tracked(talk: Conversation) -> Connection:
    tracker = FlowTracker(keep_segments=True)
    for segment in talk.segments:
        tracker.process(segment)
    finished = tracker.flush()
    assert len(finished) == 1
    return finished[0]


def all_notes(conn: Connection, lang: str = "en") -> list[list[str]]:
    explainer = Explainer(conn, catalogue(lang))
    return [explainer.notes(view) for view in conn.segments or []]


def exchange() -> Conversation:
    talk = Conversation(client_isn=1000, server_isn=5000)
    talk.handshake()
    talk.client(PSH | ACK, 1460)
    talk.server(ACK)
    talk.server(PSH | ACK, 300)
    talk.client(ACK)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    return talk


def test_explain_syn_offers_isn_and_options():
    notes = all_notes(tracked(exchange()))
    syn = notes[0][0]
    assert "ISN is 1000" in syn
    assert "MSS 1460" in syn
    assert "window scale 7 (×128)" in syn
    assert "SACK" in syn


def test_explain_syn_without_options_names_defaults():
    talk = Conversation()
    talk.client(SYN, options=b"\x01")
    notes = all_notes(tracked(talk))
    assert "no options" in notes[0][0]
    assert "MSS 536" in notes[0][0]


def test_explain_synack_ack_is_isn_plus_one():
    notes = all_notes(tracked(exchange()))
    synack = notes[1][0]
    assert "Its own ISN is 5000" in synack
    assert "raw 1001" in synack
    assert "client's ISN + 1" in synack
    assert "one sequence number" in synack


def test_explain_handshake_ack_completes():
    notes = all_notes(tracked(exchange()))
    assert "handshake is complete" in notes[2][0]
    assert "server's ISN + 1" in notes[2][0]


def test_explain_ack_says_bytes_up_to():
    notes = all_notes(tracked(exchange()))
    assert notes[3][0] == "The client sends 1460 bytes: bytes 1 to 1460 of its stream."
    assert notes[4] == ["The server acknowledges all bytes up to 1460."]


def test_explain_fin_closes_one_direction():
    notes = all_notes(tracked(exchange()))
    first_fin = notes[7][0]
    assert "client-to-server direction closes" in first_fin
    assert "The server may still send" in first_fin
    second_fin = notes[8]
    assert "closes its direction too" in second_fin[0]
    assert "acknowledges the client's FIN with ACK 1462" in second_fin[1]


def test_explain_refused_port():
    talk = Conversation(server_port=81)
    talk.client(SYN)
    talk.server(RST | ACK, seq=0)
    notes = all_notes(tracked(talk))
    assert "rejects the connection" in notes[1][0]
    assert "port 81" in notes[1][0]


def test_explain_abort_with_rst():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10)
    talk.server(RST | ACK)
    notes = all_notes(tracked(talk))
    assert notes[-1][0].startswith("The server aborts the connection with a RST")


def test_explain_rst_after_both_fins_is_late():
    talk = exchange()
    talk.server(RST)
    notes = all_notes(tracked(talk))
    assert notes[-1][0].startswith("A RST after both FINs")


def test_explain_syn_retransmission():
    talk = Conversation()
    talk.client(SYN, at=0.0, seq=1000)
    talk.client(SYN, at=1.0, seq=1000)
    notes = all_notes(tracked(talk))
    assert "sends its SYN again" in notes[1][0]


def test_explain_data_retransmission_says_when_first_sent():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 100, at=0.010)
    talk.client(PSH | ACK, 100, at=0.250, seq=1001)
    conn = tracked(talk)
    assert conn.segments is not None
    assert conn.segments[-1].marks & analysis.RETRANSMISSION
    notes = all_notes(conn)
    assert "Retransmission" in notes[-1][0]
    assert "bytes 1 to 100 again" in notes[-1][0]
    assert "first sent at 9.00 ms" in notes[-1][0]
    assert "lost" in notes[-1][0]


@pytest.mark.parametrize(
    ("mark", "words"),
    [
        (analysis.DUP_ACK, "Duplicate ACK"),
        (analysis.ZERO_WINDOW, "receive buffer is full"),
        (analysis.KEEP_ALIVE, "Keep-alive"),
        (analysis.WINDOW_UPDATE, "Window update"),
        (analysis.OUT_OF_ORDER, "Out-of-order"),
        (analysis.FAST_RETRANSMISSION, "Fast retransmission"),
        (analysis.SPURIOUS_RETRANSMISSION, "Spurious retransmission"),
        (analysis.PREVIOUS_SEGMENT_NOT_CAPTURED, "missing from the capture"),
        (analysis.WINDOW_FULL, "Window full"),
        (analysis.ZERO_WINDOW_PROBE, "Zero-window probe"),
    ],
)
def test_explain_mark(mark: int, words: str):
    conn = tracked(exchange())
    assert conn.segments is not None
    conn.segments[4] = conn.segments[4]._replace(marks=mark)
    notes = all_notes(conn)
    assert any(words in note for note in notes[4]), notes[4]


def test_explain_payload_preview_escapes_control_characters():
    preview = payload_preview(b"GET /\x1b[2J\r\n")
    assert preview == "GET /\\x1b[2J\\x0d\\x0a"


def test_explain_payload_preview_skips_binary():
    assert payload_preview(bytes(range(0, 32))) == ""


def test_explain_payload_preview_marks_cut():
    assert payload_preview(b"a" * 100).endswith("…")


class RecordingCatalogue(Catalogue):
    """A catalogue that remembers which keys were looked up."""

    def __init__(self, code: str) -> None:
        base = catalogue(code)
        self.code = base.code
        self.name = base.name
        self.messages = base.messages
        self._plural = base._plural
        self.used: set[str] = set()

    def text(self, key: str, **values: object) -> str:
        self.used.add(key)
        return super().text(key, **values)


def every_step() -> list[Connection]:
    """Conversations that between them take every kind of step."""
    conns = [tracked(exchange())]
    talk = Conversation()
    talk.client(SYN, options=b"\x01", at=0.0, seq=1000)
    talk.client(SYN, options=b"\x01", at=1.0, seq=1000)
    talk.server(SYN | ACK, options=b"\x01")
    talk.server(SYN | ACK, options=b"\x01", seq=5000)
    talk.client(ACK)
    talk.client(PSH | ACK, 10, at=1.1)
    talk.client(PSH | ACK, 10, at=1.5, seq=1001)
    talk.client(RST | ACK)
    conns.append(tracked(talk))
    talk = Conversation()
    talk.client(SYN)
    talk.server(RST | ACK, seq=0)
    conns.append(tracked(talk))
    talk = Conversation()
    talk.client(SYN)
    talk.server(SYN, options=MSS_WS_SACK)
    conns.append(tracked(talk))
    talk = exchange()
    talk.server(RST)
    conns.append(tracked(talk))
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10, payload=b"HELO here\r\n", at=0.01)
    talk.client(PSH | ACK, 10, at=0.3, seq=1001)
    talk.client(PSH | ACK, 10)
    conns.append(tracked(talk))
    conn = conns[-1]
    assert conn.segments is not None
    every_mark = 0
    for bit in analysis.MARK_NAMES:
        every_mark |= bit
    conn.segments[-1] = conn.segments[-1]._replace(marks=every_mark)
    return conns


@pytest.mark.parametrize("code", LANGUAGES)
def test_explain_every_step_kind_in_every_language(code: str):
    recorder = RecordingCatalogue(code)
    for conn in every_step():
        explainer = Explainer(conn, recorder)
        for view in conn.segments or []:
            assert all(explainer.notes(view))
    for phase in ("handshake", "transfer", "teardown"):
        recorder.text("explain.phase." + phase)
    explain_keys = {key for key in recorder.messages if key.startswith("explain.")}
    missing = explain_keys - recorder.used
    assert sorted(missing) == [], f"never explained: {sorted(missing)}"


# -- verdicts --------------------------------------------------------------------


def verdict_cases() -> dict[str, Conversation]:
    cases = {}
    cases["fin"] = exchange()
    talk = Conversation()
    talk.client(SYN, at=1.0)
    talk.server(RST | ACK, at=1.0004, seq=0)
    cases["rejected"] = talk
    talk = Conversation()
    for at in (0.0, 1.0, 3.0):
        talk.client(SYN, at=at, seq=1000)
    cases["no_reply"] = talk
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 10)
    talk.server(RST | ACK)
    cases["reset"] = talk
    talk = Conversation()
    talk.handshake()
    talk.client(FIN | ACK)
    talk.server(ACK)
    cases["half_closed"] = talk
    talk = Conversation()
    talk.handshake()
    cases["open"] = talk
    talk = Conversation()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    cases["midstream"] = talk
    talk = Conversation()
    talk.client(SYN)
    talk.server(SYN | ACK)
    cases["incomplete"] = talk
    return cases


@pytest.mark.parametrize("case", sorted(verdict_cases()))
@pytest.mark.parametrize("code", LANGUAGES)
def test_verdict_built_in_every_language(case: str, code: str):
    conn = tracked(verdict_cases()[case])
    sentence = build_verdict(conn, build_record(conn), catalogue(code))
    assert sentence
    assert "{" not in sentence


def test_verdict_japanese_carries_the_facts():
    conn = tracked(verdict_cases()["rejected"])
    record = build_record(conn)
    sentence = verdict_text(conn, record, catalogue("ja"))
    assert sentence.startswith("サーバーが拒否")
    assert "400 µs" in sentence
    conn = tracked(verdict_cases()["fin"])
    sentence = verdict_text(conn, build_record(conn), catalogue("ja"))
    assert "1.8 kB" in sentence
    assert "クライアント" in sentence


def test_verdict_english_is_the_record_sentence():
    conn = tracked(verdict_cases()["fin"])
    record = build_record(conn)
    assert verdict_text(conn, record, catalogue("en")) == record["verdict"]
