"""Plain-language notes on each step of a connection, and translated verdicts.

``Explainer`` walks a connection's segments in capture order and returns,
for each one, what it does in TCP terms: what a SYN offers, why the ACK of a SYN
is the ISN + 1, which bytes an ACK acknowledges, what a FIN closes, why a RST
ended the connection, and what each analysis mark says about the network.
Every sentence comes from a message catalogue (``tcpwatch.i18n``), so notes
exist in each shipped language.
"""

from typing import Any

from tcpwatch.capture.segment import ACK, FIN, RST, SYN
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection, SegmentView
from tcpwatch.flow.options import parse_options
from tcpwatch.flow.states import Phase
from tcpwatch.i18n import Catalogue
from tcpwatch.render.style import printable
from tcpwatch.units import format_bytes, format_seconds

# Marks whose note replaces the plain "sends bytes" note of a segment.
_REPLACES_DATA_NOTE = (
    analysis.ANY_RETRANSMISSION
    | analysis.OUT_OF_ORDER
    | analysis.KEEP_ALIVE
    | analysis.ZERO_WINDOW_PROBE
)
# Marks explained by the ACK part of a segment's note.
_ACK_MARKS = analysis.DUP_ACK | analysis.WINDOW_UPDATE


def mark_key(name: str) -> str:
    """Return a mark's catalogue key suffix (``out-of-order``: ``out_of_order``)."""
    return name.lower().replace("-", "_").replace(" ", "_")


def mark_words(marks: int, cat: Catalogue) -> list[tuple[int, str]]:
    """Return ``(bit, word)`` for each mark in ``marks``, in the catalogue's language.

    A mark the catalogue does not know yet keeps its English name; the
    catalogue tests fail until it is translated.
    """
    return [
        (bit, cat.messages.get("mark." + mark_key(name), name))
        for bit, name in analysis.MARK_NAMES.items()
        if marks & bit
    ]


def scaled_window(conn: Connection, view: SegmentView) -> int:
    """Return the segment's window in bytes, with the sender's window scale applied."""
    seg = view.segment
    if seg.flags & SYN:
        return int(seg.window)  # RFC 7323 section 2.2: a SYN's window is unscaled
    sender = conn.orig if view.is_orig else conn.resp
    return int(seg.window) << sender.window_scale


def side_names(cat: Catalogue, is_orig: bool) -> tuple[str, str]:
    """Return the (sender, receiver) words: client and server, either way round."""
    client, server = cat.text("role.client"), cat.text("role.server")
    return (client, server) if is_orig else (server, client)


class Explainer:
    """Notes for a connection's segments; call ``notes`` in capture order.

    The explainer keeps what earlier segments established (ISNs, FINs, the
    last ACK each side sent, when each data range was first sent), because a
    segment's meaning depends on them.
    """

    def __init__(self, conn: Connection, cat: Catalogue) -> None:
        self.conn = conn
        self.cat = cat
        segments = conn.segments or []
        self.start = segments[0].segment.ts if segments else conn.start_time
        self._syn_isn: dict[bool, int] = {}
        self._synack_isn: int | None = None
        self._handshake_done = False
        self._fin_end: dict[bool, int] = {}
        self._last_ack: dict[bool, int] = {True: -1, False: -1}
        self._first_sent: dict[tuple[bool, int], float] = {}

    def phase_intro(self, phase: Phase) -> str | None:
        """Return the note that introduces ``phase``, if it has one."""
        if phase == Phase.CLOSED:
            return None
        return self.cat.text("explain.phase." + phase.value)

    def notes(self, view: SegmentView) -> list[str]:
        """Return the notes for the next segment and remember what it did."""
        seg = view.segment
        flags = seg.flags
        side, peer = side_names(self.cat, view.is_orig)
        names = {"side": side, "peer": peer}
        if flags & SYN:
            notes = self._syn_notes(view, names)
        elif flags & RST:
            notes = [self._rst_note(view, names)]
        else:
            notes = self._data_notes(view, names)
            notes += self._fin_notes(view, names)
            notes += self._ack_notes(view, names)
        notes += self._mark_notes(view, names)
        self._remember(view)
        return notes

    # -- per kind of segment ----------------------------------------------

    def _syn_notes(self, view: SegmentView, names: dict[str, str]) -> list[str]:
        seg = view.segment
        text = self.cat.text
        options = self._options(seg.options)
        if not seg.flags & ACK:
            if self._syn_isn.get(view.is_orig) == seg.seq:
                return [text("explain.syn_again", **names)]
            if not view.is_orig or self._syn_isn.get(not view.is_orig) is not None:
                return [text("explain.syn_simultaneous", isn=seg.seq, **names)]
            if options:
                return [text("explain.syn", isn=seg.seq, options=options, **names)]
            return [text("explain.syn_no_options", isn=seg.seq, **names)]
        if self._synack_isn == seg.seq:
            return [text("explain.synack_again", **names)]
        values: dict[str, Any] = {"isn": seg.seq, "ack": seg.ack, **names}
        if options:
            return [text("explain.synack", options=options, **values)]
        return [text("explain.synack_no_options", **values)]

    def _rst_note(self, view: SegmentView, names: dict[str, str]) -> str:
        conn = self.conn
        text = self.cat.text
        if (
            not view.is_orig
            and self._synack_isn is None
            and self._syn_isn.get(True) is not None
        ):
            return text("explain.rst_refused", port=conn.resp_p, **names)
        if len(self._fin_end) == 2:
            return text("explain.rst_late")
        return text("explain.rst_abort", **names)

    def _data_notes(self, view: SegmentView, names: dict[str, str]) -> list[str]:
        length = view.segment.payload_len
        if not length or view.marks & _REPLACES_DATA_NOTE:
            return []
        first = view.rel_seq
        notes = [
            self.cat.text(
                "explain.data",
                length=length,
                first=first,
                last=first + length - 1,
                **names,
            )
        ]
        preview = payload_preview(view.segment.payload)
        if preview:
            notes.append(self.cat.text("explain.payload", preview=preview))
        return notes

    def _fin_notes(self, view: SegmentView, names: dict[str, str]) -> list[str]:
        if not view.segment.flags & FIN or view.is_orig in self._fin_end:
            return []
        if (not view.is_orig) in self._fin_end:
            return [self.cat.text("explain.fin_second", **names)]
        return [self.cat.text("explain.fin_first", **names)]

    def _ack_notes(self, view: SegmentView, names: dict[str, str]) -> list[str]:
        seg = view.segment
        if not seg.flags & ACK or view.marks & _ACK_MARKS:
            return []
        text = self.cat.text
        rel_ack = view.rel_ack
        if (
            view.is_orig
            and not self._handshake_done
            and self._synack_isn is not None
            and rel_ack == 1
        ):
            return [text("explain.handshake_ack", **names)]
        if rel_ack <= self._last_ack[view.is_orig]:
            return []
        peer_fin = self._fin_end.get(not view.is_orig)
        if peer_fin is not None and rel_ack >= peer_fin:
            upto = max(0, peer_fin - 2)
            return [text("explain.ack_fin", upto=upto, ack=rel_ack, **names)]
        if rel_ack <= 1:
            return []
        return [text("explain.ack_data", upto=rel_ack - 1, **names)]

    def _mark_notes(self, view: SegmentView, names: dict[str, str]) -> list[str]:
        notes = []
        seg = view.segment
        length = max(1, seg.payload_len)
        first = view.rel_seq + (1 if seg.flags & SYN else 0)
        values: dict[str, Any] = {
            "first": first,
            "last": first + length - 1,
            "ack": view.rel_ack,
            "window": scaled_window(self.conn, view),
            **names,
        }
        for bit, name in analysis.MARK_NAMES.items():
            if not view.marks & bit:
                continue
            key = "explain." + mark_key(name)
            if bit == analysis.RETRANSMISSION:
                sent = self._first_sent.get((view.is_orig, view.rel_seq))
                if sent is None:
                    key = "explain.retransmission_unseen"
                else:
                    values["when"] = format_seconds(sent - self.start)
            if key in self.cat.messages:
                notes.append(self.cat.text(key, **values))
        return notes

    # -- helpers -----------------------------------------------------------

    def _options(self, raw: bytes) -> str:
        options = parse_options(raw)
        text = self.cat.text
        offered = []
        if options.mss is not None:
            offered.append(text("option.mss", mss=options.mss))
        if options.window_scale is not None:
            shift = min(options.window_scale, 14)
            offered.append(text("option.wscale", shift=shift, factor=1 << shift))
        if options.sack_permitted:
            offered.append(text("option.sack"))
        if options.timestamp is not None:
            offered.append(text("option.timestamps"))
        if options.fast_open_cookie is not None:
            offered.append(text("option.fast_open"))
        return self.cat.join(offered)

    def _remember(self, view: SegmentView) -> None:
        seg = view.segment
        flags = seg.flags
        if flags & SYN:
            if flags & ACK:
                self._synack_isn = seg.seq
            else:
                self._syn_isn.setdefault(view.is_orig, seg.seq)
        elif (
            view.is_orig
            and flags & ACK
            and self._synack_isn is not None
            and view.rel_ack >= 1
        ):
            self._handshake_done = True
        if flags & FIN and view.is_orig not in self._fin_end:
            self._fin_end[view.is_orig] = view.rel_seq + seg.payload_len + 1
        if flags & ACK and not flags & RST:
            self._last_ack[view.is_orig] = max(
                self._last_ack[view.is_orig], view.rel_ack
            )
        if seg.payload_len and not flags & RST:
            self._first_sent.setdefault((view.is_orig, view.rel_seq), seg.ts)


PREVIEW_CHARS = 32
"""Payload characters quoted in a data segment's note."""


def payload_preview(payload: bytes) -> str:
    """Return the start of a payload as text, control characters escaped.

    Bytes are read as Latin-1 so every byte is one character, and
    ``printable`` escapes the control characters, so a payload cannot send
    escape sequences to the terminal. Returns "" when the bytes do not look
    like text (fewer than three in four printable).
    """
    if not payload:
        return ""
    text = payload[:PREVIEW_CHARS].decode("latin-1")
    readable = sum(1 for char in text if char.isprintable() or char in "\r\n\t")
    if readable * 4 < len(text) * 3:
        return ""
    preview = printable(text)
    if len(payload) > PREVIEW_CHARS:
        preview += "…"
    return preview


def verdict_text(conn: Connection, record: dict[str, Any], cat: Catalogue) -> str:
    """Return the connection's verdict in the catalogue's language.

    English uses the record's own sentence; other languages build theirs from
    the record's facts with ``build_verdict``.
    """
    if cat.code == "en" and record.get("verdict"):
        return str(record["verdict"])
    return build_verdict(conn, record, cat)


def build_verdict(conn: Connection, record: dict[str, Any], cat: Catalogue) -> str:
    """Build the verdict from the record's facts with the ``verdict.*`` messages."""
    sentence = _outcome_sentence(conn, record, cat)
    if record["end_reason"] == "evicted":
        return cat.text("verdict.evicted", sentence=sentence)
    if record["end_reason"] == "idle_timeout" and record["teardown"] != "idle_timeout":
        return cat.text("verdict.idle_stopped", sentence=sentence)
    return sentence


def _outcome_sentence(conn: Connection, record: dict[str, Any], cat: Catalogue) -> str:
    text = cat.text
    handshake = record["handshake"]
    client, server = cat.text("role.client"), cat.text("role.server")
    tries = record["syn_retransmissions"] + 1
    if handshake == "rejected":
        latency = format_seconds(record["reject_latency"])
        if tries > 1:
            return text("verdict.rejected_tries", latency=latency, tries=tries)
        return text("verdict.rejected", latency=latency)
    if handshake == "no_reply":
        if "A" in record["history"] or "D" in record["history"]:
            size = format_bytes(record["orig_bytes"])
            return text("verdict.only_client_side", size=size)
        syn_times = conn.orig.syn_times
        tries = conn.orig.syn_transmissions
        if tries > 1:
            span = format_seconds(syn_times[-1] - syn_times[0])
            return text("verdict.no_reply_tries", tries=tries, span=span)
        return text("verdict.no_reply")
    if handshake == "incomplete":
        answered = "a" in record["history"] or "d" in record["history"]
        if conn.synack_time is None and answered:
            sentence = _teardown_sentence(conn, record, cat, client, server)
            return text("verdict.prefix.synack_not_captured", sentence=sentence)
        if answered and not record["orig_pkts"]:
            size = format_bytes(record["resp_bytes"])
            return text("verdict.only_server_side", size=size)
        if conn.synack_time is None:
            return text("verdict.incomplete_no_synack")
        return text("verdict.incomplete_unacked")
    sentence = _teardown_sentence(conn, record, cat, client, server)
    if handshake == "not_seen":
        key = "verdict.prefix.midstream"
        if record["roles_inferred"]:
            key = "verdict.prefix.midstream_inferred"
        return text(key, sentence=sentence)
    if handshake == "simultaneous_open":
        return text("verdict.prefix.simultaneous", sentence=sentence)
    if handshake == "complete" and not conn.orig.syn_times:
        return text("verdict.prefix.syn_not_captured", sentence=sentence)
    return sentence


def _teardown_sentence(
    conn: Connection,
    record: dict[str, Any],
    cat: Catalogue,
    client: str,
    server: str,
) -> str:
    text = cat.text
    teardown = record["teardown"]
    total = record["orig_bytes"] + record["resp_bytes"]
    size = format_bytes(total)
    if teardown == "fin":
        orig_fin, resp_fin = conn.orig.fin_time, conn.resp.fin_time
        by_client = orig_fin is not None and (resp_fin is None or orig_fin <= resp_fin)
        return text("verdict.fin", side=client if by_client else server, size=size)
    if teardown in ("reset_by_orig", "reset_by_resp"):
        by_client = teardown == "reset_by_orig"
        rst_time = conn.orig.rst_time if by_client else conn.resp.rst_time
        start = conn.handshake_ack_time or conn.start_time
        into = format_seconds((rst_time or start) - start)
        stage = "transfer" if total else "before_data"
        if conn.handshake_ack_time is None and not conn.is_partial:
            stage = "handshake"
        return text(
            "verdict.reset." + stage,
            side=client if by_client else server,
            into=into,
            size=size,
        )
    if teardown == "half_closed":
        by_client = conn.orig.fin_time is not None
        side, peer = (client, server) if by_client else (server, client)
        return text("verdict.half_closed", side=side, peer=peer, size=size)
    if teardown == "idle_timeout":
        return text("verdict.idle_timeout", size=size)
    if record["end_reason"] == "evicted":
        return text("verdict.open_evicted", size=size)
    return text("verdict.open", size=size)
