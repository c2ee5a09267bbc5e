"""English messages, the reference catalogue: other languages translate these keys.

Mark words (``mark.*``) are Wireshark's analysis names, so users can search
for them. ``{side}`` and ``{peer}`` are filled with ``role.client`` or
``role.server``.
"""

NAME = "English"


def plural(count: int) -> str:
    return "one" if count == 1 else "other"


MESSAGES: dict[str, str] = {
    # -- connection table ----------------------------------------------------
    "table.originator": "originator",
    "table.responder": "responder",
    "table.handshake": "handshake",
    "table.teardown": "teardown",
    "table.duration": "duration",
    "table.orig_bytes": "orig bytes",
    "table.resp_bytes": "resp bytes",
    "table.hs_time": "hs time",
    "table.state": "state",
    "table.verdict": "verdict",
    "table.reject_time": "RST {time}",
    "table.empty": "no TCP connections found",
    "handshake.complete": "complete",
    "handshake.simultaneous_open": "simultaneous_open",
    "handshake.no_reply": "no_reply",
    "handshake.rejected": "rejected",
    "handshake.incomplete": "incomplete",
    "handshake.not_seen": "not_seen",
    "teardown.fin": "fin",
    "teardown.half_closed": "half_closed",
    "teardown.reset_by_orig": "reset_by_orig",
    "teardown.reset_by_resp": "reset_by_resp",
    "teardown.open": "open",
    "teardown.idle_timeout": "idle_timeout",
    # -- labels ------------------------------------------------------------
    "role.originator": "originator",
    "role.responder": "responder",
    "role.client": "client",
    "role.server": "server",
    "title": "connection {number} ({uid})",
    "column.time": "time",
    "column.delta": "+prev",
    "phase.handshake": "handshake",
    "phase.transfer": "transfer",
    "phase.teardown": "teardown",
    "phase.closed": "closed",
    "bracket.rtt": "RTT {time}",
    "bracket.reject": "RST after {time}",
    "flags.none": "no flags",
    "empty": "(no segments kept)",
    "list.separator": ", ",
    "fold.summary": "… {segments} over {span}: {details} …",
    "count.segments.one": "{n} segment",
    "count.segments.other": "{n} segments",
    "footer.verdict": "verdict: {verdict}",
    "footer.state": "conn_state {state}, history {history}",
    "footer.dropped.one": "… {n} later segment not kept (per-connection limit)",
    "footer.dropped.other": "… {n} later segments not kept (per-connection limit)",
    "footer.midstream": (
        "The capture began mid-connection: sequence numbers count from the first "
        "segment seen, and windows are the unscaled header field."
    ),
    "footer.roles_inferred": (
        "No SYN was captured, so which side is the client is a guess from the "
        "port numbers."
    ),
    # -- analysis marks (Wireshark's names) --------------------------------
    "mark.retransmission": "retransmission",
    "mark.fast_retransmission": "fast retransmission",
    "mark.spurious_retransmission": "spurious retransmission",
    "mark.out_of_order": "out-of-order",
    "mark.previous_segment_not_captured": "previous segment not captured",
    "mark.duplicate_ack": "duplicate ACK",
    "mark.zero_window": "zero window",
    "mark.window_full": "window full",
    "mark.zero_window_probe": "zero-window probe",
    "mark.keep_alive": "keep-alive",
    "mark.window_update": "window update",
    "mark.bad_checksum": "bad checksum",
    "mark.syn_inside_the_connection": "SYN inside the connection",
    "mark.port_numbers_reused": "port numbers reused",
    "mark.duplicate_capture": "duplicate capture",
    "mark.acked_unseen_segment": "ACKed unseen segment",
    "count.mark.retransmission.one": "{n} retransmission",
    "count.mark.retransmission.other": "{n} retransmissions",
    "count.mark.fast_retransmission.one": "{n} fast retransmission",
    "count.mark.fast_retransmission.other": "{n} fast retransmissions",
    "count.mark.spurious_retransmission.one": "{n} spurious retransmission",
    "count.mark.spurious_retransmission.other": "{n} spurious retransmissions",
    "count.mark.out_of_order.one": "{n} out-of-order",
    "count.mark.out_of_order.other": "{n} out-of-order",
    "count.mark.previous_segment_not_captured.one": "{n} gap",
    "count.mark.previous_segment_not_captured.other": "{n} gaps",
    "count.mark.duplicate_ack.one": "{n} duplicate ACK",
    "count.mark.duplicate_ack.other": "{n} duplicate ACKs",
    "count.mark.zero_window.one": "{n} zero window",
    "count.mark.zero_window.other": "{n} zero windows",
    "count.mark.window_full.one": "{n} window full",
    "count.mark.window_full.other": "{n} window full",
    "count.mark.zero_window_probe.one": "{n} zero-window probe",
    "count.mark.zero_window_probe.other": "{n} zero-window probes",
    "count.mark.keep_alive.one": "{n} keep-alive",
    "count.mark.keep_alive.other": "{n} keep-alives",
    "count.mark.window_update.one": "{n} window update",
    "count.mark.window_update.other": "{n} window updates",
    "count.mark.bad_checksum.one": "{n} bad checksum",
    "count.mark.bad_checksum.other": "{n} bad checksums",
    "count.mark.syn_inside_the_connection.one": "{n} stray SYN",
    "count.mark.syn_inside_the_connection.other": "{n} stray SYNs",
    "count.mark.port_numbers_reused.one": "{n} port reuse",
    "count.mark.port_numbers_reused.other": "{n} port reuses",
    "count.mark.duplicate_capture.one": "{n} duplicate capture",
    "count.mark.duplicate_capture.other": "{n} duplicate captures",
    "count.mark.acked_unseen_segment.one": "{n} ACK of unseen data",
    "count.mark.acked_unseen_segment.other": "{n} ACKs of unseen data",
    # -- SYN options -------------------------------------------------------
    "option.mss": "MSS {mss} (the largest segment it accepts)",
    "option.wscale": "window scale {shift} (×{factor})",
    "option.sack": "SACK (selective ACKs)",
    "option.timestamps": "timestamps",
    "option.fast_open": "a TCP Fast Open cookie",
    # -- phase introductions -----------------------------------------------
    "explain.phase.handshake": (
        "Three-way handshake: each side picks an initial sequence number (ISN), "
        "the other acknowledges it, and the SYNs carry each side's options."
    ),
    "explain.phase.transfer": (
        "Data transfer: every byte has a sequence number, ACKs say which bytes "
        "have arrived, and the window says how many more may be sent."
    ),
    "explain.phase.teardown": (
        "Teardown: each direction closes on its own with a FIN that the other "
        "side acknowledges. A RST ends both at once."
    ),
    # -- one note per segment ----------------------------------------------
    "explain.syn": (
        "The {side} asks to open a connection. Its ISN is {isn}; the numbers "
        "shown count from it, so the SYN is seq 0. It offers {options}."
    ),
    "explain.syn_no_options": (
        "The {side} asks to open a connection. Its ISN is {isn}; the numbers "
        "shown count from it. It offers no options, so the defaults apply "
        "(MSS 536 bytes, no window scaling, no SACK)."
    ),
    "explain.syn_again": (
        "The {side} sends its SYN again with the same ISN: no SYN-ACK came back "
        "in time, so it assumes the SYN or the answer was lost."
    ),
    "explain.syn_simultaneous": (
        "The {side} sends a SYN of its own instead of a SYN-ACK: both sides "
        "opened at the same time (simultaneous open). Its ISN is {isn}."
    ),
    "explain.synack": (
        "The {side} accepts. Its own ISN is {isn}. ACK 1 (raw {ack}) is the "
        "{peer}'s ISN + 1, because a SYN takes up one sequence number. "
        "It offers {options}."
    ),
    "explain.synack_no_options": (
        "The {side} accepts. Its own ISN is {isn}. ACK 1 (raw {ack}) is the "
        "{peer}'s ISN + 1, because a SYN takes up one sequence number. "
        "It offers no options."
    ),
    "explain.synack_again": (
        "The {side} sends its SYN-ACK again: the {peer}'s ACK did not arrive in time."
    ),
    "explain.handshake_ack": (
        "The {side} acknowledges the SYN-ACK: ACK 1 is the {peer}'s ISN + 1. "
        "The handshake is complete and data can flow both ways."
    ),
    "explain.data": (
        "The {side} sends {length} bytes: bytes {first} to {last} of its stream."
    ),
    "explain.payload": 'The data begins "{preview}".',
    "explain.ack_data": "The {side} acknowledges all bytes up to {upto}.",
    "explain.ack_fin": (
        "The {side} acknowledges the {peer}'s FIN with ACK {ack}: the FIN takes "
        "up one sequence number, after the last byte, {upto}."
    ),
    "explain.fin_first": (
        "The {side} has no more data to send (FIN), so the {side}-to-{peer} "
        "direction closes. The {peer} may still send, and the {side} still "
        "receives."
    ),
    "explain.fin_second": (
        "The {side} closes its direction too. Once this FIN is acknowledged, "
        "both directions are closed."
    ),
    "explain.rst_refused": (
        "The {side} rejects the connection with a RST: nothing accepts "
        "connections on port {port}, or a firewall answered for it."
    ),
    "explain.rst_abort": (
        "The {side} aborts the connection with a RST: both directions end at "
        "once, data still in flight is discarded, and no one acknowledges a RST."
    ),
    "explain.rst_late": (
        "A RST after both FINs: the connection was already closed, so this only "
        "answers a late segment."
    ),
    "explain.retransmission": (
        "Retransmission: the {side} sends bytes {first} to {last} again, first "
        "sent at {when}. No ACK for them came in time, so it assumes they or "
        "their ACK were lost."
    ),
    "explain.retransmission_unseen": (
        "Retransmission: the {side} sends bytes {first} to {last} again. No ACK "
        "for them came in time, so it assumes they or their ACK were lost."
    ),
    "explain.fast_retransmission": (
        "Fast retransmission: duplicate ACKs told the {side} that bytes from "
        "{first} were missing, so it resends them without waiting for its timer."
    ),
    "explain.spurious_retransmission": (
        "Spurious retransmission: the {peer} had already acknowledged these "
        "bytes, so this copy was not needed; the timer fired before the ACK "
        "arrived."
    ),
    "explain.out_of_order": (
        "Out-of-order: these bytes fill a hole below data already seen. They "
        "came late, reordered on the way, rather than being resent."
    ),
    "explain.previous_segment_not_captured": (
        "Previous segment not captured: the sequence numbers jump ahead, so "
        "bytes before {first} were sent but are missing from the capture."
    ),
    "explain.duplicate_ack": (
        "Duplicate ACK: the {side} repeats ACK {ack}. More data arrived, but "
        "byte {ack} is still missing, so it asks for it again."
    ),
    "explain.zero_window": (
        "Zero window: the {side}'s receive buffer is full. The {peer} must stop "
        "sending until the window opens again."
    ),
    "explain.window_full": (
        "Window full: this segment uses up the window the {peer} advertised, so "
        "the {side} must wait for an ACK before sending more."
    ),
    "explain.zero_window_probe": (
        "Zero-window probe: the {side} sends one byte to find out whether the "
        "{peer}'s window has opened."
    ),
    "explain.keep_alive": (
        "Keep-alive: a probe one byte below the next sequence number. It checks "
        "that the {peer} is still there, which answers with an ACK."
    ),
    "explain.window_update": (
        "Window update: the ACK number stays the same but the window changes to "
        "{window} bytes, telling the {peer} how much it may send."
    ),
    "explain.bad_checksum": (
        "Bad checksum: the segment was damaged, so the receiver discards it."
    ),
    "explain.syn_inside_the_connection": (
        "A SYN with a new ISN inside a connection that has carried data. It does "
        "not restart the connection."
    ),
    "explain.port_numbers_reused": (
        "Port numbers reused: a new SYN on the same addresses and ports starts "
        "a new connection."
    ),
    "explain.duplicate_capture": (
        "Duplicate capture: the same packet was captured twice, for example on "
        "two interfaces. It was sent once."
    ),
    "explain.acked_unseen_segment": (
        "ACKed unseen segment: this ACK covers data the capture never saw. The "
        "{peer}'s segment reached the {side}, but the capture missed it."
    ),
    # -- verdicts, built from the record's facts ---------------------------
    "verdict.rejected": "server refused: SYN answered by RST after {latency}",
    "verdict.rejected_tries": (
        "server refused: SYN answered by RST after {latency} ({tries} SYNs)"
    ),
    "verdict.no_reply": "no answer to the SYN",
    "verdict.no_reply_tries": "no answer: {tries} SYNs over {span}",
    "verdict.incomplete_no_synack": (
        "handshake did not complete: the server answered the SYN without a SYN-ACK"
    ),
    "verdict.incomplete_unacked": (
        "handshake did not complete: the SYN-ACK was never acknowledged"
    ),
    "verdict.prefix.midstream": "capture started mid-stream; {sentence}",
    "verdict.prefix.midstream_inferred": (
        "capture started mid-stream, roles inferred from ports; {sentence}"
    ),
    "verdict.prefix.simultaneous": "simultaneous open; {sentence}",
    "verdict.prefix.synack_not_captured": "SYN-ACK not captured; {sentence}",
    "verdict.only_client_side": (
        "only the client's side was captured ({size} sent): the server's "
        "packets are missing, perhaps routed another way"
    ),
    "verdict.only_server_side": (
        "only the server's side was captured ({size} sent): the client's "
        "packets are missing, perhaps routed another way"
    ),
    "verdict.fin": "closed cleanly by the {side} after {size}",
    "verdict.reset.transfer": (
        "reset by the {side} {into} into the transfer ({size} exchanged)"
    ),
    "verdict.reset.before_data": (
        "reset by the {side} {into} after the handshake, before any data "
        "({size} exchanged)"
    ),
    "verdict.reset.handshake": (
        "reset by the {side} {into} during the handshake ({size} exchanged)"
    ),
    "verdict.half_closed": (
        "half-closed: the {side} sent FIN, the {peer} never closed ({size})"
    ),
    "verdict.idle_timeout": "idle too long: tracking stopped after {size}",
    "verdict.open": "still open at the end of the capture after {size}",
    "verdict.idle_stopped": (
        "{sentence}; then idle longer than --idle-timeout: tracking stopped"
    ),
    "verdict.prefix.syn_not_captured": "SYN not captured; {sentence}",
    "verdict.open_evicted": "still open after {size}",
    "verdict.evicted": (
        "{sentence}; tracking stopped early: the connection table was full "
        "(--max-connections)"
    ),
    # -- demo and replay ---------------------------------------------------
    "demo.live": (
        "Real packets: a TCP server and client on this machine's loopback "
        "interface, captured live."
    ),
    "demo.synthesised": (
        "These packets are synthesised with scapy, not captured from a real "
        "network: {reason}"
    ),
    "demo.reason.no_root": "capturing on loopback needs root.",
    "demo.reason.stack": "the local TCP stack does not produce this on demand.",
    "demo.reason.requested": "synthesis was requested with --synthesise.",
    "demo.scenario": "Scenario: {title}",
    "demo.list.live": "real loopback traffic when run as root",
    "demo.list.synthesised": "always synthesised",
    "demo.dropped.one": (
        "The kernel dropped {n} packet of this capture, so the timeline has a gap."
    ),
    "demo.dropped.other": (
        "The kernel dropped {n} packets of this capture, so the timeline has gaps."
    ),
    "demo.saved": "The capture was saved to {path}.",
    # -- demo scenarios ----------------------------------------------------
    "scenario.clean.title": "Clean exchange",
    "scenario.clean.about": (
        "A client connects, sends a request, gets a response, and both "
        "sides close with FIN: the three-way handshake, data with its "
        "ACKs, and the four-segment teardown."
    ),
    "scenario.refused.title": "Refused port",
    "scenario.refused.about": (
        "A client connects to a port where nothing listens. The host "
        "answers the SYN with RST at once: the connection is rejected, "
        "not lost."
    ),
    "scenario.abort.title": "Abort with RST",
    "scenario.abort.about": (
        "The server reads the request and closes its socket with SO_LINGER "
        "0, so the kernel sends RST instead of FIN and both directions "
        "end at once."
    ),
    "scenario.half_close.title": "Half-close",
    "scenario.half_close.about": (
        "The client sends its data and then FIN with shutdown(); the "
        "server still sends its answer on the open direction before it "
        "closes too."
    ),
    "scenario.slow_server.title": "Slow server",
    "scenario.slow_server.about": (
        "The server acknowledges the request at once but answers much "
        "later: the handshake is fast, the wait is in the application."
    ),
    "scenario.bulk.title": "Bulk transfer",
    "scenario.bulk.about": (
        "The server sends a large response: many data segments, each "
        "acknowledged, folded into a counted summary line."
    ),
    "scenario.loss.title": "Loss and retransmission",
    "scenario.loss.about": (
        "A segment of a download is lost, the client sends duplicate "
        "ACKs, and the server resends it (fast retransmission); then "
        "a lost request is resent when the client's timer fires."
    ),
    "scenario.zero_window.title": "Zero window",
    "scenario.zero_window.about": (
        "The server stops reading an upload: its window shrinks to zero, "
        "the client sends zero-window probes, and a window update lets "
        "the upload finish."
    ),
    "scenario.simultaneous_open.title": "Simultaneous open",
    "scenario.simultaneous_open.about": (
        "Two peers send SYNs to each other at the same moment; each answers "
        "the other's SYN and one connection results."
    ),
    "scenario.no_reply.title": "No reply",
    "scenario.no_reply.about": (
        "A firewall drops the SYNs silently: the client retries after "
        "1, 2 and 4 seconds and never gets an answer."
    ),
}
