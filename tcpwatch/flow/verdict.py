"""One plain-language sentence per connection, built from the record's facts."""

from typing import Any

from tcpwatch.flow.connection import Connection
from tcpwatch.units import format_bytes, format_seconds


def verdict(conn: Connection, record: dict[str, Any]) -> str:
    """Return a sentence a person can act on, e.g. "server refused: ..."."""
    handshake = record["handshake"]
    teardown = record["teardown"]
    total = record["orig_bytes"] + record["resp_bytes"]
    if handshake == "rejected":
        latency = format_seconds(record["reject_latency"])
        tries = len(conn.orig.syn_times)
        extra = f" ({tries} SYNs)" if tries > 1 else ""
        return f"server refused: SYN answered by RST after {latency}{extra}"
    if handshake == "no_reply":
        syn_times = conn.orig.syn_times
        if len(syn_times) > 1:
            span = format_seconds(syn_times[-1] - syn_times[0])
            return f"no answer: {len(syn_times)} SYNs over {span}"
        return "no answer to the SYN"
    if handshake == "incomplete":
        if conn.synack_time is None:
            return (
                "handshake did not complete: "
                "the server answered the SYN without a SYN-ACK"
            )
        return "handshake did not complete: the SYN-ACK was never acknowledged"
    prefix = ""
    if handshake == "not_seen":
        prefix = (
            "capture started mid-stream, roles inferred from ports; "
            if conn.roles_inferred
            else "capture started mid-stream; "
        )
    elif handshake == "simultaneous_open":
        prefix = "simultaneous open; "
    size = format_bytes(total)
    if teardown == "fin":
        first = _first_fin_side(conn)
        return f"{prefix}closed cleanly by the {first} after {size}"
    if teardown in ("reset_by_orig", "reset_by_resp"):
        side = "client" if teardown == "reset_by_orig" else "server"
        rst_time = (
            conn.orig.rst_time if teardown == "reset_by_orig" else conn.resp.rst_time
        )
        start = conn.handshake_ack_time or conn.start_time
        into = format_seconds((rst_time or start) - start)
        stage = "into the transfer" if total else "after the handshake, before any data"
        if handshake == "incomplete":
            stage = "during the handshake"
        return f"{prefix}reset by the {side} {into} {stage} ({size} exchanged)"
    if teardown == "half_closed":
        side = "client" if conn.orig.fin_time is not None else "server"
        other = "server" if side == "client" else "client"
        return (
            f"{prefix}half-closed: the {side} sent FIN, "
            f"the {other} never closed ({size})"
        )
    if teardown == "idle_timeout":
        return f"{prefix}idle too long: tracking stopped after {size}"
    return f"{prefix}still open at the end of the capture after {size}"


def _first_fin_side(conn: Connection) -> str:
    orig_fin, resp_fin = conn.orig.fin_time, conn.resp.fin_time
    if orig_fin is not None and (resp_fin is None or orig_fin <= resp_fin):
        return "client"
    return "server"
