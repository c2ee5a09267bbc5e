"""One plain-language sentence per connection, built from the record's facts.

The sentence names the outcome first ("server refused", "closed cleanly",
"reset by the server") and then, after a semicolon, what went wrong on the way
(retransmissions, bytes the capture missed, zero windows). Where the capture
cannot settle a fact, the sentence states the doubt: roles without a SYN are
"inferred" or "guessed", and out-of-order segments may also be "quick
retransmissions".
"""

from typing import Any

from tcpwatch.flow.connection import Connection
from tcpwatch.flow.zeek import LIKELY_SERVER_PORTS
from tcpwatch.units import format_bytes, format_seconds

TABLE_FULL = "tracking stopped early: the connection table was full (--max-connections)"
"""Verdict detail for a connection evicted while still open or half-open."""
IDLE_STOP = "then idle longer than --idle-timeout: tracking stopped"
"""Verdict detail for a connection that had closed one side, or neither,
when the idle timeout finished it; a later segment starts a new record."""


def verdict(conn: Connection, record: dict[str, Any]) -> str:
    """Return a sentence a person can act on, e.g. "server refused: ..."."""
    bad = _bad_checksums(conn)
    if bad and not record["orig_pkts"] and not record["resp_pkts"]:
        return (
            f"all {_count(bad, 'segment')} had bad checksums and were dropped: "
            "a capture on the sending host shows checksums the network card "
            "fills in later; read it without --validate-checksums"
        )
    outcome = _outcome(conn, record)
    details = _details(record)
    if bad:
        details.insert(0, f"{_count(bad, 'segment')} with bad checksums dropped")
    if record["end_reason"] == "evicted":
        details.insert(0, TABLE_FULL)
    if record["end_reason"] == "idle_timeout" and record["teardown"] != "idle_timeout":
        details.insert(0, IDLE_STOP)
    if details:
        return f"{outcome}; {', '.join(details)}"
    return outcome


def _outcome(conn: Connection, record: dict[str, Any]) -> str:
    handshake = record["handshake"]
    if handshake == "rejected":
        latency = format_seconds(record["reject_latency"])
        tries = conn.orig.syn_transmissions
        extra = f" ({tries} SYNs)" if tries > 1 else ""
        return f"server refused: SYN answered by RST after {latency}{extra}"
    if handshake == "no_reply":
        return _no_reply(conn, record)
    if handshake == "incomplete":
        if conn.synack_time is None and _responder_answered(record):
            return "SYN-ACK not captured; " + _ending(conn, record)
        if _only_responder_captured(record):
            size = format_bytes(record["resp_bytes"])
            return (
                f"only the server's side was captured ({size} sent): the "
                "client's packets are missing, perhaps routed another way"
            )
        return _incomplete(conn, record)
    if handshake == "complete" and not conn.orig.syn_times:
        # The SYN-ACK named the roles and the handshake completed; the SYN
        # itself is not in the capture.
        return "SYN not captured; " + _ending(conn, record)
    if handshake == "not_seen" and _only_resets(conn):
        return (
            "lone RST with no connection seen: backscatter from spoofed "
            "traffic, or a connection older than the capture"
        )
    return _prefix(conn, record) + _ending(conn, record)


def _no_reply(conn: Connection, record: dict[str, Any]) -> str:
    syn_times = conn.orig.syn_times
    history = record["history"]
    if "A" in history or "D" in history:
        # The client went on to acknowledge or send data: it got a SYN-ACK
        # that is not in the capture.
        size = format_bytes(record["orig_bytes"])
        return (
            f"only the client's side was captured ({size} sent): the server's "
            "packets are missing, perhaps routed another way"
        )
    tries = conn.orig.syn_transmissions
    if tries > 1:
        span = format_seconds(syn_times[-1] - syn_times[0])
        return f"no answer: {tries} SYNs over {span}"
    return "no answer to the SYN"


def _incomplete(conn: Connection, record: dict[str, Any]) -> str:
    if conn.synack_time is None:
        return (
            "handshake did not complete: the server answered the SYN without a SYN-ACK"
        )
    synacks = conn.resp.synack_times
    tries = conn.resp.synack_transmissions
    if tries > 1:
        span = format_seconds(synacks[-1] - synacks[0])
        return (
            f"handshake did not complete: {tries} SYN-ACKs over {span} "
            "were never acknowledged"
        )
    if record["teardown"] in ("reset_by_orig", "reset_by_resp"):
        side = "client" if record["teardown"] == "reset_by_orig" else "server"
        return f"reset by the {side} during the handshake"
    return "handshake did not complete: the SYN-ACK was never acknowledged"


def _responder_answered(record: dict[str, Any]) -> bool:
    """Return whether the responder sent an ACK or data after the SYN.

    With no SYN-ACK in the capture, that shows the SYN-ACK was sent and the
    capture missed it.
    """
    history = record["history"]
    return "a" in history or "d" in history


def _only_responder_captured(record: dict[str, Any]) -> bool:
    """Return whether only the responder's packets, beyond its SYN-ACK, are in
    the capture: the originator's went another way (asymmetric routing)."""
    history = record["history"]
    return not record["orig_pkts"] and ("a" in history or "d" in history)


def _prefix(conn: Connection, record: dict[str, Any]) -> str:
    handshake = record["handshake"]
    if handshake == "simultaneous_open":
        return "simultaneous open; "
    if handshake != "not_seen":
        return ""
    if not conn.roles_inferred:
        return "capture started mid-stream; "
    if conn.resp_p in LIKELY_SERVER_PORTS:
        return "capture started mid-stream, roles inferred from ports; "
    return "capture started mid-stream, roles guessed from the first packet; "


def _ending(conn: Connection, record: dict[str, Any]) -> str:
    teardown = record["teardown"]
    size = format_bytes(record["orig_bytes"] + record["resp_bytes"])
    if teardown == "fin":
        if record["simultaneous_close"]:
            return f"closed cleanly by both sides at once after {size}"
        return f"closed cleanly by the {_first_fin_side(conn)} after {size}"
    if teardown in ("reset_by_orig", "reset_by_resp"):
        return _reset(conn, record, size)
    if teardown == "half_closed":
        side = "client" if conn.orig.fin_time is not None else "server"
        other = "server" if side == "client" else "client"
        return f"half-closed: the {side} sent FIN, the {other} never closed ({size})"
    if teardown == "idle_timeout":
        return f"idle too long: tracking stopped after {size}, it may still be open"
    if record["end_reason"] == "evicted":
        return f"still open after {size}"
    return f"still open at the end of the capture after {size}"


def _reset(conn: Connection, record: dict[str, Any], size: str) -> str:
    by_orig = record["teardown"] == "reset_by_orig"
    side = "client" if by_orig else "server"
    rst_time = conn.orig.rst_time if by_orig else conn.resp.rst_time
    start = conn.handshake_ack_time or conn.start_time
    into = format_seconds((rst_time or start) - start)
    if record["orig_bytes"] + record["resp_bytes"]:
        return f"reset by the {side} {into} into the transfer ({size} exchanged)"
    return f"reset by the {side} {into} after the handshake, before any data"


def _bad_checksums(conn: Connection) -> int:
    """Return how many segments validation dropped for a bad checksum."""
    return sum(
        endpoint.marks.chk_count
        for endpoint in (conn.orig, conn.resp)
        if endpoint.marks is not None
    )


def _details(record: dict[str, Any]) -> list[str]:
    """Return short phrases for the trouble the connection ran into."""
    details = []
    if record["handshake"] in ("complete", "incomplete") and record["syn_backoffs"]:
        tries = record["syn_retransmissions"] + 1
        waited = format_seconds(sum(record["syn_backoffs"]))
        details.append(f"the SYN was sent {tries} times over {waited} before an answer")
    for side, name in (("orig", "client"), ("resp", "server")):
        retransmissions = record[f"{side}_retransmissions"]
        if retransmissions:
            details.append(f"{_count(retransmissions, 'retransmission')} by the {name}")
        out_of_order = record[f"{side}_out_of_order"]
        if out_of_order:
            details.append(
                f"{_count(out_of_order, 'segment')} from the {name} out of order "
                "(or quick retransmissions: the capture cannot tell)"
            )
        zero_windows = record[f"{side}_zero_windows"]
        if zero_windows:
            details.append(
                f"the {name}'s receive window was full "
                f"({_count(zero_windows, 'zero-window advertisement')})"
            )
    if record["missed_bytes"]:
        details.append(
            f"the capture missed {format_bytes(record['missed_bytes'])} "
            "that were acknowledged"
        )
    if record["fast_open"] == "not_accepted":
        details.append("data on the SYN (TCP Fast Open) was not accepted")
    elif record["fast_open"] == "accepted":
        details.append("data on the SYN (TCP Fast Open) was accepted")
    return details


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _only_resets(conn: Connection) -> bool:
    """Return whether every packet of the connection was a RST."""
    orig, resp = conn.orig, conn.resp
    return orig.rst_count + resp.rst_count == orig.pkts + resp.pkts > 0


def _first_fin_side(conn: Connection) -> str:
    orig_fin, resp_fin = conn.orig.fin_time, conn.resp.fin_time
    if orig_fin is not None and (resp_fin is None or orig_fin <= resp_fin):
        return "client"
    return "server"
