"""The connection record: every output format writes these fields.

Field names follow Zeek's conn.log where Zeek has the field; the rest are
tcpwatch's own. ``RECORD_FIELDS`` fixes the order for CSV and Zeek TSV.
"""

import itertools
from collections.abc import Sequence
from typing import Any, Final

from tcpwatch.flow.connection import Connection, format_address
from tcpwatch.flow.states import EndpointState, Handshake, Phase, Teardown
from tcpwatch.flow.verdict import verdict
from tcpwatch.flow.zeek import conn_state

RECORD_FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "handshake",
    "teardown",
    "roles_inferred",
    "verdict",
    "rtt_syn_synack",
    "rtt_synack_ack",
    "reject_latency",
    "syn_retransmissions",
    "synack_retransmissions",
    "orig_retransmissions",
    "resp_retransmissions",
    "orig_out_of_order",
    "resp_out_of_order",
    "orig_dup_acks",
    "resp_dup_acks",
    "orig_zero_windows",
    "resp_zero_windows",
    "orig_keepalives",
    "resp_keepalives",
    "orig_mss",
    "resp_mss",
    "orig_wscale",
    "resp_wscale",
    "sack_permitted",
    "first_byte_time",
    "handshake_duration",
    "transfer_duration",
    "teardown_duration",
    # Added after the first release; new fields go at the end.
    "end_reason",
    "syn_backoffs",
    "synack_backoffs",
    "simultaneous_close",
    "fast_open",
    "port_reused",
    "stray_syns",
    "orig_fast_retransmissions",
    "resp_fast_retransmissions",
    "orig_spurious_retransmissions",
    "resp_spurious_retransmissions",
    "orig_segments_not_captured",
    "resp_segments_not_captured",
    "orig_missed_bytes",
    "resp_missed_bytes",
    "orig_window_full",
    "resp_window_full",
    "orig_zero_window_probes",
    "resp_zero_window_probes",
    "orig_window_updates",
    "resp_window_updates",
    "orig_duplicate_captures",
    "resp_duplicate_captures",
    "orig_wscale_offered",
    "resp_wscale_offered",
    "orig_sack_permitted",
    "resp_sack_permitted",
    "orig_timestamps",
    "resp_timestamps",
    "timestamps",
    "orig_sack_segments",
    "resp_sack_segments",
)


def classify_handshake(conn: Connection) -> Handshake:
    """Return how the connection opened."""
    orig, resp = conn.orig, conn.resp
    if conn.simultaneous_open:
        return Handshake.SIMULTANEOUS_OPEN
    if resp.synack_times:
        if conn.handshake_ack_time is not None:
            return Handshake.COMPLETE
        return Handshake.INCOMPLETE
    if orig.syn_times:
        if resp.pkts == 0:
            return Handshake.NO_REPLY
        if resp.rst_time is not None:
            return Handshake.REJECTED
        return Handshake.INCOMPLETE
    return Handshake.NOT_SEEN


def classify_teardown(conn: Connection) -> Teardown:
    """Return how the connection ended.

    A RST after both FINs does not count: RFC 9293 section 3.10.7.4 lets a
    closed endpoint answer late segments with RST.
    """
    orig, resp = conn.orig, conn.resp
    rst_time = _first_rst_time(conn)
    if orig.fin_time is not None and resp.fin_time is not None:
        both_fin = max(orig.fin_time, resp.fin_time)
        if rst_time is None or rst_time >= both_fin:
            return Teardown.FIN
    if rst_time is not None:
        return Teardown.RESET_BY_ORIG if conn.first_rst_orig else Teardown.RESET_BY_RESP
    if orig.fin_time is not None or resp.fin_time is not None:
        return Teardown.HALF_CLOSED
    if conn.end_reason == "idle_timeout":
        return Teardown.IDLE_TIMEOUT
    return Teardown.OPEN


def is_simultaneous_close(conn: Connection) -> bool:
    """Return whether the two FINs crossed (RFC 9293 section 3.6, figure 13).

    Each side sent its FIN before it had acknowledged the other's, so neither
    was answering the other's close.
    """
    orig, resp = conn.orig, conn.resp
    if orig.fin_ack is None or resp.fin_ack is None:
        return False
    return orig.fin_ack < resp.fin_seq and resp.fin_ack < orig.fin_seq


def backoffs(times: Sequence[float], transmissions: int | None = None) -> list[float]:
    """Return the gaps between successive transmissions, in seconds.

    When more were sent (``transmissions``) than ``times`` keeps, its last
    entry is the latest of many, so the gap before it is left out.
    """
    if len(times) < 2:
        return []  # most connections: one SYN, one SYN-ACK
    if transmissions is not None and transmissions > len(times):
        times = times[:-1]
    return [round(later - earlier, 6) for earlier, later in itertools.pairwise(times)]


def fast_open(conn: Connection) -> str | None:
    """Return how the connection used TCP Fast Open (RFC 7413), None if not at all.

    ``accepted`` means the SYN-ACK acknowledged the data on the SYN, and
    ``not_accepted`` that it acknowledged the SYN alone. ``data`` means the SYN
    carried data and no SYN-ACK followed. ``cookie_request`` and ``cookie`` are
    SYNs without data.
    """
    return conn.orig.fast_open


def current_phase(conn: Connection) -> Phase:
    """Return the phase the connection is in now, for live views."""
    if conn.finished or conn.both_done():
        return Phase.CLOSED
    orig, resp = conn.orig, conn.resp
    if orig.fin_time is not None or resp.fin_time is not None:
        return Phase.TEARDOWN
    if orig.state in (EndpointState.SYN_SENT, EndpointState.SYN_ACK_SENT):
        return Phase.HANDSHAKE
    if resp.state in (EndpointState.INACTIVE, EndpointState.SYN_ACK_SENT):
        if conn.handshake_ack_time is None and orig.syn_times:
            return Phase.HANDSHAKE
    return Phase.TRANSFER


def _first_rst_time(conn: Connection) -> float | None:
    return _earliest(conn.orig.rst_time, conn.resp.rst_time)


def _earliest(first: float | None, second: float | None) -> float | None:
    """Return the earlier of two times, either of which may be None, as min() does."""
    if first is None:
        return second
    if second is None:
        return first
    return second if second < first else first


def _last_before(times: Sequence[float], limit: float) -> float | None:
    """Return the latest time in ``times`` not after ``limit``."""
    best = None
    for value in times:
        if value <= limit:
            best = value
    return best


_TIMING_FIELDS: Final = ("rtt_syn_synack", "rtt_synack_ack", "reject_latency")
_DURATION_FIELDS: Final = (
    "first_byte_time",
    "handshake_duration",
    "transfer_duration",
    "teardown_duration",
)


def handshake_timings(conn: Connection) -> dict[str, float | None]:
    """Return the SYN to SYN-ACK and SYN-ACK to ACK times, and the reject latency.

    With retransmitted SYNs the round trip is timed from the last SYN sent
    before the answer; which copy was answered cannot be told from the wire.
    """
    return dict(zip(_TIMING_FIELDS, _handshake_timings(conn), strict=True))


def phase_durations(conn: Connection) -> dict[str, float | None]:
    """Return the handshake, transfer and teardown durations and the first-byte time."""
    return dict(zip(_DURATION_FIELDS, _phase_durations(conn), strict=True))


def _handshake_timings(
    conn: Connection,
) -> tuple[float | None, float | None, float | None]:
    """Return ``handshake_timings`` as a tuple in ``_TIMING_FIELDS`` order."""
    orig, resp = conn.orig, conn.resp
    rtt_syn_synack = rtt_synack_ack = reject_latency = None
    if conn.synack_time is not None:
        syn = _last_before(orig.syn_times, conn.synack_time)
        if syn is not None:
            rtt_syn_synack = conn.synack_time - syn
        if conn.handshake_ack_time is not None:
            synack = _last_before(resp.synack_times, conn.handshake_ack_time)
            if synack is not None:
                rtt_synack_ack = conn.handshake_ack_time - synack
    elif resp.rst_time is not None and orig.syn_times:
        syn = _last_before(orig.syn_times, resp.rst_time)
        if syn is not None:
            reject_latency = resp.rst_time - syn
    return rtt_syn_synack, rtt_synack_ack, reject_latency


def _phase_durations(
    conn: Connection,
) -> tuple[float | None, float | None, float | None, float | None]:
    """Return ``phase_durations`` as a tuple in ``_DURATION_FIELDS`` order."""
    orig, resp = conn.orig, conn.resp
    end = max(conn.last_time, orig.last_time, resp.last_time)
    established = conn.handshake_ack_time
    opened = orig.syn_times[0] if orig.syn_times else None
    handshake_duration = None
    if established is not None and opened is not None:
        handshake_duration = established - opened
    closing = _earliest(_earliest(orig.fin_time, resp.fin_time), _first_rst_time(conn))
    transfer_start = established if established is not None else conn.start_time
    transfer_end = closing if closing is not None else end
    transfer_duration = None
    if conn.handshake_ack_time is not None or conn.is_partial:
        transfer_duration = max(0.0, transfer_end - transfer_start)
    teardown_duration = None if closing is None else max(0.0, end - closing)
    first_data = _earliest(orig.data_time, resp.data_time)
    first_byte_time = None
    if established is not None and first_data is not None:
        first_byte_time = max(0.0, first_data - established)
    return first_byte_time, handshake_duration, transfer_duration, teardown_duration


def build_record(conn: Connection) -> dict[str, Any]:
    """Return the connection record as a dict in ``RECORD_FIELDS`` order."""
    orig, resp = conn.orig, conn.resp
    orig_bytes, resp_bytes = conn.endpoint_sizes()
    history = conn.history
    rtt_syn_synack, rtt_synack_ack, reject_latency = _handshake_timings(conn)
    first_byte, handshake_time, transfer_time, teardown_time = _phase_durations(conn)
    agreed_scale = orig.wscale_offered is not None and resp.wscale_offered is not None
    record: dict[str, Any] = {
        "ts": conn.start_time,
        "uid": conn.uid,
        "id.orig_h": format_address(conn.orig_h),
        "id.orig_p": conn.orig_p,
        "id.resp_h": format_address(conn.resp_h),
        "id.resp_p": conn.resp_p,
        "proto": "tcp",
        "duration": round(conn.duration, 6),
        "orig_bytes": orig_bytes,
        "resp_bytes": resp_bytes,
        "conn_state": conn_state(
            orig.state, resp.state, orig_bytes, resp_bytes, history
        ),
        "missed_bytes": orig.missed_bytes + resp.missed_bytes,
        "history": history,
        "orig_pkts": orig.pkts,
        "orig_ip_bytes": orig.ip_bytes,
        "resp_pkts": resp.pkts,
        "resp_ip_bytes": resp.ip_bytes,
        "handshake": classify_handshake(conn).value,
        "teardown": classify_teardown(conn).value,
        "roles_inferred": conn.roles_inferred,
        "verdict": "",
        "rtt_syn_synack": _round(rtt_syn_synack),
        "rtt_synack_ack": _round(rtt_synack_ack),
        "reject_latency": _round(reject_latency),
        "syn_retransmissions": max(0, orig.syn_transmissions - 1),
        "synack_retransmissions": max(0, resp.synack_transmissions - 1),
        "orig_retransmissions": orig.retransmissions,
        "resp_retransmissions": resp.retransmissions,
        "orig_out_of_order": orig.out_of_order,
        "resp_out_of_order": resp.out_of_order,
        "orig_dup_acks": orig.dup_acks,
        "resp_dup_acks": resp.dup_acks,
        "orig_zero_windows": orig.zero_windows,
        "resp_zero_windows": resp.zero_windows,
        "orig_keepalives": orig.keepalives,
        "resp_keepalives": resp.keepalives,
        "orig_mss": orig.mss,
        "resp_mss": resp.mss,
        "orig_wscale": orig.wscale_offered if agreed_scale else None,
        "resp_wscale": resp.wscale_offered if agreed_scale else None,
        "sack_permitted": orig.sack_permitted and resp.sack_permitted,
        "first_byte_time": _round(first_byte),
        "handshake_duration": _round(handshake_time),
        "transfer_duration": _round(transfer_time),
        "teardown_duration": _round(teardown_time),
        "end_reason": conn.end_reason,
        "syn_backoffs": backoffs(orig.syn_times, orig.syn_transmissions),
        "synack_backoffs": backoffs(resp.synack_times, resp.synack_transmissions),
        "simultaneous_close": is_simultaneous_close(conn),
        "fast_open": orig.fast_open,
        "port_reused": conn.port_reused,
        "stray_syns": conn.stray_syns,
        "orig_fast_retransmissions": orig.fast_retransmissions,
        "resp_fast_retransmissions": resp.fast_retransmissions,
        "orig_spurious_retransmissions": orig.spurious_retransmissions,
        "resp_spurious_retransmissions": resp.spurious_retransmissions,
        "orig_segments_not_captured": orig.segments_not_captured,
        "resp_segments_not_captured": resp.segments_not_captured,
        "orig_missed_bytes": orig.missed_bytes,
        "resp_missed_bytes": resp.missed_bytes,
        "orig_window_full": orig.window_full,
        "resp_window_full": resp.window_full,
        "orig_zero_window_probes": orig.zero_window_probes,
        "resp_zero_window_probes": resp.zero_window_probes,
        "orig_window_updates": orig.window_updates,
        "resp_window_updates": resp.window_updates,
        "orig_duplicate_captures": orig.duplicate_captures,
        "resp_duplicate_captures": resp.duplicate_captures,
        "orig_wscale_offered": orig.wscale_offered if orig.syn_count else None,
        "resp_wscale_offered": resp.wscale_offered if resp.syn_count else None,
        "orig_sack_permitted": orig.sack_permitted,
        "resp_sack_permitted": resp.sack_permitted,
        "orig_timestamps": orig.timestamps,
        "resp_timestamps": resp.timestamps,
        "timestamps": orig.timestamps and resp.timestamps,
        "orig_sack_segments": orig.sack_segments,
        "resp_sack_segments": resp.sack_segments,
    }
    record["verdict"] = verdict(conn, record)
    return record


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
