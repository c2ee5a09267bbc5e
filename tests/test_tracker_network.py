"""Real kernel TCP traffic through network namespaces this test creates.

A router namespace forwards between a client and a server namespace.
``tcpdump -i any`` inside the router records every packet twice, once
arriving on one interface and once leaving on the other: tcpwatch must call
the second copy a duplicate capture, not a retransmission or a duplicate ACK.
With nftables dropping a share of the forwarded packets, the server's capture
shows real loss and recovery, and tcpwatch's marks must match tshark's.
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import read_captures

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("tcpdump") is None or not shutil.which("ip"),
        reason="needs root, tcpdump and iproute2 to build namespaces and capture",
    ),
]

CLIENT_ADDRESS = "10.231.1.2"
SERVER_ADDRESS = "10.231.2.2"
PORT = 5001
SENT = 200_000

SERVER = f"""
import socket
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("{SERVER_ADDRESS}", {PORT}))
listener.listen(1)
print("ready", flush=True)
conn, _ = listener.accept()
while conn.recv(65536):
    pass
conn.sendall(b"done")
conn.close()
"""

CLIENT = f"""
import socket
conn = socket.create_connection(("{SERVER_ADDRESS}", {PORT}), timeout=30)
# Small writes without Nagle's delay give many segments to lose.
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for _ in range({SENT} // 1000):
    conn.sendall(b"x" * 1000)
conn.shutdown(socket.SHUT_WR)
assert conn.recv(16) == b"done"
conn.close()
"""

# tshark's tcp.analysis fields for each tcpwatch mark that has one.
TSHARK_FLAGS = {
    analysis.RETRANSMISSION: {"retransmission"},
    analysis.FAST_RETRANSMISSION: {"retransmission", "fast_retransmission"},
    analysis.SPURIOUS_RETRANSMISSION: {"retransmission", "spurious_retransmission"},
    analysis.OUT_OF_ORDER: {"out_of_order"},
    analysis.PREVIOUS_SEGMENT_NOT_CAPTURED: {"lost_segment"},
    analysis.DUP_ACK: {"duplicate_ack"},
    analysis.ZERO_WINDOW: {"zero_window"},
    analysis.WINDOW_FULL: {"window_full"},
    analysis.ZERO_WINDOW_PROBE: {"zero_window_probe"},
    analysis.KEEP_ALIVE: {"keep_alive"},
    analysis.WINDOW_UPDATE: {"window_update"},
    analysis.ACKED_UNSEEN: {"ack_lost_segment"},
}
TSHARK_FIELDS = sorted({flag for flags in TSHARK_FLAGS.values() for flag in flags})


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[dict[str, str]]:
    """Create client, router and server namespaces; remove them afterwards."""
    tag = f"tw{os.getpid() % 100000}"
    names = {role: f"{tag}{role[0]}" for role in ("client", "router", "server")}
    client, router, server = names["client"], names["router"], names["server"]
    for name in names.values():
        ip("netns", "add", name)
    try:
        for name, device in ((client, "c"), (server, "s")):
            veth = ["type", "veth", "peer", "name", f"{tag}r{device}"]
            ip("link", "add", f"{tag}{device}", "netns", name, *veth, "netns", router)
        ip("-n", client, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", f"{tag}c")
        ip("-n", router, "addr", "add", "10.231.1.1/24", "dev", f"{tag}rc")
        ip("-n", router, "addr", "add", "10.231.2.1/24", "dev", f"{tag}rs")
        ip("-n", server, "addr", "add", f"{SERVER_ADDRESS}/24", "dev", f"{tag}s")
        for name, device in ((client, "c"), (router, "rc"), (router, "rs")):
            ip("-n", name, "link", "set", f"{tag}{device}", "up")
        ip("-n", server, "link", "set", f"{tag}s", "up")
        for name in names.values():
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", client, "route", "add", "default", "via", "10.231.1.1")
        ip("-n", server, "route", "add", "default", "via", "10.231.2.1")
        subprocess.run(
            ["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            check=True,
        )
        yield names
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_namespace(name: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", name, *command]


def capture_transfer(
    names: dict[str, str], path: Path, where: str = "router", interface: str = "any"
) -> None:
    """Capture one client-to-server transfer with tcpdump in namespace ``where``."""
    # Headers only and a large buffer, so that the kernel drops nothing.
    tcpdump = ["tcpdump", "-i", interface, "-n", "-U", "--immediate-mode"]
    tcpdump += ["-s", "128", "-B", "8192", "-Z", "root", "-w", str(path), "tcp"]
    dump = subprocess.Popen(
        in_namespace(names[where], *tcpdump), stderr=subprocess.PIPE, text=True
    )
    try:
        assert dump.stderr is not None
        for line in dump.stderr:
            if "listening on" in line:
                break
        server = subprocess.Popen(
            in_namespace(names["server"], sys.executable, "-c", SERVER),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        subprocess.run(
            in_namespace(names["client"], sys.executable, "-c", CLIENT),
            check=True,
            timeout=30,
        )
        assert server.wait(timeout=30) == 0
        time.sleep(0.5)  # let the last ACKs reach the capture
    finally:
        dump.terminate()
        _, report = dump.communicate(timeout=10)
    assert "\n0 packets dropped by kernel" in report, report


def test_tracker_forwarded_capture_counts_copies(namespaces, tmp_path):
    path = tmp_path / "router-any.pcap"
    capture_transfer(namespaces, path)
    conns: list[Connection] = []
    read_captures([str(path)], FlowTracker(), conns.append)
    assert len(conns) == 1
    record = build_record(conns[0])
    assert record["id.orig_h"] == CLIENT_ADDRESS
    assert record["conn_state"] == "SF"
    assert record["orig_bytes"] == SENT
    assert record["resp_bytes"] == 4
    # Every packet was captured twice.
    assert record["orig_pkts"] % 2 == 0
    assert record["resp_pkts"] % 2 == 0
    for side in ("orig", "resp"):
        copies = record[f"{side}_pkts"] // 2
        named = record[f"{side}_duplicate_captures"]
        # NOTE: when the router batches packets (two in, then two out), the
        # two copies of the first are not neighbours in the sender's
        # direction and go unrecognised; that happens to one or two packets
        # in a few runs. Every other second copy is named a duplicate.
        assert named >= copies * 0.95, side
        missed = copies - named
        assert record[f"{side}_retransmissions"] <= missed, side
        assert record[f"{side}_dup_acks"] <= missed, side
    assert record["syn_retransmissions"] == 0
    assert record["missed_bytes"] == 0
    assert record["teardown"] == "fin"


def tshark_flags(path: Path) -> list[set[str]]:
    """Return the tcp.analysis flags tshark sets on each frame of ``path``."""
    command = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for name in TSHARK_FIELDS:
        command += ["-e", f"tcp.analysis.{name}"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [
        {
            name
            for name, cell in zip(TSHARK_FIELDS, line.split("\t"), strict=True)
            if cell
        }
        for line in done.stdout.splitlines()
    ]


@pytest.mark.skipif(
    shutil.which("nft") is None or shutil.which("tshark") is None,
    reason="needs nftables to drop packets and tshark to compare with",
)
def test_tracker_real_loss_matches_tshark(namespaces, tmp_path):
    # The router drops 5% of what it forwards, before the server's capture.
    router = namespaces["router"]
    nft = ["nft", "add"]
    chain = "{ type filter hook forward priority 0; }"
    drop = ["numgen", "random", "mod", "100", "<", "5", "drop"]
    for command in (
        [*nft, "table", "inet", "loss"],
        [*nft, "chain", "inet", "loss", "forward", chain],
        [*nft, "rule", "inet", "loss", "forward", *drop],
    ):
        subprocess.run(in_namespace(router, *command), check=True)
    path = tmp_path / "server.pcap"
    # The server's interface has the same name as its namespace.
    server = namespaces["server"]
    capture_transfer(namespaces, path, where="server", interface=server)

    tracker = FlowTracker(keep_segments=True)
    conns: list[Connection] = []
    read_captures([str(path)], tracker, conns.append)
    assert len(conns) == 1
    record = build_record(conns[0])
    assert record["conn_state"] == "SF"
    assert record["orig_bytes"] == SENT
    # Lost segments show up as holes that retransmissions fill.
    assert record["orig_segments_not_captured"] + record["orig_retransmissions"] > 0

    views = conns[0].segments
    assert views is not None
    theirs = tshark_flags(path)
    assert len(views) == len(theirs)
    sent = {True: 0, False: 0}
    seen: set[tuple[bool, int, int]] = set()
    for frame, (view, wireshark) in enumerate(zip(views, theirs, strict=True), 1):
        ours: set[str] = set()
        for bit, flags in TSHARK_FLAGS.items():
            if view.marks & bit:
                ours |= flags
        data = (view.is_orig, view.rel_seq, view.segment.payload_len)
        if wireshark == {"duplicate_ack"} and not ours:
            # Wireshark 4.0 also calls a repeated ACK a duplicate when no data
            # is outstanding; RFC 5681 section 2, and tcpwatch, do not.
            assert view.rel_ack >= sent[not view.is_orig], f"frame {frame}"
        elif wireshark == {"out_of_order"} and ours == {"retransmission"}:
            # Wireshark 4.0 decides by timing alone; tcpwatch calls a quick
            # resend of bytes the capture already showed a retransmission.
            assert data in seen, f"frame {frame}"
        else:
            assert ours == wireshark, f"frame {frame}"
        end = view.rel_seq + view.segment.payload_len
        sent[view.is_orig] = max(sent[view.is_orig], end)
        seen.add(data)
