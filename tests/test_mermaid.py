"""Mermaid export: the diagrams follow Mermaid's sequence-diagram grammar.

``check_structure`` accepts only the statements tcpwatch writes, with the
token rules of Mermaid's lexer (``sequenceDiagram.jison`` in mermaid-js/mermaid):
a message, note, title or alias text runs to the end of the line and may not
contain ``;`` or ``#`` except in entity codes, and ``%%`` starts a comment.
"""

import io
import re

import pytest
from scripted import Conversation

from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN
from tcpwatch.export.mermaid import MermaidWriter, escape, sequence_diagram
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker

_TEXT = r"(?:[^#;\n%]|#\d+;)+"
_STATEMENTS = [
    re.compile(rf"    title {_TEXT}"),
    re.compile(rf"    participant (?P<declared>[OR]) as {_TEXT}"),
    re.compile(rf"    (?P<sender>[OR])(?:->>|-->>|-x)(?P<receiver>[OR]): {_TEXT}"),
    re.compile(rf"    Note (?:over O,R|right of R|left of O): {_TEXT}"),
]


def check_structure(diagram: str) -> list[str]:
    """Assert ``diagram`` is a valid sequence diagram; return its message lines."""
    lines = diagram.rstrip("\n").split("\n")
    assert lines[0] == "sequenceDiagram"
    declared: set[str] = set()
    messages = []
    for line in lines[1:]:
        match = next(
            (p.fullmatch(line) for p in _STATEMENTS if p.fullmatch(line)), None
        )
        assert match is not None, f"not a valid statement: {line!r}"
        if match.groupdict().get("declared"):
            declared.add(match["declared"])
        if match.groupdict().get("sender"):
            assert match["sender"] in declared, line
            assert match["receiver"] in declared, line
            assert match["sender"] != match["receiver"], line
            messages.append(line)
    assert declared == {"O", "R"}
    return messages


def tracked(talk: Conversation) -> Connection:
    tracker = FlowTracker(keep_segments=True)
    for segment in talk.segments:
        tracker.process(segment)
    return tracker.flush()[0]


def exchange() -> Conversation:
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    return talk


def test_mermaid_one_message_per_segment():
    conn = tracked(exchange())
    assert conn.segments is not None
    messages = check_structure(sequence_diagram(conn))
    assert len(messages) == len(conn.segments)


def test_mermaid_message_direction_and_label():
    conn = tracked(exchange())
    messages = check_structure(sequence_diagram(conn))
    assert messages[0] == "    O->>R: SYN seq=0 win=65535"
    assert messages[1] == "    R->>O: SYN,ACK seq=0 ack=1 win=65535"
    assert messages[3].startswith("    O->>R: PSH,ACK seq=1 ack=1 len=100 ")


def test_mermaid_participants_name_endpoints():
    diagram = sequence_diagram(tracked(exchange()))
    assert "    participant O as originator 10.0.0.1:40000" in diagram
    assert "    participant R as responder 10.0.0.2:80" in diagram


def test_mermaid_notes_for_phases_and_rtt():
    diagram = sequence_diagram(tracked(exchange()))
    notes = [line for line in diagram.splitlines() if "Note" in line]
    assert notes[0].startswith("    Note over O,R: handshake ")
    assert notes[1] == "    Note right of R: RTT 1.00 ms"
    assert any(note.startswith("    Note over O,R: transfer ") for note in notes)
    assert any(note.startswith("    Note over O,R: teardown ") for note in notes)
    assert notes[-1].startswith("    Note over O,R: verdict: closed cleanly")


def test_mermaid_rst_is_a_cross():
    talk = Conversation()
    talk.client(SYN)
    talk.server(RST | ACK, seq=0)
    messages = check_structure(sequence_diagram(tracked(talk)))
    assert messages[1].startswith("    R-xO: RST,ACK")


def test_mermaid_retransmission_is_dotted_and_named():
    conn = tracked(exchange())
    assert conn.segments is not None
    conn.segments[3] = conn.segments[3]._replace(marks=analysis.RETRANSMISSION)
    messages = check_structure(sequence_diagram(conn))
    assert messages[3].startswith("    O-->>R: PSH,ACK")
    assert messages[3].endswith("[retransmission]")


def test_mermaid_folds_long_transfer():
    talk = Conversation(step=0.0001)
    talk.handshake()
    for _ in range(50):
        talk.server(ACK, 1000)
    conn = tracked(talk)
    diagram = sequence_diagram(conn)
    messages = check_structure(diagram)
    assert len(messages) < 20
    assert re.search(r"Note over O,R: … \d+ segments over", diagram)
    full = check_structure(sequence_diagram(conn, full=True))
    assert len(full) == 53


def test_mermaid_japanese():
    diagram = sequence_diagram(tracked(exchange()), lang="ja")
    check_structure(diagram)
    assert "participant O as 発信側 10.0.0.1:40000" in diagram
    assert "Note over O,R: ハンドシェイク" in diagram
    assert "判定: " in diagram


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a;b", "a#59;b"),
        ("#1", "#35;1"),
        ("50%% off", "50#37;#37; off"),
        ("<br>", "#60;br#62;"),
        ("line\nbreak", "line\\x0abreak"),
        ("host:80", "host:80"),
    ],
)
def test_mermaid_escape(text: str, escaped: str):
    assert escape(text) == escaped


def test_mermaid_writer_fences_each_diagram():
    stream = io.StringIO()
    writer = MermaidWriter(stream)
    writer.write(tracked(exchange()))
    writer.write(tracked(exchange()))
    writer.close()
    text = stream.getvalue()
    assert text.count("```mermaid\nsequenceDiagram\n") == 2
    assert text.count("\n```\n") == 2
    for block in re.findall(r"```mermaid\n(.*?)```", text, re.S):
        check_structure(block)
