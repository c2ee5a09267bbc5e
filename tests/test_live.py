"""``tcpwatch live`` on real kernel TCP traffic.

Most tests build two network namespaces joined by a veth pair, run real TCP
servers in one and clients in the other, and capture on the server's veth
with both backends at once. Others capture on loopback, each filtered to a
127.x.y.z address and port of its own (``Loopback``). Everything here needs
root (namespaces, packet sockets).
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TCPWATCH = [sys.executable, "-m", "tcpwatch"]
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")
needs_ip = pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None or shutil.which("dumpcap") is None,
    reason="needs tshark",
)

# Ports of the four scenarios on the server side.
CLEAN, REFUSED, ABORT, HALF_CLOSE = 8001, 8002, 8003, 8004

# The traffic, run as a script inside a namespace: "server ADDRESS" serves
# one connection on each listening port, "client ADDRESS" makes them.
TRAFFIC = textwrap.dedent(
    """
    import socket, struct, sys, threading, time

    role, address = sys.argv[1], sys.argv[2]
    CLEAN, REFUSED, ABORT, HALF_CLOSE = 8001, 8002, 8003, 8004

    def listen(port):
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen()
        server.settimeout(20)
        return server

    def clean(server):
        conn, _ = server.accept()
        conn.recv(100)
        conn.sendall(b"pong" * 10)
        while conn.recv(100):
            pass
        conn.close()

    def abort(server):
        conn, _ = server.accept()
        conn.recv(100)
        try:
            while conn.recv(100):
                pass
        except ConnectionResetError:
            pass
        conn.close()

    def half_close(server):
        conn, _ = server.accept()
        while conn.recv(100):
            pass
        conn.sendall(b"reply" * 100)
        conn.close()

    if role == "server":
        handlers = {CLEAN: clean, ABORT: abort, HALF_CLOSE: half_close}
        threads = []
        for port, handler in handlers.items():
            thread = threading.Thread(target=handler, args=(listen(port),))
            thread.start()
            threads.append(thread)
        print("ready", flush=True)
        for thread in threads:
            thread.join()
    else:
        client = socket.create_connection((address, CLEAN))
        client.sendall(b"ping")
        received = b""
        while len(received) < 40:
            received += client.recv(100)
        client.close()
        time.sleep(0.2)
        try:
            socket.create_connection((address, REFUSED), timeout=5)
        except ConnectionRefusedError:
            pass
        time.sleep(0.2)
        client = socket.create_connection((address, ABORT))
        client.sendall(b"x" * 10)
        time.sleep(0.2)
        client.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        client.close()
        time.sleep(0.2)
        client = socket.create_connection((address, HALF_CLOSE))
        client.sendall(b"request")
        client.shutdown(socket.SHUT_WR)
        while client.recv(1000):
            pass
        client.close()
    """
)


class Capture:
    """A ``tcpwatch live`` subprocess whose stderr is read in a thread."""

    def __init__(self, args: list[str], prefix: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            (prefix or []) + TCPWATCH + ["live", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr_lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "listening on" not in self.stderr:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(
                    f"capture did not start (exit status {self.process.returncode}): "
                    f"{self.stderr}"
                )
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGINT, timeout: float = 60.0) -> str:
        """Send ``signum``, wait for the exit, and return stdout."""
        self.process.send_signal(signum)
        return self.finish(timeout)

    def finish(self, timeout: float = 60.0) -> str:
        assert self.process.stdout is not None
        try:
            stdout = self.process.stdout.read()
            self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._reader.join(5)
        return stdout


def json_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_back(path: Path, *extra: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*TCPWATCH, "read", str(path), "--format", "json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json_records(result.stdout)


def by_port(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {record["id.resp_p"]: record for record in records}


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


class Loopback:
    """A loopback address and port that no other test uses, and their filter.

    Each test gets its own 127.x.y.z address, with x from 100 to 199, clear
    of 127.0.0.1 and of the 127.77.0.0/16 flood of the drop test. Servers and
    clients bind to it and the capture filters on it, so that loopback
    traffic of tests and programs running at the same time never reaches
    the capture.
    """

    def __init__(self) -> None:
        number = random.SystemRandom().getrandbits(24)
        second = 100 + number % 100
        third = (number >> 8) & 0xFF
        fourth = 1 + (number >> 16) % 254
        self.address = f"127.{second}.{third}.{fourth}"
        self.port = free_port(self.address)
        self.filter = f"host {self.address} and tcp port {self.port}"

    def connect(self, timeout: float | None = None) -> socket.socket:
        """Return a client connected from this address to its port."""
        return socket.create_connection(
            (self.address, self.port), timeout=timeout, source_address=(self.address, 0)
        )

    def exchange(self, linger: float = 0.0) -> None:
        loopback_exchange(self, linger)


def loopback_exchange(own: Loopback, linger: float = 0.0) -> None:
    """One clean request and reply between two sockets on ``own.address``."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((own.address, own.port))
        server.listen()
        client = own.connect()
        conn, _ = server.accept()
        client.sendall(b"hello")
        conn.recv(100)
        conn.sendall(b"world!")
        client.recv(100)
        client.close()
        conn.close()
    time.sleep(linger)


# -- two namespaces, both backends on the same traffic -------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[dict[str, str]]:
    """Two namespaces joined by a veth pair: client .1 and server .2."""
    tag = f"{os.getpid() % 100000}"
    names = {
        "client_ns": f"twlc{tag}",
        "server_ns": f"twls{tag}",
        "client_if": f"twc{tag}",
        "server_if": f"tws{tag}",
    }
    subnet = f"10.203.{os.getpid() % 250}"
    names["client"], names["server"] = f"{subnet}.1", f"{subnet}.2"
    try:
        ip("netns", "add", names["client_ns"])
        ip("netns", "add", names["server_ns"])
        ip(
            "link", "add", names["client_if"], "netns", names["client_ns"],
            "type", "veth", "peer", "name", names["server_if"],
            "netns", names["server_ns"],
        )  # fmt: skip
        for side in ("client", "server"):
            namespace, interface = names[f"{side}_ns"], names[f"{side}_if"]
            ip("-n", namespace, "addr", "add", f"{names[side]}/24", "dev", interface)
            ip("-n", namespace, "link", "set", interface, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        yield names
    finally:
        for key in ("client_ns", "server_ns"):
            subprocess.run(["ip", "netns", "del", names[key]], capture_output=True)


@pytest.fixture(scope="module")
def veth_run(
    namespaces: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Capture the four scenarios on the server's veth with both backends."""
    directory = tmp_path_factory.mktemp("live")
    script = directory / "traffic.py"
    script.write_text(TRAFFIC)
    in_server = ["ip", "netns", "exec", namespaces["server_ns"]]
    in_client = ["ip", "netns", "exec", namespaces["client_ns"]]
    backends = ["native"]
    if shutil.which("tshark") and shutil.which("dumpcap"):
        backends.append("tshark")
    captures = {}
    for backend in backends:
        captures[backend] = Capture(
            [
                namespaces["server_if"],
                "--format",
                "json",
                "--backend",
                backend,
                "-w",
                str(directory / f"{backend}.pcap"),
            ],  # fmt: skip
            prefix=in_server,
        )
    for capture in captures.values():
        capture.wait_listening()
    server = subprocess.Popen(
        [*in_server, sys.executable, str(script), "server", namespaces["server"]],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    subprocess.run(
        [*in_client, sys.executable, str(script), "client", namespaces["server"]],
        check=True,
        timeout=60,
    )
    server.wait(timeout=30)
    time.sleep(0.5)  # the last ACKs reach the captures
    result: dict[str, Any] = {"namespaces": namespaces}
    for backend, capture in captures.items():
        stdout = capture.stop(signal.SIGINT)
        result[backend] = {
            "status": capture.process.returncode,
            "records": json_records(stdout),
            "stderr": capture.stderr,
            "pcap": directory / f"{backend}.pcap",
        }
    return result


BACKENDS = [
    "native",
    pytest.param("tshark", marks=needs_tshark),
]
pytestmark = [pytest.mark.root, needs_root, needs_ip]


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_stops_cleanly_on_sigint(veth_run: dict[str, Any], backend: str) -> None:
    run = veth_run[backend]
    assert run["status"] == 0, run["stderr"]
    assert "packets captured" in run["stderr"]
    assert "Traceback" not in run["stderr"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_clean_close(veth_run: dict[str, Any], backend: str) -> None:
    record = by_port(veth_run[backend]["records"])[CLEAN]
    assert record["id.orig_h"] == veth_run["namespaces"]["client"]
    assert record["conn_state"] == "SF"
    assert record["handshake"] == "complete"
    assert record["teardown"] == "fin"
    assert record["orig_bytes"] == 4
    assert record["resp_bytes"] == 40
    assert record["rtt_syn_synack"] is not None


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_refused_port(veth_run: dict[str, Any], backend: str) -> None:
    record = by_port(veth_run[backend]["records"])[REFUSED]
    assert record["conn_state"] == "REJ"
    assert record["handshake"] == "rejected"
    assert record["reject_latency"] is not None


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_abort_with_linger_zero(veth_run: dict[str, Any], backend: str) -> None:
    record = by_port(veth_run[backend]["records"])[ABORT]
    assert record["conn_state"] == "RSTO"
    assert record["teardown"] == "reset_by_orig"
    assert record["orig_bytes"] == 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_half_close(veth_run: dict[str, Any], backend: str) -> None:
    record = by_port(veth_run[backend]["records"])[HALF_CLOSE]
    history = record["history"]
    assert record["conn_state"] == "SF"
    assert record["teardown"] == "fin"
    assert record["resp_bytes"] == 500
    # The client's FIN comes before the server sends its reply.
    assert history.index("F") < history.index("d")


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_sees_only_the_four_connections(
    veth_run: dict[str, Any], backend: str
) -> None:
    ports = sorted(record["id.resp_p"] for record in veth_run[backend]["records"])
    assert ports == [CLEAN, REFUSED, ABORT, HALF_CLOSE]


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_write_file_matches_analysis(
    veth_run: dict[str, Any], backend: str
) -> None:
    run = veth_run[backend]
    live = sorted(run["records"], key=lambda record: record["uid"])
    saved = sorted(read_back(run["pcap"]), key=lambda record: record["uid"])
    assert saved == live


def test_live_reports_no_kernel_drops(veth_run: dict[str, Any]) -> None:
    stderr = veth_run["native"]["stderr"]
    assert "0 packets dropped by kernel" in stderr


# Fields that do not depend on when each capture's socket stamped a packet.
TIMELESS = (
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
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
    "orig_retransmissions",
    "resp_retransmissions",
    "orig_mss",
    "resp_mss",
    "orig_wscale",
    "resp_wscale",
    "sack_permitted",
)


@needs_tshark
def test_live_backends_agree(veth_run: dict[str, Any]) -> None:
    native = by_port(veth_run["native"]["records"])
    tshark = by_port(veth_run["tshark"]["records"])
    assert sorted(native) == sorted(tshark)
    for port, record in native.items():
        for name in TIMELESS:
            assert tshark[port][name] == record[name], (port, name)


def promiscuity(namespace: str, interface: str) -> int:
    shown = subprocess.run(
        ["ip", "-n", namespace, "-d", "link", "show", interface],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(shown.split("promiscuity ")[1].split()[0])


@pytest.mark.parametrize("no_promisc", [False, True], ids=["promisc", "no-promisc"])
def test_live_promiscuous_mode_while_capturing(
    namespaces: dict[str, str], no_promisc: bool
) -> None:
    namespace, interface = namespaces["server_ns"], namespaces["server_if"]
    args = [interface, "--duration", "30", "--format", "json"]
    if no_promisc:
        args.append("--no-promisc")
    capture = Capture(args, prefix=["ip", "netns", "exec", namespace])
    capture.wait_listening()
    during = promiscuity(namespace, interface)
    capture.stop()
    assert capture.process.returncode == 0, capture.stderr
    assert during == (0 if no_promisc else 1)
    # The kernel leaves promiscuous mode when the socket closes.
    assert promiscuity(namespace, interface) == 0


# -- loopback --------------------------------------------------------------------


def test_live_loopback_keeps_one_copy(tmp_path: Path) -> None:
    own = Loopback()
    capture = Capture(["lo", "-f", own.filter, "--format", "json"])
    capture.wait_listening()
    own.exchange(linger=0.3)
    records = json_records(capture.stop())
    assert capture.process.returncode == 0, capture.stderr
    assert len(records) == 1
    record = records[0]
    assert record["conn_state"] == "SF"
    # Each packet once: a duplicate would count as a retransmission.
    assert record["orig_retransmissions"] == 0
    assert record["resp_retransmissions"] == 0
    assert "10 packets captured" in capture.stderr


def test_live_sigterm_leaves_readable_file(tmp_path: Path) -> None:
    own = Loopback()
    saved = tmp_path / "term.pcap"
    capture = Capture(["lo", "-f", own.filter, "--format", "json", "-w", str(saved)])
    capture.wait_listening()
    own.exchange(linger=0.3)
    records = json_records(capture.stop(signal.SIGTERM))
    assert capture.process.returncode == 0, capture.stderr
    assert read_back(saved) == records


def test_live_count_stops_after_packets() -> None:
    own = Loopback()
    capture = Capture(["lo", "-f", own.filter, "-c", "3", "--format", "json"])
    capture.wait_listening()
    own.exchange()
    records = json_records(capture.finish(timeout=30))
    assert capture.process.returncode == 0, capture.stderr
    assert "3 packets captured" in capture.stderr
    assert records[0]["handshake"] == "complete"
    assert records[0]["teardown"] == "open"


@pytest.mark.parametrize("where", ["after-interface", "after-dash-i"])
def test_live_filter_after_the_interface_as_tcpdump(where: str) -> None:
    own = Loopback()
    other = Loopback()
    words = own.filter.split()
    args = ["lo", *words] if where == "after-interface" else ["-i", "lo", *words]
    capture = Capture([*args, "--format", "json"])
    capture.wait_listening()
    other.exchange()
    own.exchange(linger=0.3)
    records = json_records(capture.stop())
    assert capture.process.returncode == 0, capture.stderr
    assert [record["id.resp_h"] for record in records] == [own.address]


def test_live_two_filters_are_refused() -> None:
    done = subprocess.run(
        [*TCPWATCH, "live", "lo", "tcp", "-f", "port 80"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "two filters given, 'port 80' with -f and 'tcp'" in done.stderr


def test_live_duration_stops_without_traffic() -> None:
    own = Loopback()
    started = time.monotonic()
    capture = Capture(["lo", "-f", own.filter, "--duration", "1"])
    capture.finish(timeout=30)
    assert capture.process.returncode == 0, capture.stderr
    assert time.monotonic() - started < 20
    assert "0 packets captured" in capture.stderr


def test_live_csv_header_and_rows() -> None:
    own = Loopback()
    capture = Capture(["lo", "-f", own.filter, "--format", "csv"])
    capture.wait_listening()
    own.exchange(linger=0.3)
    lines = capture.stop().splitlines()
    assert lines[0].startswith("ts,uid,id.orig_h")
    assert len(lines) == 2


def test_live_piped_table_prints_json_lines() -> None:
    own = Loopback()
    capture = Capture(["lo", "-f", own.filter])
    capture.wait_listening()
    own.exchange(linger=0.3)
    records = json_records(capture.stop())
    assert capture.process.returncode == 0, capture.stderr
    assert [record["conn_state"] for record in records] == ["SF"]


def test_live_reader_gone_exits_zero() -> None:
    own = Loopback()
    shell = (
        f"{sys.executable} -m tcpwatch live lo -f '{own.filter}' --format json"
        " | head -c 1; exit ${PIPESTATUS[0]}"
    )
    process = subprocess.Popen(
        ["bash", "-c", shell], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(3)
    # Each record comes out after the 5 s close delay. head exits after the
    # first byte, so a later record's write finds the pipe closed.
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        own.exchange(linger=0.5)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert stdout == b"{"


def test_live_zeek_log_has_header_and_close() -> None:
    own = Loopback()
    capture = Capture(["lo", "-f", own.filter, "--format", "zeek"])
    capture.wait_listening()
    own.exchange(linger=0.3)
    lines = capture.stop().splitlines()
    fields = next(line for line in lines if line.startswith("#fields"))
    rows = [line for line in lines if not line.startswith("#")]
    assert fields.split("\t")[1:4] == ["ts", "uid", "id.orig_h"]
    assert len(rows) == 1
    assert "\tSF\t" in rows[0]
    assert lines[-1].startswith("#close")


def test_live_any_interface_uses_cooked_frames(tmp_path: Path) -> None:
    own = Loopback()
    saved = tmp_path / "any.pcap"
    capture = Capture(["any", "-f", own.filter, "--format", "json", "-w", str(saved)])
    capture.wait_listening()
    own.exchange(linger=0.3)
    records = json_records(capture.stop())
    assert "LINUX_SLL" in capture.stderr
    assert len(records) == 1
    assert records[0]["orig_retransmissions"] == 0
    assert read_back(saved) == records


def test_live_invalid_filter_is_rejected() -> None:
    capture = Capture(["lo", "-f", "tcp port banana"])
    capture.finish(timeout=30)
    assert capture.process.returncode == 2
    assert "invalid capture filter 'tcp port banana'" in capture.stderr


# -- errors and privileges -----------------------------------------------------


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_live_without_privileges_says_how_to_fix() -> None:
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            *TCPWATCH,
            "live",
            "lo",
            "-c",
            "1",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 2
    assert "needs root or the CAP_NET_RAW capability" in result.stderr
    assert "sudo" in result.stderr
    assert "setcap cap_net_raw+ep" in result.stderr


def test_live_unknown_interface_lists_available() -> None:
    result = subprocess.run(
        [*TCPWATCH, "live", "nosuchif0", "-c", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "interface 'nosuchif0' not found" in result.stderr
    assert "lo" in result.stderr.split("available interfaces:")[1]


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    """A directory every user can write to, outside root's private /tmp paths."""
    path = Path(tempfile.mkdtemp(prefix="tcpwatch-live-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("how", ["--user", "SUDO_USER"])
def test_live_drops_root_before_writing(shared_directory: Path, how: str) -> None:
    own = Loopback()
    saved = shared_directory / "dropped.pcap"
    args = ["lo", "-f", own.filter, "-w", str(saved), "--format", "json"]
    env = dict(os.environ)
    if how == "--user":
        args += ["--user", "nobody"]
    else:
        env["SUDO_USER"] = "nobody"
    process = subprocess.Popen(
        [*TCPWATCH, "live", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )
    time.sleep(2.5)
    own.exchange(linger=0.3)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert saved.stat().st_uid == 65534
    assert len(json_records(stdout)) == 1


def test_live_write_error_names_user(tmp_path: Path) -> None:
    own = Loopback()  # its filter only; no traffic is needed
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    saved = private / "out.pcap"
    args = ["lo", "-f", own.filter, "-w", str(saved), "--user", "nobody"]
    done = subprocess.run(
        [*TCPWATCH, "live", *args, "--format", "json", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "choose a path that 'nobody', the user tcpwatch captures as" in (done.stderr)


def test_live_unknown_user_is_rejected() -> None:
    result = subprocess.run(
        [*TCPWATCH, "live", "lo", "--user", "no-such-user-x", "-c", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "user 'no-such-user-x' not found" in result.stderr


def test_live_warns_while_kernel_drops() -> None:
    root = Path(__file__).resolve().parent.parent
    capture = Capture(
        ["lo", "-f", "tcp and net 127.77.0.0/16", "--format", "json", "-B", "2048"]
    )
    capture.wait_listening()
    # 200,000 packets/s is several times what tcpwatch analyses per second,
    # so a 2 MiB ring (about 12,000 of these packets) overflows.
    subprocess.run(
        [sys.executable, "-m", "benchmarks.live_throughput", "--send", "200000", "3"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    time.sleep(1)
    capture.stop()
    assert capture.process.returncode == 0, capture.stderr
    assert "packets dropped by kernel so far" in capture.stderr
    final = [
        line for line in capture.stderr.splitlines() if "dropped by kernel" in line
    ]
    assert not final[-1].startswith("0 ")


def test_live_max_connections_reports_evictions() -> None:
    own = Loopback()
    capture = Capture(
        ["lo", "-f", own.filter, "--format", "json", "--max-connections", "2"]
    )
    capture.wait_listening()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((own.address, own.port))
        server.listen()
        # Four connections stay open, so the third and the fourth each evict
        # one. Refused or closed ones would leave the table without counting.
        clients = [own.connect(timeout=5) for _ in range(4)]
        time.sleep(0.3)
        records = json_records(capture.stop())
        for client in clients:
            client.close()
    assert capture.process.returncode == 0, capture.stderr
    reasons = sorted(record["end_reason"] for record in records)
    assert reasons == ["evicted", "evicted", "open", "open"]
    assert "2 connections evicted at the --max-connections limit" in capture.stderr
