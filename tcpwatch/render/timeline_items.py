"""The timeline's content before layout: phase bands, folds and the RTT bracket.

``build_items`` turns a connection's segments into the rows a ``Timeline``
draws: a rule where a phase band starts, an arrow for each segment shown, and a
summary line for each run of transfer segments folded away. It also finds the
rows where the handshake round-trip bracket starts and ends.
"""

import functools
import operator
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
FOLD_PER_KIND = 2
"""Segments of each analysis mark kept visible at the start of each episode."""
FOLD_EPISODE_GAP = FOLD_ABOVE
"""Segments without a mark after which its next segment starts a new episode."""
FOLD_NOTABLE = 48
"""Most segments kept for marks in one transfer, besides each mark's first episode."""
FOLD_MIN_RUN = 3
"""Hidden runs shorter than this are shown, since a summary line saves nothing."""

NOTABLE_MARKS = functools.reduce(operator.or_, analysis.MARK_NAMES, 0)
"""Marks that keep a segment visible in a folded transfer: every analysis mark."""


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
    sender_previous: SegmentView | None = None
    """The same endpoint's previous segment, folded or not; None for its first."""


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
    # The last segment seen from each endpoint, keyed by ``is_orig``.
    last_sent: dict[bool, SegmentView] = {}
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
            for hidden_view in hidden:
                if explainer is not None:
                    explainer.notes(hidden_view)
                last_sent[hidden_view.is_orig] = hidden_view
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
        item.sender_previous = last_sent.get(view.is_orig)
        last_sent[view.is_orig] = view
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
    middle = transfer[FOLD_KEEP:-FOLD_KEEP]
    for index in middle:
        shown[index] = False
    for index in _marked_segments(segments, middle):
        shown[index] = True
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


def _marked_segments(segments: list[SegmentView], middle: list[int]) -> set[int]:
    """Return the folded segments that stay visible because of their marks.

    Each mark has episodes: a run of segments with that mark in which no two
    are more than ``FOLD_EPISODE_GAP`` segments apart. The first
    ``FOLD_PER_KIND`` segments of an episode stay visible, with the segment
    just before its first one, which often shows the cause (the segment past
    a gap before the first duplicate ACK). A mark's first episode is always
    kept; later ones only until ``FOLD_NOTABLE`` segments are kept.
    """
    kept: set[int] = set()
    last_seen: dict[int, int] = {}
    episodes: dict[int, int] = {}
    in_episode: dict[int, int] = {}
    for index in middle:
        marks = segments[index].marks & NOTABLE_MARKS
        if not marks:
            continue
        for bit in analysis.MARK_NAMES:
            if not marks & bit:
                continue
            if bit not in last_seen or index - last_seen[bit] > FOLD_EPISODE_GAP:
                episodes[bit] = episodes.get(bit, 0) + 1
                in_episode[bit] = 0
            last_seen[bit] = index
            if in_episode[bit] >= FOLD_PER_KIND:
                continue
            if episodes[bit] > 1 and len(kept) >= FOLD_NOTABLE:
                continue
            if in_episode[bit] == 0:
                kept.add(index - 1)
            kept.add(index)
            in_episode[bit] += 1
    return kept


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
