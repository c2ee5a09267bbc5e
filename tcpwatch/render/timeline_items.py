"""The timeline's content before layout: phase bands, folds and the RTT bracket.

``build_items`` turns a connection's segments into the rows a ``Timeline``
draws: a rule where a phase band starts, an arrow for each segment shown, and a
summary line for each run of transfer segments folded away. It also finds the
rows where the handshake round-trip bracket starts and ends.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from tcpwatch.capture.segment import ACK, FIN, RST, SYN
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection, SegmentView
from tcpwatch.flow.states import Phase
from tcpwatch.render.explain import Explainer

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


@dataclass
class PhaseItem:
    phase: Phase


@dataclass
class SegmentItem:
    view: SegmentView
    since_start: float
    since_previous: float
    notes: list[str] = field(default_factory=list)
    bracket: str = ""
    """Round-trip bracket part on this row: "start", "end" or "" (none)."""


@dataclass
class FoldItem:
    views: list[SegmentView]
    span: float


Item = PhaseItem | SegmentItem | FoldItem


def build_items(
    conn: Connection, full: bool, explainer: Explainer | None
) -> Iterator[Item]:
    """Yield the timeline's phase rules, segments and fold lines, in order.

    An ``explainer``, when given, reads every segment in capture order, folded
    ones included, because each note depends on the segments before it.
    """
    segments = conn.segments or []
    if not segments:
        return
    phases = segment_phases(conn, segments)
    bracket = bracket_rows(conn, segments)
    start = segments[0].segment.ts
    previous = start
    shown = shown_segments(segments, phases, full)
    phase: Phase | None = None
    index = 0
    while index < len(segments):
        view = segments[index]
        if phases[index] != phase:
            phase = phases[index]
            yield PhaseItem(phase)
        if not shown[index]:
            end = index
            while end < len(segments) and not shown[end]:
                end += 1
            hidden = segments[index:end]
            if explainer is not None:
                for hidden_view in hidden:
                    explainer.notes(hidden_view)
            span = hidden[-1].segment.ts - hidden[0].segment.ts
            yield FoldItem(hidden, span)
            previous = hidden[-1].segment.ts
            index = end
            continue
        ts = view.segment.ts
        item = SegmentItem(view, ts - start, ts - previous)
        if explainer is not None:
            item.notes = explainer.notes(view)
        item.bracket = bracket.get(index, "")
        previous = ts
        yield item
        index += 1


def segment_phases(conn: Connection, segments: list[SegmentView]) -> list[Phase]:
    """Return each segment's band, never moving back to an earlier phase."""
    phases = []
    current = -1
    for view in segments:
        phase = segment_phase(conn, view)
        order = _PHASE_ORDER.get(phase, 2)
        if order < current:
            phase = next(p for p, o in _PHASE_ORDER.items() if o == current)
        current = max(current, order)
        phases.append(phase)
    return phases


def shown_segments(
    segments: list[SegmentView], phases: list[Phase], full: bool
) -> list[bool]:
    """Return which segments get their own arrow; the rest fold."""
    shown = [True] * len(segments)
    if full:
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


def bracket_rows(conn: Connection, segments: list[SegmentView]) -> dict[int, str]:
    """Return the rows where the round-trip bracket starts and ends."""
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
