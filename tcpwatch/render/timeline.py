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
marks in colour and words. A label too long for the arrow continues on the
next lines between the lifelines, so an arrow never wraps. Rules split the
arrows into phase bands, each with its duration. A long transfer is folded
into counted summary lines, keeping its first and last segments and the
segments with notable marks; ``full=True`` shows everything.

Every word comes from a message catalogue (``tcpwatch.i18n``), and every
string from the capture goes into a ``rich.text.Text``, never into markup.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from tcpwatch.units import format_bytes, format_seconds

FOLD_KEEP = 4
"""Transfer segments kept at each end of a folded transfer."""
FOLD_ABOVE = 2 * FOLD_KEEP + 2
"""A transfer with more segments than this is folded unless ``full`` is set."""
FOLD_NOTABLE = 8
"""Segments with notable marks kept visible inside a folded transfer."""
FOLD_MIN_RUN = 3
"""Hidden runs shorter than this are shown, since a summary line saves nothing."""

NOTABLE_MARKS = (
    analysis.ANY_RETRANSMISSION
    | analysis.OUT_OF_ORDER
    | analysis.PREVIOUS_SEGMENT_NOT_CAPTURED
    | analysis.ZERO_WINDOW
    | analysis.ZERO_WINDOW_PROBE
    | analysis.KEEP_ALIVE
    | analysis.BAD_CHECKSUM
    | analysis.STRAY_SYN
)
"""Marks that keep a segment visible in a folded transfer."""

ARROW_MIN = 24
"""Narrowest arrow drawn; below it the delta column is dropped first."""
ARROW_MAX = 96
"""Widest arrow drawn; wider screens leave the rest blank."""
ARROW_WITH_NOTES = 64
"""Arrow width when explanations take the right-hand column."""
SIDE_NOTES_FROM = 140
"""Console width from which explanations go in a column beside the arrows."""

_MARK_STYLES = {
    analysis.RETRANSMISSION: "bold red",
    analysis.FAST_RETRANSMISSION: "bold red",
    analysis.SPURIOUS_RETRANSMISSION: "red",
    analysis.OUT_OF_ORDER: "red",
    analysis.PREVIOUS_SEGMENT_NOT_CAPTURED: "red",
    analysis.DUP_ACK: "yellow",
    analysis.ZERO_WINDOW: "bold yellow",
    analysis.WINDOW_FULL: "yellow",
    analysis.ZERO_WINDOW_PROBE: "yellow",
    analysis.KEEP_ALIVE: "blue",
    analysis.WINDOW_UPDATE: "green",
    analysis.BAD_CHECKSUM: "bold red",
    analysis.STRAY_SYN: "magenta",
    analysis.PORT_REUSE: "magenta",
}
_NOTE_STYLE = "italic"
_PHASE_ORDER = {Phase.HANDSHAKE: 0, Phase.TRANSFER: 1, Phase.TEARDOWN: 2}


def segment_phase(conn: Connection, view: SegmentView) -> Phase:
    """Return the phase a segment belongs to on its own.

    The timeline never moves back to an earlier phase: a SYN-ACK repeated
    during the transfer stays in the transfer band.
    """
    seg = view.segment
    if conn.handshake_ack_time is None and not conn.is_partial:
        # A connection that never opened has no transfer or teardown: its RST
        # (a rejected attempt) ends the handshake.
        return Phase.HANDSHAKE
    closing = _closing_time(conn)
    if closing is not None and seg.ts >= closing:
        return Phase.TEARDOWN
    if seg.flags & (FIN | RST):
        return Phase.TEARDOWN
    if seg.flags & SYN:
        return Phase.HANDSHAKE
    established = conn.handshake_ack_time
    if established is not None and seg.ts <= established and not seg.payload_len:
        return Phase.HANDSHAKE
    return Phase.TRANSFER


def _closing_time(conn: Connection) -> float | None:
    times = [
        t
        for t in (
            conn.orig.fin_time,
            conn.resp.fin_time,
            conn.orig.rst_time,
            conn.resp.rst_time,
        )
        if t is not None
    ]
    return min(times) if times else None


def label_parts(conn: Connection, view: SegmentView, cat: Catalogue) -> list[str]:
    """Return the arrow label's words: flags, seq, ack, len and win."""
    seg = view.segment
    parts = [flag_names(seg.flags) or cat.text("flags.none")]
    parts.append(f"seq={view.rel_seq}")
    if seg.flags & ACK:
        parts.append(f"ack={view.rel_ack}")
    if seg.payload_len:
        parts.append(f"len={seg.payload_len}")
    parts.append(f"win={scaled_window(conn, view)}")
    return parts


# -- the items of a timeline, before layout --------------------------------


@dataclass
class _PhaseItem:
    phase: Phase


@dataclass
class _SegmentItem:
    view: SegmentView
    since_start: float
    since_previous: float
    notes: list[str] = field(default_factory=list)
    bracket: str = ""
    """Round-trip bracket part on this row: "start", "end" or "" (none)."""


@dataclass
class _FoldItem:
    views: list[SegmentView]
    span: float


_Item = _PhaseItem | _SegmentItem | _FoldItem


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
            if isinstance(item, _PhaseItem):
                lines += self._phase_lines(console, item.phase, geometry)
            elif isinstance(item, _FoldItem):
                lines += self._fold_lines(console, item, geometry, in_bracket)
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
            if isinstance(item, _PhaseItem):
                yield "phase", self._phase_label(item.phase)
            elif isinstance(item, _FoldItem):
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

    def _items(self) -> Iterator[_Item]:
        conn = self.conn
        segments = conn.segments or []
        if not segments:
            return
        explainer = Explainer(conn, self.cat) if self.explain else None
        phases = self._phases(segments)
        bracket = self._bracket_rows(segments)
        start = segments[0].segment.ts
        previous = start
        shown = self._shown(segments, phases)
        phase: Phase | None = None
        index = 0
        while index < len(segments):
            view = segments[index]
            if phases[index] != phase:
                phase = phases[index]
                yield _PhaseItem(phase)
            if not shown[index]:
                end = index
                while end < len(segments) and not shown[end]:
                    end += 1
                hidden = segments[index:end]
                if explainer is not None:
                    for hidden_view in hidden:
                        explainer.notes(hidden_view)
                span = hidden[-1].segment.ts - hidden[0].segment.ts
                yield _FoldItem(hidden, span)
                previous = hidden[-1].segment.ts
                index = end
                continue
            ts = view.segment.ts
            item = _SegmentItem(view, ts - start, ts - previous)
            if explainer is not None:
                item.notes = explainer.notes(view)
            item.bracket = bracket.get(index, "")
            previous = ts
            yield item
            index += 1

    def _phases(self, segments: list[SegmentView]) -> list[Phase]:
        """Return each segment's band, never moving back to an earlier phase."""
        phases = []
        current = -1
        for view in segments:
            phase = segment_phase(self.conn, view)
            order = _PHASE_ORDER.get(phase, 2)
            if order < current:
                phase = next(p for p, o in _PHASE_ORDER.items() if o == current)
            current = max(current, order)
            phases.append(phase)
        return phases

    def _shown(self, segments: list[SegmentView], phases: list[Phase]) -> list[bool]:
        """Return which segments get their own arrow; the rest fold."""
        shown = [True] * len(segments)
        if self.full:
            return shown
        transfer = [i for i, phase in enumerate(phases) if phase == Phase.TRANSFER]
        if len(transfer) <= FOLD_ABOVE:
            return shown
        notable = 0
        for index in transfer[FOLD_KEEP:-FOLD_KEEP]:
            if segments[index].marks & NOTABLE_MARKS and notable < FOLD_NOTABLE:
                notable += 1
            else:
                shown[index] = False
        # A summary line of one or two segments hides nothing: show them.
        index = 0
        while index < len(shown):
            if shown[index]:
                index += 1
                continue
            end = index
            while end < len(shown) and not shown[end]:
                end += 1
            if end - index < FOLD_MIN_RUN:
                for hidden in range(index, end):
                    shown[hidden] = True
            index = end
        return shown

    def _bracket_rows(self, segments: list[SegmentView]) -> dict[int, str]:
        """Return the rows where the round-trip bracket starts and ends."""
        conn = self.conn
        if conn.simultaneous_open:
            return {}  # each SYN-ACK acknowledges the other's SYN: no single RTT
        end = None
        for index, view in enumerate(segments):
            flags = view.segment.flags
            if view.is_orig:
                continue
            if flags & SYN and flags & ACK:
                end = index
                break
            if flags & RST and conn.synack_time is None:
                end = index
                break
        if end is None:
            return {}
        start = None
        for index in range(end - 1, -1, -1):
            view = segments[index]
            if view.is_orig and view.segment.flags & (SYN | ACK) == SYN:
                start = index
                break
        if start is None:
            return {}
        return {start: "start", end: "end"}

    def _bracket_label(self) -> str:
        segments = self.conn.segments or []
        rows = self._bracket_rows(segments)
        if not rows:
            return ""
        start, end = sorted(rows)
        elapsed = format_seconds(segments[end].segment.ts - segments[start].segment.ts)
        if segments[end].segment.flags & RST:
            return self.cat.text("bracket.reject", time=elapsed)
        return self.cat.text("bracket.rtt", time=elapsed)

    # -- geometry -----------------------------------------------------------

    def _geometry(self, items: list[_Item], width: int) -> _Geometry:
        cat = self.cat
        time_width = cell_len(cat.text("column.time"))
        delta_width = cell_len(cat.text("column.delta"))
        for item in items:
            if isinstance(item, _SegmentItem):
                time_width = max(time_width, len(format_seconds(item.since_start)))
                delta_width = max(delta_width, len(_delta(item.since_previous)))
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
            prefix.append(" " + _rjust(cat.text("column.delta"), geometry.delta))
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
                lines += _wrap(console, intro, total, _NOTE_STYLE)
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
        item: _SegmentItem,
        geometry: _Geometry,
        in_bracket: bool,
    ) -> list[Text]:
        view = item.view
        style = _arrow_style(view.segment.flags, view.segment.payload_len)
        label_lines = self._label_lines(view, geometry.arrow - 6)
        rows: list[tuple[Text, Text]] = []  # (prefix, body between lifelines)
        prefix = Text(f"{format_seconds(item.since_start):>{geometry.time}}")
        if geometry.delta:
            prefix.append(f" {_delta(item.since_previous):>{geometry.delta}}")
        prefix.stylize("dim")
        rows.append(
            (prefix, _arrow(label_lines[0], view.is_orig, geometry.arrow, style))
        )
        blank = Text(
            " " * geometry.time + (" " * (geometry.delta + 1) if geometry.delta else "")
        )
        for label in label_lines[1:]:
            rows.append((blank, _centred(label, geometry.arrow)))
        notes = item.notes
        side_notes: list[Text] = []
        if notes and geometry.notes:
            for note in notes:
                side_notes += _wrap(console, note, geometry.notes, _NOTE_STYLE)
            while len(rows) < len(side_notes):
                rows.append((blank, Text(" " * geometry.arrow)))
        elif notes:
            for note in notes:
                for wrapped in _wrap(console, note, geometry.arrow - 2, _NOTE_STYLE):
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
        self, item: _SegmentItem, row: int, in_bracket: bool, geometry: _Geometry
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

    def _label_lines(self, view: SegmentView, width: int) -> list[Text]:
        """Pack the label's words into lines of at most ``width`` cells."""
        style = _arrow_style(view.segment.flags, view.segment.payload_len)
        words = [
            Text(part, style=style) for part in label_parts(self.conn, view, self.cat)
        ]
        for bit, name in mark_words(view.marks, self.cat):
            words.append(Text(f"[{name}]", style=_MARK_STYLES.get(bit, "bold")))
        width = max(width, 8)
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
        lines.append(line)
        return lines

    def _fold_lines(
        self,
        console: Console,
        item: _FoldItem,
        geometry: _Geometry,
        in_bracket: bool,
    ) -> list[Text]:
        blank = " " * geometry.prefix
        lines = []
        summary = self._fold_summary(item)
        for wrapped in _wrap(console, summary, geometry.arrow - 2, "dim"):
            wrapped.rstrip()
            line = Text(blank + "│")
            line.append_text(_centred(wrapped, geometry.arrow))
            line.append("│")
            lines.append(line)
        return lines

    def _fold_summary(self, item: _FoldItem) -> str:
        cat = self.cat
        views = item.views
        details = [format_bytes(sum(view.segment.payload_len for view in views))]
        for bit, name in analysis.MARK_NAMES.items():
            count = sum(1 for view in views if view.marks & bit)
            if count:
                details.append(cat.count("count.mark." + mark_key(name), count))
        return cat.text(
            "fold.summary",
            segments=cat.count("count.segments", len(views)),
            span=format_seconds(item.span),
            details=cat.join(details),
        )

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
        lines += _wrap(console, verdict, width, "bold")
        state = cat.text(
            "footer.state", state=record["conn_state"], history=record["history"]
        )
        lines += _wrap(console, state, width, "dim")
        if record["handshake"] == "not_seen":
            lines += _wrap(console, cat.text("footer.midstream"), width, "dim")
        if conn.roles_inferred:
            lines += _wrap(console, cat.text("footer.roles_inferred"), width, "dim")
        return lines


# -- drawing helpers --------------------------------------------------------


def _delta(seconds: float) -> str:
    return "+" + format_seconds(seconds)


def _rjust(text: str, width: int) -> str:
    return " " * max(0, width - cell_len(text)) + text


def _centred(content: Text, width: int) -> Text:
    """Return ``content`` centred in ``width`` cells."""
    size = cell_len(content.plain)
    left = max(0, (width - size) // 2)
    text = Text(" " * left)
    text.append_text(content)
    text.append(" " * max(0, width - left - size))
    return text


def _arrow(label: Text, to_responder: bool, width: int, style: str) -> Text:
    """Return an arrow of exactly ``width`` cells with ``label`` in its middle."""
    size = cell_len(label.plain) + 2 if label.plain else 0
    dashes = max(2, width - 1 - size)
    left = dashes // 2
    right = dashes - left
    text = Text()
    if not to_responder:
        text.append("◀", style=style)
    text.append("─" * left, style=style)
    if label.plain:
        text.append(" ")
        text.append_text(label)
        text.append(" ")
    text.append("─" * right, style=style)
    if to_responder:
        text.append("▶", style=style)
    return text


def _wrap(console: Console, content: str, width: int, style: str) -> list[Text]:
    """Wrap ``content`` to lines of exactly ``width`` cells.

    Lines break at spaces and between CJK characters, because Japanese has no
    spaces between words. A run of Latin letters and digits stays whole unless
    it is longer than a line. A line never starts with closing punctuation.
    """
    width = max(width, 8)
    lines: list[list[str]] = [[]]
    used = 0
    for token in _TOKEN.findall(printable(content)):
        size = cell_len(token)
        line = lines[-1]
        if token.isspace():
            if line:
                line.append(" ")
                used += 1
            continue
        if used + size > width and line:
            carried = []
            if token[0] in _NO_LINE_START and len(line) > 1:
                carried.append(line.pop())
            while line and line[-1] == " ":
                line.pop()
            lines.append(carried)
            line = lines[-1]
            used = sum(cell_len(part) for part in line)
        while size > width:
            cut = _cut_at(token, width - used)
            line.append(token[:cut])
            lines.append([])
            line = lines[-1]
            token = token[cut:]
            used = 0
            size = cell_len(token)
        line.append(token)
        used += size
    result = []
    for parts in lines:
        text = "".join(parts).rstrip()
        result.append(Text(text + " " * max(0, width - cell_len(text)), style=style))
    return result


# A wrapping token: a run of Latin letters, digits and symbols, one space, or
# one other character (each CJK character can end a line).
_TOKEN = re.compile(r"[!-~µ×–’]+|\s|.")
_NO_LINE_START = set("。、．，）」』】！？：；…ー")


def _cut_at(token: str, cells: int) -> int:
    """Return how many characters of ``token`` fit in ``cells`` cells (at least 1)."""
    used = 0
    for index, char in enumerate(token):
        used += cell_len(char)
        if used > cells:
            return max(1, index)
    return len(token)


def _arrow_style(flags: int, payload_len: int) -> str:
    if flags & RST:
        return "bold red"
    if flags & SYN:
        return "yellow"
    if flags & FIN:
        return "magenta"
    if payload_len:
        return "cyan"
    return ""


def _phase_duration(conn: Connection, phase: Phase) -> float | None:
    from tcpwatch.flow.record import phase_durations

    durations: dict[str, Any] = phase_durations(conn)
    key = {
        Phase.HANDSHAKE: "handshake_duration",
        Phase.TRANSFER: "transfer_duration",
        Phase.TEARDOWN: "teardown_duration",
    }.get(phase)
    return durations.get(key) if key else None
