"""Zeek's connection vocabulary: ``conn_state`` codes and ``history`` letters.

The definitions follow Zeek's ``base/protocols/conn/main.zeek`` and its TCP
analyzer (Zeek 7/8). ``conn_state`` is computed from the two endpoints' final
states; ``history`` is built packet by packet by the tracker with the helpers
here. Upper-case letters are the originator's, lower-case the responder's:

    S  a SYN without ACK            H  a SYN-ACK
    A  a pure ACK                   D  a segment with payload
    F  a FIN                        R  a RST
    I  FIN and RST together         Q  SYN with FIN or RST
    C  a bad checksum               G  a content gap
    T  a retransmission             W  a zero window
    ^  the originator and responder were swapped

A, D, I and Q are recorded once per side. S, H, F and R repeat only when the
sequence number differs from the previous one of that kind. C, G, T and W are
recorded when their count reaches 1, 10, 100, ... (logarithmic scaling).
"""

from typing import Final

from tcpwatch.capture.segment import ACK, FIN, RST, SYN
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.endpoint import Endpoint
from tcpwatch.flow.states import INACTIVE_STATES, EndpointState

# Bits of Connection.hist_seen, one per "recorded once" letter kind; the
# responder's bits are these shifted left by 16, as in Zeek's Conn.h.
HIST_SYN: Final = 0x1
HIST_FIN: Final = 0x2
HIST_RST: Final = 0x4
HIST_FIN_RST: Final = 0x8
HIST_DATA: Final = 0x10
HIST_ACK: Final = 0x20
HIST_MULTI_FLAG: Final = 0x40
RESP_SHIFT: Final = 16

# Zeek's likely_server_ports: with no SYN to say who opened a connection, a
# connection whose first packet comes *from* one of these ports is flipped so
# that the port's side becomes the responder. Zeek fills the set from the
# ports its protocol analyzers register; this is the same idea with the ports
# of common services.
LIKELY_SERVER_PORTS = frozenset(
    {
        20,
        21,
        22,
        23,
        25,
        42,
        43,
        53,
        69,
        79,
        80,
        81,
        88,
        102,
        110,
        111,
        113,
        119,
        123,
        135,
        137,
        139,
        143,
        161,
        179,
        194,
        389,
        443,
        445,
        465,
        502,
        512,
        513,
        514,
        515,
        543,
        544,
        548,
        554,
        563,
        587,
        631,
        636,
        646,
        989,
        990,
        992,
        993,
        995,
        1080,
        1194,
        1433,
        1521,
        1723,
        1883,
        2049,
        2181,
        2375,
        2376,
        3128,
        3260,
        3306,
        3389,
        3690,
        4369,
        5060,
        5061,
        5222,
        5269,
        5432,
        5671,
        5672,
        5900,
        5984,
        6379,
        6443,
        6660,
        6661,
        6662,
        6663,
        6664,
        6665,
        6666,
        6667,
        6668,
        6669,
        6697,
        7000,
        7001,
        8000,
        8008,
        8080,
        8081,
        8086,
        8443,
        8883,
        8888,
        9000,
        9042,
        9092,
        9200,
        9300,
        9418,
        11211,
        27017,
    }
)


def flip_on_first_packet(sport: int, dport: int, flags_syn: bool) -> bool:
    """Return whether a connection first seen without a plain SYN should flip.

    The first packet is a SYN-ACK or has no SYN. Zeek's rule: flip when the
    source port is a likely server port and the destination is not; when both
    are, flip only if the packet is not a SYN-ACK and the source port is the
    lower one.
    """
    if sport not in LIKELY_SERVER_PORTS:
        return False
    if dport not in LIKELY_SERVER_PORTS:
        return True
    return not flags_syn and sport < dport


def conn_state(
    orig: EndpointState,
    resp: EndpointState,
    orig_size: int,
    resp_size: int,
    history: str,
) -> str:
    """Return Zeek's conn_state code for the final endpoint states.

    The conditions are tested in Zeek's order; the first that holds wins.
    """
    orig_inactive = orig in INACTIVE_STATES
    resp_inactive = resp in INACTIVE_STATES
    if resp == EndpointState.RESET:
        if orig in (EndpointState.SYN_SENT, EndpointState.SYN_ACK_SENT) or (
            orig == EndpointState.RESET and orig_size == 0 and resp_size == 0
        ):
            return "REJ"  # connection attempt rejected
        if orig_inactive:
            return "RSTRH"  # responder SYN-ACK then RST, no SYN from the originator
        return "RSTR"  # responder sent a RST
    if orig == EndpointState.RESET:
        if resp_inactive:
            if _is_syn_then_rst(history):
                return "RSTOS0"  # originator SYN then RST, no SYN-ACK
            return "OTH"
        return "RSTO"  # established, originator aborted
    if orig == EndpointState.CLOSED and resp == EndpointState.CLOSED:
        return "SF"  # both sides sent FIN
    if orig == EndpointState.CLOSED:
        return "SH" if resp_inactive else "S2"
    if resp == EndpointState.CLOSED:
        return "SHR" if orig_inactive else "S3"
    if orig == EndpointState.SYN_SENT and resp == EndpointState.INACTIVE:
        return "S0"  # attempt seen, no reply
    if orig == EndpointState.ESTABLISHED and resp == EndpointState.ESTABLISHED:
        return "S1"  # established, not terminated
    return "OTH"  # no SYN seen, only midstream traffic


def _is_syn_then_rst(history: str) -> bool:
    """Match Zeek's pattern ``^?S[^HAFGIQ]*R.*`` against the whole history."""
    text = history[1:] if history.startswith("^") else history
    if not text.startswith("S"):
        return False
    for letter in text[1:]:
        if letter == "R":
            return True
        if letter in "HAFGIQ":
            return False
    return False


# -- building the history, packet by packet ----------------------------------

MAX_REPEATED_LETTERS: Final = 64
"""History length up to which an S, H, F or R is repeated for a new sequence
number (Zeek's rule). Past it, a stream of SYNs or RSTs at ever new numbers
no longer grows the history, because only the once-per-side and the
logarithmic letters are still added, and those are bounded."""

_SCALED = {
    "C": ("chk_count", "chk_thresh"),
    "G": ("gap_count", "gap_thresh"),
    "T": ("rxmt_count", "rxmt_thresh"),
    "W": ("win0_count", "win0_thresh"),
}


def update_history(
    conn: Connection,
    endpoint: Endpoint,
    flags: int,
    rel_seq: int,
    length: int,
) -> None:
    """Add a segment's S, H, A, D, F, R, I or Q letter to the history."""
    is_orig = endpoint.is_orig
    shift = 0 if is_orig else RESP_SHIFT
    once = _history_once
    control = flags & (SYN | FIN | RST)
    if control and control & (control - 1):
        # More than one of SYN, FIN and RST.
        if flags & FIN and flags & RST:
            once(conn, HIST_FIN_RST << shift, "I", is_orig)
        else:
            once(conn, HIST_MULTI_FLAG << shift, "Q", is_orig)
    elif control == SYN:
        code = "H" if flags & ACK else "S"
        if once(conn, HIST_SYN << shift, code, is_orig):
            if rel_seq != endpoint.hist_last_syn:
                _repeat_history(conn, code, is_orig)
        endpoint.hist_last_syn = rel_seq
    elif control == FIN:
        # A FIN's number is the one after any data it carries.
        if once(conn, HIST_FIN << shift, "F", is_orig):
            if rel_seq + length != endpoint.hist_last_fin:
                _repeat_history(conn, "F", is_orig)
        endpoint.hist_last_fin = rel_seq + length
    elif control == RST:
        if once(conn, HIST_RST << shift, "R", is_orig):
            if rel_seq != endpoint.hist_last_rst:
                _repeat_history(conn, "R", is_orig)
        endpoint.hist_last_rst = rel_seq
    elif length:
        once(conn, HIST_DATA << shift, "D", is_orig)
    elif flags & ACK:
        once(conn, HIST_ACK << shift, "A", is_orig)


def _history_once(conn: Connection, mask: int, code: str, is_orig: bool) -> bool:
    """Record ``code`` the first time; return True if it was seen before."""
    if conn.hist_seen & mask:
        return True
    conn.hist_seen |= mask
    conn.history += code if is_orig else code.lower()
    return False


def scaled_history(
    conn: Connection, endpoint: Endpoint, code: str, index: int | None = None
) -> None:
    """Record ``code`` when its count reaches 1, 10, 100, ... (Zeek's scaling).

    The letter goes at ``index`` in the history when given, else at the end.
    """
    counts = endpoint.mark_counts()
    count_attr, thresh_attr = _SCALED[code]
    count = getattr(counts, count_attr) + 1
    setattr(counts, count_attr, count)
    threshold = getattr(counts, thresh_attr)
    if count == threshold:
        letter = code if endpoint.is_orig else code.lower()
        history = conn.history
        if index is None:
            conn.history = history + letter
        else:
            conn.history = history[:index] + letter + history[index:]
            other = conn.resp if endpoint is conn.orig else conn.orig
            if other.pending_ack and other.pending_index >= index:
                other.pending_index += 1
        threshold *= 10
        if threshold > 0xFFFFFFFF:
            setattr(counts, count_attr, 0)
            threshold = 1
        setattr(counts, thresh_attr, threshold)


def _repeat_history(conn: Connection, code: str, is_orig: bool) -> None:
    """Repeat an S, H, F or R letter, up to ``MAX_REPEATED_LETTERS`` letters.

    Departure from Zeek, which repeats them without limit: see the constant.
    """
    if len(conn.history) < MAX_REPEATED_LETTERS:
        conn.history += code if is_orig else code.lower()
