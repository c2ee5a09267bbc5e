"""The per-connection timeline: a ladder diagram of every segment.

The originator's lifeline is on the left, the responder's on the right, and
each segment is one arrow between them, labelled with its flags, relative
sequence and acknowledgement numbers, payload length and window. Rules split
the arrows into the handshake, transfer and teardown phases. A long transfer
is folded into one counted line, keeping its first and last segments.
"""

from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from tcpwatch.capture.segment import ACK, FIN, RST, SYN, flag_names
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection, SegmentView, format_endpoint
from tcpwatch.flow.states import Phase
from tcpwatch.units import format_bytes, format_seconds

# Transfer segments kept at each end of a folded transfer.
FOLD_KEEP = 4
# A transfer with more segments than this is folded unless ``full`` is set.
FOLD_ABOVE = 2 * FOLD_KEEP + 2

_TIME_WIDTH = 11
_MIN_ARROW = 24


def segment_phase(conn: Connection, view: SegmentView) -> Phase:
    """Return the phase a segment belongs to."""
    seg = view.segment
    closing = _closing_time(conn)
    if closing is not None and seg.ts >= closing:
        return Phase.TEARDOWN
    if seg.flags & (FIN | RST):
        return Phase.TEARDOWN
    established = conn.handshake_ack_time
    if seg.flags & SYN:
        return Phase.HANDSHAKE
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


def segment_label(view: SegmentView) -> str:
    """Return the arrow label: flags, numbers, length and window."""
    seg = view.segment
    parts = [flag_names(seg.flags) or "none"]
    parts.append(f"seq={view.rel_seq}")
    if seg.flags & ACK:
        parts.append(f"ack={view.rel_ack}")
    if seg.payload_len:
        parts.append(f"len={seg.payload_len}")
    parts.append(f"win={seg.window}")
    return " ".join(parts)


class Timeline:
    """A rich renderable ladder diagram of one connection's segments."""

    def __init__(self, conn: Connection, full: bool = False) -> None:
        if conn.segments is None:
            raise ValueError(
                "the connection was tracked without keep_segments=True; "
                "its segments were not kept"
            )
        self.conn = conn
        self.full = full

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        conn = self.conn
        width = max(options.max_width, _TIME_WIDTH * 2 + _MIN_ARROW + 2)
        arrow_width = width - 2 * _TIME_WIDTH - 2
        yield self._header(width)
        segments = conn.segments or []
        if not segments:
            yield Text("  (no segments kept)", style="dim")
            return
        start = segments[0].segment.ts
        previous = start
        phase: Phase | None = None
        for item in self._fold(segments):
            if isinstance(item, str):
                yield Text(
                    " " * (_TIME_WIDTH * 2) + "│" + item.center(arrow_width) + "│",
                    style="dim",
                )
                continue
            view = item
            current = segment_phase(conn, view)
            if current != phase:
                phase = current
                yield self._phase_rule(phase, width)
            ts = view.segment.ts
            yield self._arrow_line(view, ts - start, ts - previous, arrow_width)
            previous = ts
        if conn.segments_dropped:
            yield Text(
                f"  … {conn.segments_dropped:,} later segments not kept", style="dim"
            )

    def _header(self, width: int) -> Text:
        conn = self.conn
        left = f"originator {format_endpoint(conn.orig_h, conn.orig_p)}"
        right = f"responder {format_endpoint(conn.resp_h, conn.resp_p)}"
        indent = " " * (_TIME_WIDTH * 2)
        pad = width - len(left) - len(right) - len(indent)
        text = Text(indent)
        text.append(left, style="bold")
        if pad >= 1:
            text.append(" " * pad)
        else:
            # Too narrow for one line: the responder goes right-aligned below.
            text.append("\n" + " " * max(0, width - len(right)))
        text.append(right, style="bold")
        return text

    def _phase_rule(self, phase: Phase, width: int) -> Text:
        conn = self.conn
        label = f" {phase.value} "
        duration = _phase_duration(conn, phase)
        if duration is not None:
            label = f" {phase.value} {format_seconds(duration)} "
        line = "─" * 3 + label + "─" * max(0, width - len(label) - 3)
        return Text(line, style="bold " + _PHASE_COLOURS[phase])

    def _arrow_line(
        self, view: SegmentView, since_start: float, since_previous: float, width: int
    ) -> Text:
        seg = view.segment
        label = segment_label(view)
        names = analysis.mark_names(view.marks)
        text = Text(f"{format_seconds(since_start):>{_TIME_WIDTH - 1}} ", style="dim")
        text.append(
            f"{'+' + format_seconds(since_previous):>{_TIME_WIDTH - 1}} ", style="dim"
        )
        text.append("│")
        body_width = width
        mark_text = (" [" + ", ".join(names) + "]") if names else ""
        inner = body_width - 4
        full_label = f" {label}{mark_text} "
        if len(full_label) > inner:
            full_label = full_label[: max(0, inner - 2)] + "… "
        fill = inner - len(full_label)
        left_fill = fill // 2
        right_fill = fill - left_fill
        style = _arrow_style(seg.flags, view.marks)
        if view.is_orig:
            arrow = "─" + "─" * left_fill + full_label + "─" * right_fill + "─▶"
        else:
            arrow = "◀─" + "─" * left_fill + full_label + "─" * right_fill + "─"
        text.append(arrow, style=style)
        text.append("│")
        return text

    def _fold(self, segments: list[SegmentView]) -> Iterable[SegmentView | str]:
        if self.full:
            yield from segments
            return
        transfer = [
            index
            for index, view in enumerate(segments)
            if segment_phase(self.conn, view) == Phase.TRANSFER
        ]
        if len(transfer) <= FOLD_ABOVE:
            yield from segments
            return
        hidden = set(transfer[FOLD_KEEP:-FOLD_KEEP])
        summary_done = False
        for index, view in enumerate(segments):
            if index not in hidden:
                yield view
            elif not summary_done:
                summary_done = True
                yield _fold_summary([segments[i] for i in sorted(hidden)])


def _fold_summary(views: list[SegmentView]) -> str:
    payload = sum(view.segment.payload_len for view in views)
    retransmitted = sum(1 for view in views if view.marks & analysis.ANY_RETRANSMISSION)
    text = f"… {len(views):,} segments, {format_bytes(payload)}"
    if retransmitted:
        text += f", {retransmitted:,} retransmissions"
    return text + " …"


def _phase_duration(conn: Connection, phase: Phase) -> float | None:
    from tcpwatch.flow.record import phase_durations

    durations = phase_durations(conn)
    key = {
        Phase.HANDSHAKE: "handshake_duration",
        Phase.TRANSFER: "transfer_duration",
        Phase.TEARDOWN: "teardown_duration",
    }.get(phase)
    return durations.get(key) if key else None


_PHASE_COLOURS = {
    Phase.HANDSHAKE: "yellow",
    Phase.TRANSFER: "cyan",
    Phase.TEARDOWN: "magenta",
    Phase.CLOSED: "dim",
}


def _arrow_style(flags: int, marks: int) -> str:
    if marks & (analysis.ANY_RETRANSMISSION | analysis.OUT_OF_ORDER):
        return "red"
    if marks & (analysis.DUP_ACK | analysis.ZERO_WINDOW | analysis.KEEP_ALIVE):
        return "yellow"
    if flags & RST:
        return "bold red"
    if flags & SYN:
        return "bold yellow"
    if flags & FIN:
        return "bold magenta"
    return ""
