"""Timeline rendering: golden text at fixed widths, layout rules, folding.

Golden files live in tests/golden/timeline/. After a deliberate change to the
layout, regenerate them with ``TCPWATCH_UPDATE_GOLDEN=1 pytest
tests/test_timeline.py`` and review the diff before committing it.
"""

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console
from scripted import Conversation

from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.render.timeline import FOLD_ABOVE, Timeline
from tcpwatch.render.timeline_items import FOLD_EPISODE_GAP, FOLD_NOTABLE

GOLDEN = Path(__file__).parent / "golden" / "timeline"
UPDATE = os.environ.get("TCPWATCH_UPDATE_GOLDEN") == "1"


def tracked(talk: Conversation) -> Connection:
    """Run a conversation through a tracker that keeps segments."""
    tracker = FlowTracker(keep_segments=True)
    for segment in talk.segments:
        tracker.process(segment)
    finished = tracker.flush()
    assert len(finished) == 1, f"expected one connection, got {len(finished)}"
    return finished[0]


def render(renderable: object, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return str(output)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with TCPWATCH_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from {path}"


# -- conversations, one per phase pattern ------------------------------------


def clean_exchange() -> Conversation:
    talk = Conversation(step=0.0004)
    talk.client(SYN, at=0.0)
    talk.server(SYN | ACK, at=0.020)
    talk.client(ACK, at=0.0202)
    talk.client(PSH | ACK, 18, payload=b"GET / HTTP/1.0\r\n\r\n", at=0.0203)
    talk.server(ACK, at=0.040)
    talk.server(PSH | ACK, 1460, payload=b"HTTP/1.0 200 OK\r\n", at=0.041)
    talk.client(ACK, at=0.0412)
    talk.server(FIN | ACK, at=0.042)
    talk.client(FIN | ACK, at=0.0425)
    talk.server(ACK, at=0.062)
    return talk


def refused() -> Conversation:
    talk = Conversation()
    talk.client(SYN, at=1.0)
    talk.server(RST | ACK, at=1.0003, seq=0)
    return talk


def no_reply() -> Conversation:
    talk = Conversation()
    for at in (0.0, 1.0, 3.0):
        talk.client(SYN, at=at, seq=1000)
    return talk


def aborted() -> Conversation:
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    talk.server(RST | ACK)
    return talk


def half_closed() -> Conversation:
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 20)
    talk.client(FIN | ACK)
    talk.server(ACK)
    talk.server(PSH | ACK, 500)
    talk.client(ACK)
    return talk


def midstream() -> Conversation:
    talk = Conversation(client_port=52000, server_port=443)
    talk.client(PSH | ACK, 200)
    talk.server(ACK)
    talk.server(PSH | ACK, 1000)
    talk.client(ACK)
    return talk


def simultaneous_open() -> Conversation:
    talk = Conversation(client_port=7000, server_port=7001)
    talk.client(SYN)
    talk.server(SYN)
    talk.client(SYN | ACK, seq=1000)
    talk.server(SYN | ACK, seq=5000)
    talk.client(ACK)
    return talk


def bulk(segments: int) -> Conversation:
    talk = Conversation(step=0.0001)
    talk.handshake()
    talk.client(PSH | ACK, 40)
    for index in range(segments):
        talk.server(ACK, 1448)
        if index % 2:
            talk.client(ACK)
    talk.server(FIN | ACK)
    talk.client(FIN | ACK)
    talk.server(ACK)
    return talk


PATTERNS = {
    "clean": clean_exchange,
    "refused": refused,
    "no_reply": no_reply,
    "aborted": aborted,
    "half_closed": half_closed,
    "midstream": midstream,
    "simultaneous_open": simultaneous_open,
}


@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("width", [80, 160])
def test_timeline_golden_phase_pattern(name: str, width: int):
    conn = tracked(PATTERNS[name]())
    text = render(Timeline(conn, title=True, verdict=True), width)
    check_golden(f"{name}-{width}", text)


@pytest.mark.parametrize("width", [80, 160])
def test_timeline_golden_explained(width: int):
    conn = tracked(clean_exchange())
    text = render(Timeline(conn, explain=True, title=True, verdict=True), width)
    check_golden(f"clean-explained-{width}", text)


@pytest.mark.parametrize("width", [80, 160])
def test_timeline_golden_japanese(width: int):
    conn = tracked(clean_exchange())
    timeline = Timeline(conn, explain=True, lang="ja", title=True, verdict=True)
    check_golden(f"clean-ja-{width}", render(timeline, width))


def test_timeline_golden_folded_bulk():
    conn = tracked(bulk(60))
    check_golden("bulk-folded-80", render(Timeline(conn, verdict=True), 80))


# -- analysis marks, one golden each ------------------------------------------

# Each mark is put on the client's data segment of a clean exchange, so the
# golden shows how the timeline draws that mark and nothing else changes.
MARKS = {
    "retransmission": analysis.RETRANSMISSION,
    "fast_retransmission": analysis.FAST_RETRANSMISSION,
    "spurious_retransmission": analysis.SPURIOUS_RETRANSMISSION,
    "out_of_order": analysis.OUT_OF_ORDER,
    "previous_segment_not_captured": analysis.PREVIOUS_SEGMENT_NOT_CAPTURED,
    "duplicate_ack": analysis.DUP_ACK,
    "zero_window": analysis.ZERO_WINDOW,
    "window_full": analysis.WINDOW_FULL,
    "zero_window_probe": analysis.ZERO_WINDOW_PROBE,
    "keep_alive": analysis.KEEP_ALIVE,
    "window_update": analysis.WINDOW_UPDATE,
}
_DATA_ROW = 3


def with_mark(mark: int) -> Connection:
    conn = tracked(clean_exchange())
    assert conn.segments is not None
    view = conn.segments[_DATA_ROW]
    conn.segments[_DATA_ROW] = view._replace(marks=mark)
    return conn


@pytest.mark.parametrize("name", sorted(MARKS))
def test_timeline_golden_mark(name: str):
    text = render(Timeline(with_mark(MARKS[name])), 80)
    check_golden(f"mark-{name}", text)


@pytest.mark.parametrize("name", sorted(MARKS))
def test_timeline_mark_named_on_arrow(name: str):
    word = analysis.MARK_NAMES[MARKS[name]]
    text = render(Timeline(with_mark(MARKS[name])), 160)
    arrow = next(line for line in text.splitlines() if "len=18" in line)
    assert f"[{word}]" in arrow


def test_timeline_mark_in_colour():
    console = Console(file=io.StringIO(), width=120, color_system="standard")
    console.print(Timeline(with_mark(analysis.RETRANSMISSION)))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    # Bold red (SGR 1;31) around the mark's words.
    assert re.search(r"\x1b\[1;31m\[retransmission\]", output), output


# -- layout rules ----------------------------------------------------------------


def arrow_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "▶" in line or "◀" in line]


@pytest.mark.parametrize("width", [60, 72, 80, 100, 132, 160, 200])
def test_timeline_fits_width(width: int):
    conn = tracked(half_closed())
    for explain in (False, True):
        text = render(Timeline(conn, explain=explain, title=True, verdict=True), width)
        for line in text.splitlines():
            assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}"


@pytest.mark.parametrize("width", [60, 80, 160])
def test_timeline_lifelines_aligned(width: int):
    conn = tracked(clean_exchange())
    text = render(Timeline(conn, explain=True), width)
    rows = [line for line in text.splitlines() if "│" in line and "─── " not in line]
    lefts = {line.index("│") for line in rows}
    assert len(lefts) == 1, lefts
    rights = {line.index("│", line.index("│") + 1) for line in rows}
    assert len(rights) == 1, rights


def test_timeline_one_arrowhead_per_segment():
    conn = tracked(clean_exchange())
    assert conn.segments is not None
    text = render(Timeline(conn), 80)
    arrows = arrow_lines(text)
    assert len(arrows) == len(conn.segments)
    for line in arrows:
        assert line.count("▶") + line.count("◀") == 1, line


def test_timeline_direction_of_arrows():
    conn = tracked(clean_exchange())
    arrows = arrow_lines(render(Timeline(conn), 80))
    assert "▶" in arrows[0]  # SYN from the originator, on the left
    assert "◀" in arrows[1]  # SYN-ACK from the responder


def test_timeline_long_label_continues_below_arrow():
    conn = with_mark(analysis.RETRANSMISSION | analysis.DUP_ACK)
    lines = render(Timeline(conn), 60).splitlines()
    index = next(i for i, line in enumerate(lines) if "PSH,ACK" in line)
    arrow, below = lines[index], lines[index + 1 : index + 4]
    assert "▶" in arrow
    assert "[duplicate ACK]" not in arrow
    assert any("[duplicate ACK]" in line for line in below)
    for line in below:
        assert line.index("│") == arrow.index("│")
        assert "▶" not in line
    for line in lines:
        assert cell_len(line) <= 60


def test_timeline_handshake_bracket_shows_rtt():
    conn = tracked(clean_exchange())
    text = render(Timeline(conn), 80)
    lines = text.splitlines()
    syn = next(line for line in lines if "SYN seq=0" in line)
    synack = next(line for line in lines if "SYN,ACK" in line)
    assert syn.rstrip().endswith("┐")
    assert "┘ RTT 20.0 ms" in synack


def test_timeline_reject_bracket_is_not_an_rtt():
    conn = tracked(refused())
    text = render(Timeline(conn), 80)
    assert "RST after 300 µs" in text
    assert "RTT" not in text


def test_timeline_phase_bands_with_durations():
    conn = tracked(clean_exchange())
    text = render(Timeline(conn), 80)
    bands = [line for line in text.splitlines() if line.startswith("─── ")]
    assert bands[0].startswith("─── handshake 20.2 ms ")
    assert bands[1].startswith("─── transfer 21.8 ms ")
    assert bands[2].startswith("─── teardown 20.0 ms ")
    assert len(bands) == 3


def test_timeline_times_since_start_and_previous():
    conn = tracked(clean_exchange())
    arrows = arrow_lines(render(Timeline(conn), 80))
    assert re.match(r"\s*20\.0 ms\s+\+20\.0 ms │", arrows[1]), arrows[1]
    assert re.match(r"\s*20\.2 ms\s+\+200 µs │", arrows[2]), arrows[2]


def test_timeline_scaled_window_after_handshake():
    talk = clean_exchange()
    conn = tracked(talk)
    arrows = arrow_lines(render(Timeline(conn), 160))
    # Window scale 7 on both SYNs: a raw 65535 is 65535 << 7 bytes.
    assert "win=65535" in arrows[0]  # a SYN's window is never scaled
    assert f"win={65535 << 7}" in arrows[2]


# -- folding -----------------------------------------------------------------------


def test_timeline_folds_long_transfer():
    conn = tracked(bulk(60))
    text = render(Timeline(conn), 100)
    folds = [line for line in text.splitlines() if "…" in line]
    assert len(folds) == 1
    assert "segments over" in folds[0]
    assert re.search(r"\d+ segments over [\d.]+ [µm]?s: [\d.]+ kB", folds[0])


def test_timeline_fold_keeps_first_and_last_segments():
    conn = tracked(bulk(60))
    assert conn.segments is not None
    text = render(Timeline(conn), 100)
    transfer = [
        view
        for view in conn.segments
        if view.segment.payload_len or (view.segment.flags & (SYN | FIN) == 0)
    ][3:]
    first = transfer[0]
    assert f"seq={first.rel_seq} " in text
    last_data = [v for v in conn.segments if v.segment.payload_len][-1]
    assert f"seq={last_data.rel_seq} " in text


def test_timeline_fold_counts_what_it_hides():
    talk = bulk(60)
    conn = tracked(talk)
    assert conn.segments is not None
    text = render(Timeline(conn), 120)
    fold = next(line for line in text.splitlines() if "segments over" in line)
    hidden = int(re.search(r"… (\d+) segments", fold).group(1))  # type: ignore[union-attr]
    shown = len(arrow_lines(text))
    assert hidden + shown == len(conn.segments)


def test_timeline_fold_keeps_notable_segments():
    conn = tracked(bulk(60))
    assert conn.segments is not None
    middle = len(conn.segments) // 2
    conn.segments[middle] = conn.segments[middle]._replace(
        marks=analysis.RETRANSMISSION
    )
    text = render(Timeline(conn), 120)
    assert "[retransmission]" in text
    assert len([line for line in text.splitlines() if "segments over" in line]) == 2


def marked(conn: Connection, mark: int, rows: Iterable[int]) -> Connection:
    """Put ``mark`` on the segments at ``rows``, keeping their other marks."""
    assert conn.segments is not None
    for row in rows:
        view = conn.segments[row]
        conn.segments[row] = view._replace(marks=view.marks | mark)
    return conn


def shown_rows(timeline: Timeline) -> list[int]:
    """Return the row numbers of the segments that get their own arrow."""
    segments = timeline.conn.segments or []
    rows = {id(view): row for row, view in enumerate(segments)}
    return [rows[id(view)] for kind, view in timeline.steps() if kind == "segment"]


def fold_summaries(timeline: Timeline) -> list[str]:
    return [str(value) for kind, value in timeline.steps() if kind == "fold"]


def test_timeline_fold_counts_hidden_marks():
    conn = marked(tracked(bulk(60)), analysis.DUP_ACK, range(20, 34))
    text = render(Timeline(conn), 160)
    # Two of the 14 are shown, and the fold after them counts the rest.
    assert "12 duplicate ACKs" in text
    assert len([line for line in text.splitlines() if "[duplicate ACK]" in line]) == 2


def test_timeline_fold_keeps_first_marked_and_one_before():
    conn = marked(tracked(bulk(60)), analysis.DUP_ACK, range(20, 34))
    rows = shown_rows(Timeline(conn))
    assert 19 in rows
    assert 20 in rows
    assert 21 in rows
    assert 22 not in rows
    assert 33 not in rows


def test_timeline_fold_keeps_each_mark_kind():
    conn = tracked(bulk(60))
    marked(conn, analysis.DUP_ACK, range(20, 34))
    marked(conn, analysis.WINDOW_FULL, range(27, 40))
    rows = shown_rows(Timeline(conn))
    assert {19, 20, 21} <= set(rows)
    assert {26, 27, 28} <= set(rows)
    assert 29 not in rows
    assert 39 not in rows


def test_timeline_fold_keeps_each_episode():
    conn = tracked(bulk(60))
    marked(conn, analysis.RETRANSMISSION, range(20, 24))
    # Far enough after the first run to start a new episode.
    later = 24 + FOLD_EPISODE_GAP + 10
    marked(conn, analysis.RETRANSMISSION, range(later, later + 4))
    rows = shown_rows(Timeline(conn))
    assert {20, 21} <= set(rows)
    assert {later - 1, later, later + 1} <= set(rows)
    assert later + 2 not in rows


def test_timeline_fold_marks_within_gap_are_one_episode():
    conn = marked(tracked(bulk(60)), analysis.WINDOW_FULL, range(20, 70, 3))
    rows = shown_rows(Timeline(conn))
    marked_rows = [row for row in rows if 20 <= row < 70 and (row - 20) % 3 == 0]
    assert marked_rows == [20, 23]


def test_timeline_fold_limits_later_episodes():
    talk = bulk(400)
    conn = tracked(talk)
    assert conn.segments is not None
    # An episode every FOLD_EPISODE_GAP + 2 rows: far more than FOLD_NOTABLE.
    starts = range(10, len(conn.segments) - 20, FOLD_EPISODE_GAP + 2)
    marked(conn, analysis.RETRANSMISSION, starts)
    timeline = Timeline(conn)
    shown = [row for row in shown_rows(timeline) if row in starts]
    assert len(starts) * 3 > FOLD_NOTABLE
    assert len(shown) < len(starts)
    assert len(shown) * 2 <= FOLD_NOTABLE + 2
    counted = 0
    for summary in fold_summaries(timeline):
        match = re.search(r"(\d+) retransmissions?", summary)
        counted += int(match.group(1)) if match else 0
    assert counted == len(starts) - len(shown)


def test_timeline_fold_first_episode_past_limit():
    conn = tracked(bulk(400))
    assert conn.segments is not None
    starts = range(10, len(conn.segments) - 40, FOLD_EPISODE_GAP + 2)
    marked(conn, analysis.RETRANSMISSION, starts)
    # A mark first seen after the limit is reached still shows its first two.
    late = starts[-1] + 5
    marked(conn, analysis.DUP_ACK, range(late, late + 6))
    rows = shown_rows(Timeline(conn))
    assert late - 1 in rows
    assert late in rows
    assert late + 1 in rows
    assert late + 2 not in rows


# -- fitting fold lines and labels into the width ------------------------------


def lifeline_rows(text: str) -> list[str]:
    """Return what lies between the lifelines on rows without an arrow."""
    rows = []
    for line in text.splitlines():
        if "▶" in line or "◀" in line:
            continue
        match = re.fullmatch(r"\s*│(.*)│.*", line)
        if match:
            rows.append(match.group(1).strip())
    return rows


def every_mark() -> Connection:
    """A long transfer with runs of every analysis mark folded away."""
    conn = tracked(bulk(60))
    for offset, bit in enumerate(analysis.MARK_NAMES):
        marked(conn, bit, range(12 + offset, 80, 5))
    return conn


@pytest.mark.parametrize("width", range(60, 164, 4))
def test_timeline_fold_is_one_line(width: int):
    timeline = Timeline(every_mark())
    text = render(timeline, width)
    folds = [row for row in lifeline_rows(text) if row.startswith("…")]
    assert len(folds) == len(fold_summaries(timeline))
    for fold in folds:
        assert fold.endswith("…"), fold
        assert fold != "…"
    for line in text.splitlines():
        assert cell_len(line) <= width


def test_timeline_fold_drops_bytes_before_marks():
    conn = marked(tracked(bulk(60)), analysis.DUP_ACK, range(20, 34))
    text = render(Timeline(conn), 80)
    fold = next(row for row in lifeline_rows(text) if "duplicate ACKs" in row)
    assert "12 duplicate ACKs" in fold
    assert "kB" not in fold


def test_timeline_fold_shortest_form_counts_segments():
    text = render(Timeline(every_mark()), 60)
    folds = [row for row in lifeline_rows(text) if row.startswith("…")]
    assert folds
    for fold in folds:
        assert re.search(r"… \d+ segments", fold), fold


@pytest.mark.parametrize("width", [72, 80, 100])
def test_timeline_label_fields_stay_on_arrow(width: int):
    text = render(Timeline(every_mark()), width)
    for row in lifeline_rows(text):
        if row.startswith("…"):
            continue
        # Only whole marks continue below an arrow, never seq, ack, len or win.
        assert re.fullmatch(r"(\[[^]]+\] ?)+", row), row


def test_timeline_label_leaves_out_repeated_window_first():
    conn = tracked(bulk(60))
    # At 64 columns "ACK seq=4345 ack=41 len=1448 win=8388480" is too long.
    text = render(Timeline(conn), 64)
    data = [line for line in arrow_lines(text) if "len=1448" in line]
    assert data
    # The server's window never changes, and its ack changes only on its
    # first data segment, so the data rows drop win and, after the first, ack.
    assert "ack=41" in data[0]
    for line in data:
        assert "win=" not in line
        assert "seq=" in line
    for line in data[1:]:
        assert "ack=" not in line
    assert [row for row in lifeline_rows(text) if not row.startswith("…")] == []


def test_timeline_label_keeps_field_a_mark_is_about():
    conn = tracked(bulk(60))
    assert conn.segments is not None
    row = next(
        index
        for index, view in enumerate(conn.segments)
        if index > 3 and view.segment.payload_len
    )
    marked(conn, analysis.DUP_ACK | analysis.ZERO_WINDOW, [row])
    seq = f"seq={conn.segments[row].rel_seq} "
    text = render(Timeline(conn, full=True), 80)
    arrow = next(line for line in arrow_lines(text) if seq in line)
    assert "ack=" in arrow
    assert "win=" in arrow
    assert "[duplicate ACK]" in text
    assert "[zero window]" in text


def test_timeline_full_unfolds():
    conn = tracked(bulk(60))
    assert conn.segments is not None
    text = render(Timeline(conn, full=True), 100)
    assert "segments over" not in text
    assert len(arrow_lines(text)) == len(conn.segments)


def test_timeline_short_transfer_not_folded():
    # 4 data segments, 2 ACKs and the request: 7 transfer segments.
    assert FOLD_ABOVE >= 7
    conn = tracked(bulk(4))
    assert conn.segments is not None
    text = render(Timeline(conn), 100)
    assert "segments over" not in text
    assert len(arrow_lines(text)) == len(conn.segments)


# -- text from the capture -----------------------------------------------------------


def test_timeline_payload_escapes_control_characters():
    talk = Conversation()
    talk.handshake()
    talk.client(PSH | ACK, 12, payload=b"\x1b[31mred\x1b]0;x\x07")
    conn = tracked(talk)
    console = Console(file=io.StringIO(), width=160, color_system="standard")
    console.print(Timeline(conn, explain=True))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\\x1b[31mred" in output
    assert "\x1b]0;" not in output
    assert "\x07" not in output


def test_timeline_requires_kept_segments():
    talk = clean_exchange()
    tracker = FlowTracker()
    for segment in talk.segments:
        tracker.process(segment)
    conn = tracker.flush()[0]
    with pytest.raises(ValueError, match="keep_segments"):
        Timeline(conn)


def test_timeline_positional_full_still_works():
    conn = tracked(bulk(60))
    assert conn.segments is not None
    text = render(Timeline(conn, True), 100)
    assert len(arrow_lines(text)) == len(conn.segments)


# -- any conversation, any width ---------------------------------------------------

FLAG_CHOICES = [SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST, RST | ACK, 0]


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from(FLAG_CHOICES),
            st.sampled_from([0, 1, 100, 1448]),
            st.integers(min_value=0, max_value=(1 << 15) - 1),
        ),
        min_size=1,
        max_size=40,
    ),
    width=st.integers(min_value=60, max_value=220),
    explain=st.booleans(),
    lang=st.sampled_from(["en", "ja"]),
)
def test_timeline_any_conversation_fits(
    steps: list[tuple[bool, int, int, int]], width: int, explain: bool, lang: str
):
    talk = Conversation()
    for from_client, flags, length, _ in steps:
        talk.send(from_client, flags, length if flags & ACK else 0)
    tracker = FlowTracker(keep_segments=True)
    for segment in talk.segments:
        tracker.process(segment)
    conns = tracker.flush()
    for conn in conns:
        assert conn.segments is not None
        for index, (_, _, _, marks) in enumerate(steps[: len(conn.segments)]):
            conn.segments[index] = conn.segments[index]._replace(marks=marks)
        timeline = Timeline(conn, explain=explain, lang=lang, title=True, verdict=True)
        text = render(timeline, width)
        for line in text.splitlines():
            assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}"
        arrows = arrow_lines(text)
        for line in arrows:
            assert line.count("▶") + line.count("◀") == 1, line
