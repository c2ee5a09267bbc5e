"""Named states and classes used by the flow tracker and its records.

``EndpointState`` is the observer's view of one endpoint. It follows the
endpoint model of Zeek's TCP analyzer (``TCP_Endpoint.h``), because Zeek's
``conn_state`` codes are defined on it; the RFC 9293 state of each side is
derived from it and from the FIN/ACK bookkeeping in ``rfc_state``.

``Handshake`` and ``Teardown`` are tcpwatch's own per-connection classes.
Their values are the strings written to every output format.
"""

import enum


class EndpointState(enum.IntEnum):
    """What one endpoint has been seen to do so far."""

    INACTIVE = 0
    """Nothing seen from this endpoint yet."""
    SYN_SENT = 1
    """Sent a SYN (an initial one, without ACK)."""
    SYN_ACK_SENT = 2
    """Sent a SYN-ACK, or a SYN-ACK that opened the connection from this side."""
    PARTIAL = 3
    """Sent data or ACKs with no SYN seen: the capture began mid-connection."""
    ESTABLISHED = 4
    """Took part in a handshake that both sides have answered."""
    CLOSED = 5
    """Sent a FIN."""
    RESET = 6
    """Sent a RST."""


INACTIVE_STATES = (EndpointState.INACTIVE, EndpointState.PARTIAL)
"""Zeek's "inactive" for conn_state: never seen, or seen only mid-stream."""


class Handshake(enum.StrEnum):
    """How the connection opened, as far as the capture shows."""

    COMPLETE = "complete"
    """SYN-ACK and the ACK of it were seen (the SYN itself may predate the capture)."""
    SIMULTANEOUS_OPEN = "simultaneous_open"
    """Both sides sent a SYN without ACK (RFC 9293 section 3.5, figure 8)."""
    NO_REPLY = "no_reply"
    """The originator's SYNs got no answer at all."""
    REJECTED = "rejected"
    """The responder answered the SYN with a RST."""
    INCOMPLETE = "incomplete"
    """A SYN-ACK was seen but the originator never acknowledged it."""
    NOT_SEEN = "not_seen"
    """Neither SYN nor SYN-ACK was captured: the capture began mid-stream."""


class Teardown(enum.StrEnum):
    """How the connection ended, as far as the capture shows."""

    FIN = "fin"
    """Both sides sent FIN. A RST after that exchange does not change this."""
    HALF_CLOSED = "half_closed"
    """One side sent FIN, the other neither FIN nor RST."""
    RESET_BY_ORIG = "reset_by_orig"
    """The originator sent the first RST."""
    RESET_BY_RESP = "reset_by_resp"
    """The responder sent the first RST."""
    OPEN = "open"
    """Still open when the capture ended."""
    IDLE_TIMEOUT = "idle_timeout"
    """Silent for longer than the idle timeout, so tcpwatch stopped tracking it."""


class Phase(enum.StrEnum):
    """Where a connection is now; the live views colour rows by this."""

    HANDSHAKE = "handshake"
    TRANSFER = "transfer"
    TEARDOWN = "teardown"
    CLOSED = "closed"
