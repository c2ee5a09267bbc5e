"""The per-connection timeline: a ladder diagram of every segment.

Layout, left to right: the time since the first segment, the time since the
previous one, the originator's lifeline, one arrow per segment, the
responder's lifeline, a gutter for the handshake round-trip bracket, and, on
wide screens with explanations, a column of notes::

        time   +prev originator 10.0.0.1:40000   responder 10.0.0.2:80
    ─── handshake 27 µs ────────────────────────────────────────────────
        0 µs   +0 µs │──── SYN seq=0 win=65495 ────▶│ ┐
       14 µs  +14 µs │◀─ SYN,ACK seq=0 ack=1 … ─────│ ┘ RTT 14 µs

Each arrow carries the flags, the relative sequence and acknowledgement
numbers, the payload length, the window in bytes (scaled), and the analysis
marks in colour and words. When the label is too long for the arrow, the
fields that repeat the sender's previous values are left out first, then the
marks move to the line below, then win and ack go. Fields continue below
the arrow only when flags, seq and len alone do not fit. Rules split the
arrows into phase bands, each with its duration. A long transfer is folded
into summary lines of one line each, which count what they hide. The first
and last segments stay visible, and so do the first segments of each
analysis mark with the one before them; ``full=True`` shows everything.

Every word comes from a message catalogue (``tcpwatch.i18n``), and every
string from the capture goes into a ``rich.text.Text``, never into markup.

The rows before layout (phase bands, folds, the round-trip bracket) are
built in ``timeline_items``, and the arrows and wrapped notes are drawn by
``timeline_draw``.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from tcpwatch.capture.segment import ACK, FIN, RST, SYN, flag_names
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection, SegmentView, format_endpoint
from tcpwatch.flow.states import Phase
from tcpwatch.i18n import DEFAULT_LANGUAGE, Catalogue, catalogue
from tcpwatch.render.explain import (
    Explainer,
    mark_key,
    mark_words,
    scaled_window,
    verdict_text,
)
from tcpwatch.render.style import PHASE_STYLES, printable
from tcpwatch.render.timeline_draw import (
    MARK_STYLES,
    NOTE_STYLE,
    arrow_style,
    centred,
    draw_arrow,
    format_delta,
    rjust_cells,
    wrap_text,
)
from tcpwatch.render.timeline_items import (
    FOLD_ABOVE,
    FOLD_KEEP,
    FOLD_MIN_RUN,
    FOLD_NOTABLE,
    NOTABLE_MARKS,
    FoldItem,
    Item,
    PhaseItem,
    SegmentItem,
    bracket_rows,
    build_items,
    segment_phase,
)
from tcpwatch.units import format_bytes, format_seconds

__all__ = [
    "ARROW_MAX",
    "ARROW_MIN",
    "ARROW_WITH_NOTES",
    "FOLD_ABOVE",
    "FOLD_KEEP",
    "FOLD_MIN_RUN",
    "FOLD_NOTABLE",
    "NOTABLE_MARKS",
    "SIDE_NOTES_FROM",
    "Timeline",
    "label_parts",
    "segment_phase",
]


ARROW_MIN = 24
"""Narrowest arrow drawn; below it the delta column is dropped first."""
ARROW_MAX = 96
"""Widest arrow drawn; wider screens leave the rest blank."""
ARROW_WITH_NOTES = 64
"""Arrow width when explanations take the right-hand column."""
SIDE_NOTES_FROM = 140
"""Console width from which explanations go in a column beside the arrows."""


def label_parts(conn: Connection, view: SegmentView, cat: Catalogue) -> list[str]:
    """Return the arrow label's words: flags, seq, ack, len and win."""
    return [word for _, word in _label_fields(conn, view, cat)]


def _label_fields(
    conn: Connection, view: SegmentView, cat: Catalogue
) -> list[tuple[str, str]]:
    """Return the arrow label's words, each with its field name."""
    seg = view.segment
    fields = [("flags", flag_names(seg.flags) or cat.text("flags.none"))]
    fields.append(("seq", f"seq={view.rel_seq}"))
    if seg.flags & ACK:
        fields.append(("ack", f"ack={view.rel_ack}"))
    if seg.payload_len:
        fields.append(("len", f"len={seg.payload_len}"))
    fields.append(("win", f"win={scaled_window(conn, view)}"))
    return fields


# Marks about a segment's seq, ack or win, so that field stays on its label.
_SEQUENCE_MARKS = (
    analysis.ANY_RETRANSMISSION
    | analysis.OUT_OF_ORDER
    | analysis.PREVIOUS_SEGMENT_NOT_CAPTURED
    | analysis.KEEP_ALIVE
)
_ACK_MARKS = analysis.DUP_ACK | analysis.ACKED_UNSEEN
_WINDOW_MARKS = analysis.ZERO_WINDOW | analysis.WINDOW_UPDATE


@dataclass
class _Geometry:
    """Cell widths of the timeline's columns."""

    time: int
    delta: int
    arrow: int
    gutter: int
    notes: int
    """Width of the side notes column; 0 puts notes below each arrow."""

    @property
    def prefix(self) -> int:
        return self.time + 1 + (self.delta + 1 if self.delta else 0)

    @property
    def total(self) -> int:
        width = self.prefix + self.arrow + 2 + self.gutter
        return width + (1 + self.notes if self.notes else 0)


class Timeline:
    """A rich renderable ladder diagram of one connection's segments.

    Args:
        conn: a connection tracked with ``keep_segments=True``.
        full: show every segment of a long transfer instead of folding it.
        explain: add a plain-language note to each step.
        lang: catalogue language code (``tcpwatch.i18n.LANGUAGES``).
        title: start with the connection's number and uid.
        verdict: end with the verdict, conn_state and history.
    """

    def __init__(
        self,
        conn: Connection,
        full: bool = False,
        *,
        explain: bool = False,
        lang: str = DEFAULT_LANGUAGE,
        title: bool = False,
        verdict: bool = False,
    ) -> None:
        if conn.segments is None:
            raise ValueError(
                "the connection was tracked without keep_segments=True; "
                "its segments were not kept"
            )
        self.conn = conn
        self.full = full
        self.explain = explain
        self.cat = catalogue(lang)
        self.title = title
        self.verdict = verdict

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = options.max_width
        items = list(self._items())
        geometry = self._geometry(items, width)
        lines: list[Text] = []
        if self.title:
            lines.append(self._title())
        lines += self._head(geometry)
        segments = self.conn.segments or []
        if not segments:
            lines.append(Text(" " * geometry.prefix + self.cat.text("empty")))
        in_bracket = False
        for item in items:
            if isinstance(item, PhaseItem):
                lines += self._phase_lines(console, item.phase, geometry)
            elif isinstance(item, FoldItem):
                lines += self._fold_lines(item, geometry)
            else:
                block = self._segment_lines(console, item, geometry, in_bracket)
                lines += block
                if item.bracket == "start":
                    in_bracket = True
                elif item.bracket == "end":
                    in_bracket = False
        lines += self._footer(console, geometry)
        for line in lines:
            line.truncate(max(width, geometry.total), overflow="ellipsis")
            line.rstrip()
            line.no_wrap = True
            line.end = "\n"
            yield line

    def steps(self) -> Iterator[tuple[str, object]]:
        """Yield the timeline's content for other formats, without layout.

        Kinds and values: ``("phase", "handshake 27 µs")``, ``("segment",
        SegmentView)``, ``("fold", summary text)``, and ``("bracket", "RTT
        14 µs")`` right after the segment that closes the bracket.
        """
        for item in self._items():
            if isinstance(item, PhaseItem):
                yield "phase", self._phase_label(item.phase)
            elif isinstance(item, FoldItem):
                yield "fold", self._fold_summary(item)
            else:
                yield "segment", item.view
                if item.bracket == "end":
                    yield "bracket", self._bracket_label()

    def verdict_line(self) -> str:
        """Return ``verdict: ...`` in the timeline's language."""
        from tcpwatch.flow.record import build_record

        record = build_record(self.conn)
        sentence = printable(verdict_text(self.conn, record, self.cat))
        return self.cat.text("footer.verdict", verdict=sentence)

    # -- building the item list -------------------------------------------
    def _items(self) -> Iterator[Item]:
        explainer = Explainer(self.conn, self.cat) if self.explain else None
        return build_items(self.conn, self.full, explainer)

    def _bracket_label(self) -> str:
        segments = self.conn.segments or []
        rows = bracket_rows(self.conn, segments)
        if not rows:
            return ""
        start, end = sorted(rows)
        elapsed = format_seconds(segments[end].segment.ts - segments[start].segment.ts)
        if segments[end].segment.flags & RST:
            return self.cat.text("bracket.reject", time=elapsed)
        return self.cat.text("bracket.rtt", time=elapsed)

    # -- geometry -----------------------------------------------------------

    def _geometry(self, items: list[Item], width: int) -> _Geometry:
        cat = self.cat
        time_width = cell_len(cat.text("column.time"))
        delta_width = cell_len(cat.text("column.delta"))
        for item in items:
            if isinstance(item, SegmentItem):
                time_width = max(time_width, len(format_seconds(item.since_start)))
                delta_width = max(delta_width, len(format_delta(item.since_previous)))
        label = self._bracket_label()
        gutter = 3 + cell_len(label) if label else 0
        geometry = _Geometry(time_width, delta_width, 0, gutter, 0)
        room = width - geometry.prefix - 2 - gutter
        if room < ARROW_MIN:
            geometry.delta = 0
            room = width - geometry.prefix - 2 - gutter
        if self.explain and width >= SIDE_NOTES_FROM:
            geometry.arrow = min(room, ARROW_WITH_NOTES)
            geometry.notes = width - geometry.prefix - 2 - gutter - geometry.arrow - 1
        else:
            geometry.arrow = max(min(room, ARROW_MAX), 12)
        return geometry

    # -- lines ----------------------------------------------------------------

    def _title(self) -> Text:
        conn = self.conn
        return Text(
            self.cat.text("title", number=conn.number, uid=conn.uid), style="bold"
        )

    def _head(self, geometry: _Geometry) -> list[Text]:
        conn = self.conn
        cat = self.cat
        left = (
            f"{cat.text('role.originator')} {format_endpoint(conn.orig_h, conn.orig_p)}"
        )
        right = (
            f"{cat.text('role.responder')} {format_endpoint(conn.resp_h, conn.resp_p)}"
        )
        prefix = Text(cat.text("column.time").rjust(geometry.time), style="dim")
        if geometry.delta:
            prefix.append(" " + rjust_cells(cat.text("column.delta"), geometry.delta))
        prefix.append(" ")
        span = geometry.arrow + 2
        line = prefix.copy()
        if cell_len(left) + 1 + cell_len(right) <= span:
            line.append(left, style="bold")
            line.append(" " * (span - cell_len(left) - cell_len(right)))
            line.append(right, style="bold")
            return [line]
        wide = geometry.prefix + span
        if cell_len(left) + 1 + cell_len(right) <= wide:
            # No room above the arrows: the names take the time columns' heads.
            line = Text(left, style="bold")
            line.append(" " * (wide - cell_len(left) - cell_len(right)))
            line.append(right, style="bold")
            return [line]
        line.append(left, style="bold")
        second = Text(" " * geometry.prefix)
        second.append(" " * max(0, span - cell_len(right)))
        second.append(right, style="bold")
        return [line, second]

    def _phase_lines(
        self, console: Console, phase: Phase, geometry: _Geometry
    ) -> list[Text]:
        label = f" {self._phase_label(phase)} "
        total = geometry.total
        rule = "───" + label + "─" * max(0, total - 3 - cell_len(label))
        lines = [Text(rule, style="bold " + PHASE_STYLES.get(phase.value, ""))]
        if self.explain:
            intro = Explainer(self.conn, self.cat).phase_intro(phase)
            if intro:
                lines += wrap_text(console, intro, total, NOTE_STYLE)
        return lines

    def _phase_label(self, phase: Phase) -> str:
        """Return the band's name and, when known, its duration."""
        name = self.cat.text("phase." + phase.value)
        duration = _phase_duration(self.conn, phase)
        if duration is None:
            return name
        return f"{name} {format_seconds(duration)}"

    def _segment_lines(
        self,
        console: Console,
        item: SegmentItem,
        geometry: _Geometry,
        in_bracket: bool,
    ) -> list[Text]:
        view = item.view
        style = arrow_style(view.segment.flags, view.segment.payload_len)
        label_lines = self._label_lines(item, geometry.arrow - 6)
        rows: list[tuple[Text, Text]] = []  # (prefix, body between lifelines)
        prefix = Text(f"{format_seconds(item.since_start):>{geometry.time}}")
        if geometry.delta:
            prefix.append(f" {format_delta(item.since_previous):>{geometry.delta}}")
        prefix.stylize("dim")
        rows.append(
            (prefix, draw_arrow(label_lines[0], view.is_orig, geometry.arrow, style))
        )
        blank = Text(
            " " * geometry.time + (" " * (geometry.delta + 1) if geometry.delta else "")
        )
        for label in label_lines[1:]:
            rows.append((blank, centred(label, geometry.arrow)))
        notes = item.notes
        side_notes: list[Text] = []
        if notes and geometry.notes:
            for note in notes:
                side_notes += wrap_text(console, note, geometry.notes, NOTE_STYLE)
            while len(rows) < len(side_notes):
                rows.append((blank, Text(" " * geometry.arrow)))
        elif notes:
            for note in notes:
                for wrapped in wrap_text(console, note, geometry.arrow - 2, NOTE_STYLE):
                    body = Text(" ")
                    body.append_text(wrapped)
                    body.append(" ")
                    rows.append((blank, body))
        lines = []
        for number, (row_prefix, body) in enumerate(rows):
            line = row_prefix.copy()
            line.append(" │")
            line.append_text(body)
            line.append("│")
            line.append_text(self._gutter(item, number, in_bracket, geometry))
            if geometry.notes and number < len(side_notes):
                line.append(" ")
                line.append_text(side_notes[number])
            lines.append(line)
        return lines

    def _gutter(
        self, item: SegmentItem, row: int, in_bracket: bool, geometry: _Geometry
    ) -> Text:
        """Return the bracket gutter for ``row`` of a segment's lines."""
        if not geometry.gutter:
            return Text()
        mark = ""
        if item.bracket == "start":
            mark = "┐" if row == 0 else "│"
        elif item.bracket == "end":
            if row == 0:
                text = Text(" ┘ ")
                text.append(self._bracket_label(), style="bold")
                return text
        elif in_bracket:
            mark = "│"
        text = Text(f" {mark}" if mark else "")
        text.append(" " * (geometry.gutter - cell_len(text.plain)))
        return text

    def _label_lines(self, item: SegmentItem, width: int) -> list[Text]:
        """Fit the label into lines of at most ``width`` cells.

        The flags, numbers and marks go on the arrow when they fit. If not,
        fields that repeat the sender's previous segment are left out first,
        then the marks move below the arrow, and then more fields are left
        out in the order of ``_droppable_fields``. Only when the fields that
        are never left out do not fit either, all words are packed into lines.
        """
        view = item.view
        style = arrow_style(view.segment.flags, view.segment.payload_len)
        fields = _label_fields(self.conn, view, self.cat)
        marks = [
            Text(f"[{name}]", style=MARK_STYLES.get(bit, "bold"))
            for bit, name in mark_words(view.marks, self.cat)
        ]
        width = max(width, 8)
        redundant, optional, marked = self._droppable_fields(item)
        for dropped in _growing(redundant):
            words = _field_words(fields, dropped, style) + marks
            if _words_width(words) <= width:
                return [_joined(words)]
        for dropped in _growing(redundant + optional + marked):
            words = _field_words(fields, dropped, style)
            if _words_width(words) <= width:
                return [_joined(words), *_packed(marks, width)]
        return _packed(_field_words(fields, [], style) + marks, width)

    def _droppable_fields(
        self, item: SegmentItem
    ) -> tuple[list[str], list[str], list[str]]:
        """Return the label fields to leave out, in three groups, in order.

        Redundant: win when it equals the same endpoint's previous window, seq
        on a pure ACK (tcpdump prints none there either), and ack on a data
        segment when it equals the same endpoint's previous ack. Optional:
        the other win, and ack on a data segment. Marked: win and ack when a
        mark of the segment is about them, so they go only when the mark's
        name alone has to say it. A pure ACK always keeps its ack.
        """
        view = item.view
        seg = view.segment
        previous = item.sender_previous
        carries_data = bool(seg.payload_len or seg.flags & (SYN | FIN))
        redundant: list[str] = []
        optional: list[str] = []
        marked: list[str] = []
        same_window = previous is not None and scaled_window(
            self.conn, previous
        ) == scaled_window(self.conn, view)
        if view.marks & _WINDOW_MARKS:
            marked.append("win")
        else:
            (redundant if same_window else optional).append("win")
        pure_ack = not carries_data and not seg.flags & RST
        if pure_ack and not view.marks & _SEQUENCE_MARKS:
            redundant.append("seq")
        if carries_data and seg.flags & ACK:
            same_ack = (
                previous is not None
                and bool(previous.segment.flags & ACK)
                and previous.rel_ack == view.rel_ack
            )
            if view.marks & _ACK_MARKS:
                marked.append("ack")
            else:
                (redundant if same_ack else optional).append("ack")
        return redundant, optional, marked

    def _fold_lines(self, item: FoldItem, geometry: _Geometry) -> list[Text]:
        summary = Text(self._fold_summary(item, geometry.arrow - 2), style="dim")
        line = Text(" " * geometry.prefix + "│")
        line.append_text(centred(summary, geometry.arrow))
        line.append("│")
        return [line]

    def _fold_summary(self, item: FoldItem, width: int | None = None) -> str:
        """Return the fold's summary line, shortened to ``width`` cells if given.

        Parts are left out until the line fits: first the byte count, then
        the span, then mark counts from the last, leaving ``… N segments …``.
        A summary that still does not fit is cut with an ellipsis.
        """
        cat = self.cat
        views = item.views
        segments = cat.count("count.segments", len(views))
        size = format_bytes(sum(view.segment.payload_len for view in views))
        marks = []
        for bit, name in analysis.MARK_NAMES.items():
            count = sum(1 for view in views if view.marks & bit)
            if count:
                marks.append(cat.count("count.mark." + mark_key(name), count))
        span = format_seconds(item.span)
        candidates = [
            cat.text("fold.summary", segments=segments, span=span, details=details)
            for details in (cat.join([size, *marks]), cat.join(marks))
            if details
        ]
        # Without the span the catalogue has no sentence, so only punctuation
        # joins the counts, which reads the same in every language.
        candidates += [
            f"… {segments}: {cat.join(marks[:kept])} …"
            for kept in range(len(marks), 0, -1)
        ]
        candidates.append(f"… {segments} …")
        if width is None:
            return candidates[0]
        for summary in candidates:
            if cell_len(summary) <= width:
                return summary
        text = Text(candidates[-1])
        text.truncate(max(width, 1), overflow="ellipsis")
        return text.plain

    def _footer(self, console: Console, geometry: _Geometry) -> list[Text]:
        conn = self.conn
        cat = self.cat
        lines: list[Text] = []
        if conn.segments_dropped:
            lines.append(
                Text(cat.count("footer.dropped", conn.segments_dropped), style="dim")
            )
        if not self.verdict:
            return lines
        from tcpwatch.flow.record import build_record

        record = build_record(conn)
        width = max(geometry.total, 40)
        sentence = printable(verdict_text(conn, record, cat))
        verdict = cat.text("footer.verdict", verdict=sentence)
        lines += wrap_text(console, verdict, width, "bold")
        state = cat.text(
            "footer.state", state=record["conn_state"], history=record["history"]
        )
        lines += wrap_text(console, state, width, "dim")
        if record["handshake"] == "not_seen":
            lines += wrap_text(console, cat.text("footer.midstream"), width, "dim")
        if conn.roles_inferred:
            lines += wrap_text(console, cat.text("footer.roles_inferred"), width, "dim")
        return lines


def _phase_duration(conn: Connection, phase: Phase) -> float | None:
    from tcpwatch.flow.record import phase_durations

    durations: dict[str, Any] = phase_durations(conn)
    key = {
        Phase.HANDSHAKE: "handshake_duration",
        Phase.TRANSFER: "transfer_duration",
        Phase.TEARDOWN: "teardown_duration",
    }.get(phase)
    return durations.get(key) if key else None


def _growing(fields: list[str]) -> Iterator[list[str]]:
    """Yield ``[]``, then longer and longer prefixes of ``fields``."""
    for count in range(len(fields) + 1):
        yield fields[:count]


def _field_words(
    fields: list[tuple[str, str]], dropped: list[str], style: str
) -> list[Text]:
    return [Text(word, style=style) for name, word in fields if name not in dropped]


def _words_width(words: list[Text]) -> int:
    return sum(cell_len(word.plain) for word in words) + max(0, len(words) - 1)


def _joined(words: list[Text]) -> Text:
    return Text(" ").join(words)


def _packed(words: list[Text], width: int) -> list[Text]:
    """Pack whole words into lines of at most ``width`` cells."""
    lines: list[Text] = []
    line = Text()
    for word in words:
        if cell_len(word.plain) > width:
            word.truncate(width, overflow="ellipsis")
        if line.plain and cell_len(line.plain) + 1 + cell_len(word.plain) > width:
            lines.append(line)
            line = Text()
        if line.plain:
            line.append(" ")
        line.append_text(word)
    if line.plain:
        lines.append(line)
    return lines
