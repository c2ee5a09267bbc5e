"""The synthesised version of every demo scenario, one function each.

Each function returns a ``Synthesiser`` whose packets tell one story. The
timings are those of a client 10 ms from its server (20 ms round trip) on a
100 Mbit/s link, with Linux's usual behaviour: delayed ACKs of 40 ms, an ACK
for every second full segment, SYN retries after 1, 2 and 4 s, and a
retransmission timeout of at least 200 ms.
"""

from tcpwatch.demo.synth import MSS, Synthesiser, request, response

SEGMENT_TIME = 0.00012
"""Seconds one full segment takes on a 100 Mbit/s link (1514 bytes, rounded)."""
DELAYED_ACK = 0.040
MIN_RTO = 0.200


def clean() -> Synthesiser:
    """Request, response, and a FIN from each side."""
    talk = Synthesiser(1)
    talk.handshake()
    talk.wait(0.0002)
    talk.client("PA", request())
    talk.wait(talk.rtt + 0.002)
    talk.server("PA", response(1100))
    talk.wait(0.00005)
    talk.client("A")
    talk.wait(0.001)
    talk.close_by_client()
    return talk


def refused() -> Synthesiser:
    """A SYN to a port nothing listens on, answered with RST."""
    talk = Synthesiser(2, server_port=8081)
    talk.client("S")
    talk.wait(talk.rtt)
    talk.server("RA", seq=0)
    return talk


def abort() -> Synthesiser:
    """The server reads the request and aborts with RST instead of responding."""
    talk = Synthesiser(3)
    talk.handshake()
    talk.wait(0.0002)
    talk.client("PA", request("/crash"))
    talk.wait(talk.rtt / 2 + DELAYED_ACK)
    talk.server("A")
    talk.wait(0.150)
    talk.server("RA")
    return talk


def half_close() -> Synthesiser:
    """The client sends its request and FIN; the server still responds."""
    talk = Synthesiser(4)
    talk.handshake()
    talk.wait(0.0002)
    talk.client("PA", b"SORT\r\nbanana\r\napple\r\ncherry\r\n")
    talk.client("FA")
    talk.wait(talk.rtt)
    talk.server("A")
    talk.wait(0.003)
    talk.server("PA", b"apple\r\nbanana\r\ncherry\r\n")
    talk.wait(0.00005)
    talk.client("A")
    talk.wait(0.001)
    talk.server("FA")
    talk.wait(0.00005)
    talk.client("A")
    return talk


def slow_server() -> Synthesiser:
    """The server acknowledges the request at once but responds 1.2 s later."""
    talk = Synthesiser(5)
    talk.handshake()
    talk.wait(0.0002)
    talk.client("PA", request("/report"))
    talk.wait(talk.rtt + DELAYED_ACK)
    talk.server("A")
    talk.wait(1.2)
    talk.server("PA", response(900))
    talk.wait(0.00005)
    talk.client("A")
    talk.wait(0.001)
    talk.close_by_client()
    return talk


def bulk(segments: int = 300) -> Synthesiser:
    """A download in slow-start bursts that double every round trip."""
    talk = Synthesiser(6)
    talk.handshake()
    talk.wait(0.0002)
    talk.client("PA", request("/big.iso"))
    talk.wait(talk.rtt + 0.001)
    sent = 0
    burst = 10
    while sent < segments:
        for _ in range(min(burst, segments - sent)):
            talk.server("A" if sent + 1 < segments else "PA", b"x" * MSS)
            sent += 1
            if sent % 2 == 0:
                talk.wait(0.00003)
                talk.client("A")
            talk.wait(SEGMENT_TIME)
        burst *= 2
        talk.wait(talk.rtt)
    talk.close_by_client()
    return talk


def loss() -> Synthesiser:
    """A download segment resent after duplicate ACKs, a request after a timeout."""
    talk = Synthesiser(7)
    talk.handshake()
    talk.wait(0.0002)
    talk.client("PA", request("/photo.jpg"))
    talk.wait(talk.rtt + 0.001)
    _burst(talk, 10)
    talk.wait(talk.rtt)
    lost_seq = 0
    for index in range(20):
        lost = index == 5
        seq = talk.server("A", b"x" * MSS, lost=lost)
        if lost:
            lost_seq = seq
        else:
            talk.wait(0.00003)
            talk.client("A")  # past the hole: a duplicate ACK with SACK
        talk.wait(SEGMENT_TIME)
    # The third duplicate ACK reached the server; its resend arrives a round
    # trip after that ACK left.
    talk.wait(talk.rtt - 14 * SEGMENT_TIME)
    talk.server("A", b"x" * MSS, seq=lost_seq)
    talk.wait(0.00003)
    talk.client("A")
    # The client's next request is lost after the capture point: no ACK
    # comes, so the client sends it again when its retransmission timer fires.
    talk.wait(0.002)
    sent = talk.client("PA", request("/photo-2.jpg"), accepted=False)
    talk.wait(MIN_RTO + talk.rtt)
    talk.client("PA", request("/photo-2.jpg"), seq=sent)
    talk.wait(talk.rtt + DELAYED_ACK)
    talk.server("A")
    talk.wait(0.001)
    talk.close_by_client()
    return talk


def zero_window() -> Synthesiser:
    """An upload to a server that stops reading: its window closes and reopens."""
    talk = Synthesiser(8, server_port=2121)
    talk.handshake()
    talk.wait(0.0002)
    buffer = 16 * MSS
    free = buffer
    for index in range(16):
        talk.client("A", b"u" * MSS)
        free -= MSS
        if index % 2:
            talk.wait(talk.rtt / 2)
            # Rounded up to the scale (128 bytes), as Linux does, so that the
            # window offered is never less than the client then sends.
            talk.server("A", window=(free + 127) >> 7)
            talk.wait(SEGMENT_TIME)
    probe = talk.next_seq[True]
    for backoff in (0.2, 0.4):
        talk.wait(backoff)
        talk.client("A", b"u", seq=probe, accepted=False)
        talk.wait(talk.rtt)
        talk.server("A", window=0)
    talk.wait(0.3)
    talk.server("A", window=buffer >> 7)
    talk.wait(0.0001)
    for _ in range(4):
        talk.client("PA", b"u" * MSS, seq=probe)
        probe = talk.next_seq[True]
        talk.wait(SEGMENT_TIME)
    talk.wait(talk.rtt)
    talk.server("A")
    talk.wait(0.001)
    talk.close_by_client()
    return talk


def simultaneous_open() -> Synthesiser:
    """Two peers send SYNs to each other at the same moment."""
    talk = Synthesiser(9, client_port=7000, server_port=7001)
    talk.client("S")
    talk.wait(talk.rtt / 2 - 0.001)
    talk.server("S")
    talk.wait(0.00005)
    talk.client("SA", seq=talk.isn[True])
    talk.wait(talk.rtt / 2 + 0.001)
    talk.server("SA", seq=talk.isn[False])
    talk.wait(0.001)
    talk.client("PA", b"HELLO 7000\n")
    talk.wait(talk.rtt)
    talk.server("PA", b"HELLO 7001\n")
    talk.wait(0.00005)
    talk.client("A")
    talk.wait(0.001)
    talk.close_by_client()
    return talk


def no_reply() -> Synthesiser:
    """SYNs that a firewall drops: retries after 1, 2 and 4 seconds."""
    talk = Synthesiser(10, server_port=5432)
    isn = talk.client("S")
    for backoff in (1.0, 2.0, 4.0):
        talk.wait(backoff)
        talk.client("S", seq=isn)
    return talk


def _burst(talk: Synthesiser, count: int) -> None:
    for index in range(count):
        talk.server("A", b"x" * MSS)
        if index % 2:
            talk.wait(0.00003)
            talk.client("A")
        talk.wait(SEGMENT_TIME)
