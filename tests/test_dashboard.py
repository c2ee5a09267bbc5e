"""The live dashboard: rendered to a string console, and for real in tmux."""

import io
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from scripted import Conversation

from tcpwatch.capture.live_feed import CaptureStatus
from tcpwatch.capture.pcapfile import open_capture
from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.render.dashboard import (
    KEY_HELP,
    WIDE_FROM,
    Dashboard,
    fit_endpoints,
    window_caption,
    window_start,
)
from tcpwatch.render.dashboard_keys import press_keys, split_keys
from tcpwatch.render.dashboard_panels import timeline_window
from tcpwatch.render.dashboard_view import footer_lines

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


class Clock:
    """A settable clock, in the scripted segments' time base."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def conversation(port: int, start: float, closed: bool) -> list:
    talk = Conversation(client_port=port)
    talk.handshake()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    talk.server(PSH | ACK, 3000)
    if closed:
        talk.client(FIN | ACK)
        talk.server(FIN | ACK)
        talk.client(ACK)
    return [segment._replace(ts=segment.ts + start) for segment in talk.segments]


def make_dashboard(
    count: int = 6, closed_every: int = 3, width: int = 80, height: int = 24
) -> tuple[Dashboard, Clock, Console]:
    """A dashboard over ``count`` scripted connections started a second apart."""
    tracker = FlowTracker(keep_segments=True, close_delay=0.5)
    clock = Clock(float(count) + 1)
    console = Console(
        file=io.StringIO(), width=width, height=height, force_terminal=False
    )
    status = CaptureStatus("lo", "tcp port 80", started=0.0)
    dashboard = Dashboard(tracker, status, console=console, clock=clock, keys=False)
    for index in range(count):
        closed = index % closed_every == 0
        for segment in conversation(40000 + index, float(index), closed):
            tracker.process(segment)
    tracker.expire(clock.now)
    dashboard.feed._deliver(tracker.pop_finished())
    return dashboard, clock, console


def render(dashboard: Dashboard, console: Console) -> list[str]:
    console.file = io.StringIO()
    console.print(dashboard.view())
    return console.file.getvalue().splitlines()


def test_dashboard_fits_80x24() -> None:
    dashboard, _, console = make_dashboard()
    lines = render(dashboard, console)
    assert len(lines) == 24
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("tcpwatch lo  filter: tcp port 80")
    assert "connections 4 open" in lines[1]
    assert lines[2].startswith("finished: 2 (2 SF)")
    assert "client → server" in lines[3]
    assert "state" in lines[3]
    assert "j/k select" in lines[23]


def test_dashboard_narrow_rows_show_both_endpoints() -> None:
    dashboard, _, console = make_dashboard()
    text = "\n".join(render(dashboard, console))
    assert "10.0.0.1:40005 → 10.0.0.2:80" in text
    assert "transfer" in text
    assert "closed SF" in text


def test_dashboard_wide_puts_timeline_beside_table() -> None:
    dashboard, _, console = make_dashboard(width=200, height=50)
    lines = render(dashboard, console)
    assert len(lines) == 50
    header_row = next(line for line in lines if "rtx" in line)
    assert "╭─ #6" in header_row
    assert any("10.0.0.1:40005 → 10.0.0.2:80" in line for line in lines)


def test_dashboard_orders_by_last_activity() -> None:
    dashboard, _, console = make_dashboard()
    view = dashboard.view()
    numbers = [row.number for row in view.rows]
    assert numbers[0] == 6
    assert numbers == sorted(numbers, reverse=True)


def test_dashboard_timeline_follows_latest() -> None:
    dashboard, _, console = make_dashboard()
    view = dashboard.view()
    assert view.timeline is not None
    assert view.timeline.number == 6
    lines = render(dashboard, console)
    panel_title = next(line for line in lines if line.startswith("╭─"))
    assert "#6 10.0.0.1:40005 -> 10.0.0.2:80" in panel_title


def test_dashboard_selection_moves_and_follows_again() -> None:
    dashboard, _, _ = make_dashboard()
    dashboard.view()
    dashboard.move_selection(1)
    assert dashboard.view().timeline.number == 5  # type: ignore[union-attr]
    dashboard.move_selection(1)
    assert dashboard.view().timeline.number == 4  # type: ignore[union-attr]
    dashboard.move_selection(-1)
    assert dashboard.view().timeline.number == 5  # type: ignore[union-attr]
    dashboard.follow_latest()
    assert dashboard.view().timeline.number == 6  # type: ignore[union-attr]


def test_dashboard_finished_rows_linger_then_dim() -> None:
    dashboard, clock, _ = make_dashboard(count=1, closed_every=1)
    rows = dashboard.view().rows
    assert [row.state for row in rows] == ["SF"]
    assert rows[0].finished
    assert not rows[0].past
    clock.now += dashboard.linger + 1
    rows = dashboard.view().rows
    assert [row.state for row in rows] == ["SF"]
    assert rows[0].past
    assert dashboard.totals["SF"] == 1


def test_dashboard_counts_dropped_packets() -> None:
    dashboard, _, console = make_dashboard()
    dashboard.status.dropped = 12
    assert "dropped 12" in render(dashboard, console)[1]
    dashboard.status.dropped = None
    assert "dropped n/a" in render(dashboard, console)[1]


def test_dashboard_waits_for_first_connection() -> None:
    tracker = FlowTracker(keep_segments=True)
    console = Console(file=io.StringIO(), width=80, height=24)
    dashboard = Dashboard(tracker, CaptureStatus("eth0"), console=console, keys=False)
    text = "\n".join(render(dashboard, console))
    assert "waiting for TCP connections" in text
    assert "no connection yet" in text


def test_dashboard_run_matches_offline_records() -> None:
    path = str(CAPTURES / "mixed.pcap")
    with open_capture(path) as capture:
        frames = list(capture)
    batches = [frames[index : index + 7] for index in range(0, len(frames), 7)]
    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True)
    tracker = FlowTracker(keep_segments=True)
    dashboard = Dashboard(
        tracker,
        CaptureStatus("mixed.pcap"),
        console=console,
        refresh_per_second=50,
        clock=lambda: frames[-1][0],
        keys=False,
    )
    dashboard.run(iter(batches)).join()
    live = [record for _, record in dashboard.final_rows()]

    offline: list[dict] = []
    from tcpwatch.pipeline import read_captures

    read_captures([path], FlowTracker(), lambda conn: offline.append(conn))
    expected = [build_record(conn) for conn in sorted(offline, key=lambda c: c.number)]
    assert dashboard.status.done
    assert dashboard.status.packets == len(frames)
    assert live == expected


def test_dashboard_run_stops_on_request() -> None:
    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True)
    dashboard = Dashboard(
        FlowTracker(keep_segments=True),
        CaptureStatus("endless"),
        console=console,
        refresh_per_second=20,
        keys=False,
    )

    def endless() -> Iterator[list]:
        while True:
            time.sleep(0.01)
            yield []

    threading.Timer(0.5, dashboard.stop).start()
    started = time.monotonic()
    dashboard.run(endless()).join()
    assert dashboard.status.done
    assert time.monotonic() - started < 10


def test_dashboard_timeline_marks_cut_lines() -> None:
    tracker = FlowTracker(keep_segments=True)
    talk = Conversation()
    talk.handshake()
    for _ in range(40):
        talk.client(PSH | ACK, 100)
        talk.server(ACK)
    for segment in talk.segments:
        tracker.process(segment)
    console = Console(file=io.StringIO(), width=80, height=24)
    dashboard = Dashboard(
        tracker,
        CaptureStatus("lo"),
        console=console,
        clock=lambda: talk.time,
        keys=False,
    )
    text = "\n".join(render(dashboard, console))
    assert "lines above · [ scrolls up" in text
    assert "lines below" not in text
    assert "SYN" in text


# -- the real thing in tmux ------------------------------------------------------

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


class Tmux:
    """A detached tmux session running one command, read with capture-pane.

    Each session has a tmux server of its own (``-L``), so that it never
    meets a server that another test's last session is shutting down.
    """

    def __init__(self, command: str, width: int, height: int) -> None:
        self.name = f"tcpwatch-dash-{os.getpid()}-{width}-{random.getrandbits(32):08x}"
        self.tmux = ["tmux", "-L", self.name]
        size = ["-x", str(width), "-y", str(height)]
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-s", self.name, *size, command],
            check=True,
        )

    def screen(self) -> str:
        result = subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
        )
        return result.stdout

    def wait_for(self, text: str, timeout: float = 30.0, without: str = "") -> str:
        """Return the screen once it shows ``text``, and not ``without`` if given."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen and not (without and without in screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not on screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)
        # tmux 3.3 leaves the socket file behind after kill-server.
        sockets = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (sockets / self.name).unlink(missing_ok=True)


def hold_connections(
    address: str, port: int, count: int, release: threading.Event, held: int = 3
) -> None:
    """Open ``count`` connections on ``address``, close all but the last ``held``.

    The others are closed when ``release`` is set.
    """
    with socket.socket() as server:
        server.bind((address, port))
        server.listen()
        pairs = []
        for index in range(count):
            client = socket.create_connection(
                (address, port), source_address=(address, 0)
            )
            conn, _ = server.accept()
            client.sendall(b"x" * (index + 1) * 10)
            conn.recv(1000)
            pairs.append((client, conn))
            time.sleep(0.05)
        closed = count - held
        for client, conn in pairs[:closed]:
            client.close()
            conn.close()
        release.wait(60)
        for client, conn in pairs[closed:]:
            client.close()
            conn.close()


def own_loopback() -> tuple[str, int]:
    """Return a 127.x.y.z address and a free port on it that no other test uses.

    The second byte is from 100 to 199, clear of 127.0.0.1 and of the
    127.77.0.0/16 flood of the live drop test, so that the capture filter on
    this address sees only this test's traffic.
    """
    number = random.SystemRandom().getrandbits(24)
    address = (
        f"127.{100 + number % 100}.{(number >> 8) & 0xFF}.{1 + (number >> 16) % 254}"
    )
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
    return address, port


@pytest.mark.root
@needs_root
@needs_tmux
@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_dashboard_in_tmux(size: tuple[int, int]) -> None:
    width, height = size
    address, port = own_loopback()
    command = (
        f"{sys.executable} -m tcpwatch live lo -f 'host {address} and tcp port "
        f"{port}' --duration 60; echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(command, width, height)
    release = threading.Event()
    traffic = threading.Thread(
        target=hold_connections, args=(address, port, 4, release)
    )
    try:
        tmux.wait_for("waiting for TCP connections")
        traffic.start()
        screen = tmux.wait_for("closed SF")
        lines = screen.splitlines()
        assert lines[0].startswith("tcpwatch lo  filter: host")
        assert "dropped 0" in lines[1]
        # The closed connection counts as finished, not as open.
        assert "connections 3 open" in lines[1]
        assert lines[2].startswith("finished: 1 (1 SF)")
        assert "transfer" in screen
        assert f"{address}:{port}" in screen  # the server's port, not cut off
        assert "j/k select" in lines[-1]
        assert f"╭─ #1 {address}:" in screen  # the last active: #1 closed last

        tmux.keys("j")
        screen = tmux.wait_for(f"╭─ #4 {address}:")
        if width >= 140:
            header_row = next(line for line in screen.splitlines() if "state" in line)
            assert "╭─ #4" in header_row, screen

        # Ctrl-C on one size, the q key on the other: both stop cleanly.
        tmux.keys("q" if width >= 140 else "C-c")
        screen = tmux.wait_for("EXIT=0")
        assert "originator" in screen  # the table printed after the dashboard
        assert "packets captured" in screen
        assert "0 packets dropped by kernel" in screen
    finally:
        release.set()
        tmux.close()
        if traffic.is_alive():
            traffic.join(10)


def test_dashboard_header_escapes_control_characters() -> None:
    tracker = FlowTracker(keep_segments=True)
    console = Console(file=io.StringIO(), width=80, height=24)
    status = CaptureStatus("cap\x1b[2J.pcap", "tcp\x07")
    dashboard = Dashboard(tracker, status, console=console, keys=False)
    first = render(dashboard, console)[0]
    assert "cap\\x1b[2J.pcap" in first
    assert "tcp\\x07" in first
    assert "\x1b" not in first


class BlockedTerminal(io.StringIO):
    """A terminal that takes no output until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(30)
        return super().write(text)


def test_dashboard_blocked_terminal_does_not_stop_feed() -> None:
    with open_capture(str(CAPTURES / "mixed.pcap")) as capture:
        frames = list(capture)
    terminal = BlockedTerminal()
    console = Console(file=terminal, width=80, height=24, force_terminal=True)
    dashboard = Dashboard(
        FlowTracker(keep_segments=True),
        CaptureStatus("mixed.pcap"),
        console=console,
        clock=lambda: frames[-1][0],
        keys=False,
    )
    runner = threading.Thread(target=lambda: dashboard.run(iter([frames])))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not dashboard.status.done and time.monotonic() < deadline:
            time.sleep(0.05)
        # Every frame was tracked while the screen could not be drawn at all.
        assert dashboard.status.done
        assert dashboard.status.packets == len(frames)
        assert terminal.getvalue() == ""
    finally:
        terminal.release.set()
        runner.join(30)
    assert not runner.is_alive()


# -- finished connections, the header totals and the footer --------------------


def finished_dashboard(
    states: list[str], width: int = 80, height: int = 24
) -> tuple[Dashboard, Clock, Console]:
    """A dashboard whose connections, one per state in ``states``, all finished.

    Each state is "SF", "REJ" or "RSTO"; connections start a second apart,
    and the clock is past their linger time.
    """
    tracker = FlowTracker(keep_segments=True, close_delay=0.5)
    clock = Clock(float(len(states)) + 1)
    console = Console(file=io.StringIO(), width=width, height=height)
    status = CaptureStatus("lo", started=0.0)
    dashboard = Dashboard(tracker, status, console=console, clock=clock, keys=False)
    for index, state in enumerate(states):
        talk = Conversation(client_port=41000 + index)
        if state == "REJ":
            talk.client(SYN)
            talk.server(RST | ACK)
        else:
            talk.handshake()
            talk.client(PSH | ACK, 10)
            talk.server(ACK)
            if state == "RSTO":
                talk.client(RST | ACK)
            else:
                talk.client(FIN | ACK)
                talk.server(FIN | ACK)
                talk.client(ACK)
        for segment in talk.segments:
            tracker.process(segment._replace(ts=segment.ts + index))
    tracker.expire(clock.now)
    dashboard.feed._deliver(tracker.pop_finished())
    clock.now += dashboard.linger + 1
    return dashboard, clock, console


TEN_STATES = ["SF"] * 4 + ["REJ"] + ["SF"] * 4 + ["RSTO"]


def test_dashboard_header_shows_finished_totals() -> None:
    dashboard, _, console = finished_dashboard(TEN_STATES)
    lines = render(dashboard, console)
    assert lines[2].startswith("finished: 10 (8 SF, 1 REJ, 1 RSTO)")


def test_dashboard_shows_finished_when_none_open() -> None:
    dashboard, _, console = finished_dashboard(TEN_STATES)
    text = "\n".join(render(dashboard, console))
    assert "waiting for TCP connections" not in text
    assert "no connection yet" not in text
    assert "connections 0 open" in text
    assert "closed RSTO" in text


def test_dashboard_past_rows_newest_first_and_dimmed() -> None:
    dashboard, _, _ = finished_dashboard(TEN_STATES)
    rows = dashboard.view().rows
    numbers = [row.number for row in rows]
    assert numbers[0] == 10
    assert numbers == sorted(numbers, reverse=True)
    assert all(row.past for row in rows)


def test_dashboard_past_rows_keep_timeline() -> None:
    dashboard, _, _ = finished_dashboard(TEN_STATES)
    timeline = dashboard.view().timeline
    assert timeline is not None
    assert timeline.number == 10
    assert timeline.segments


def test_dashboard_open_rows_come_before_past_ones() -> None:
    dashboard, clock, _ = finished_dashboard(["SF", "SF"])
    talk = Conversation(client_port=42000)
    talk.handshake()
    for segment in talk.segments:
        dashboard.tracker.process(segment._replace(ts=segment.ts + 2.5))
    rows = dashboard.view().rows
    assert [row.number for row in rows] == [3, 2, 1]
    assert [row.past for row in rows] == [False, True, True]


def test_dashboard_closed_counts_as_finished() -> None:
    tracker = FlowTracker(keep_segments=True)  # the default 5 s close delay
    console = Console(file=io.StringIO(), width=80, height=24)
    clock = Clock(10.0)
    dashboard = Dashboard(
        tracker, CaptureStatus("lo"), console=console, clock=clock, keys=False
    )
    for index in range(4):
        for segment in conversation(40000 + index, float(index), closed=True):
            tracker.process(segment)
    lines = render(dashboard, console)
    text = "\n".join(lines)
    assert "closed SF" in text
    assert "connections 0 open" in lines[1]
    assert lines[2].startswith("finished: 4 (4 SF)")
    assert dashboard.status.finished == 0  # the tracker still holds them


def test_dashboard_footer_lists_keys() -> None:
    dashboard, _, console = make_dashboard()
    last = render(dashboard, console)[-1]
    assert "j/k select" in last
    assert "Esc follow newest" in last
    assert "q quit" in last


def test_dashboard_footer_follows_hint() -> None:
    dashboard, _, console = make_dashboard()
    dashboard.hint = "Space next segment"
    assert render(dashboard, console)[-1].strip() == "Space next segment"


# -- 80 columns: both endpoints stay readable --------------------------------------

LOOPBACK = bytes([127, 0, 0, 1])


def loopback_dashboard(
    client: bytes, server: bytes, width: int = 80
) -> tuple[Dashboard, Console]:
    """A dashboard of 14 connections from ``client`` ports 58611 on to ``server``."""
    tracker = FlowTracker(keep_segments=True)
    console = Console(file=io.StringIO(), width=width, height=24)
    dashboard = Dashboard(
        tracker, CaptureStatus("lo"), console=console, clock=Clock(20.0), keys=False
    )
    for index in range(14):
        talk = Conversation(client_port=58611 + index, server_port=54185)
        talk.handshake()
        talk.client(PSH | ACK, 100)
        for segment in talk.segments:
            forward = segment.sport == 58611 + index
            tracker.process(
                segment._replace(
                    ts=segment.ts + index,
                    src=client if forward else server,
                    dst=server if forward else client,
                )
            )
    return dashboard, console


def test_dashboard_80_columns_show_both_endpoints() -> None:
    dashboard, console = loopback_dashboard(LOOPBACK, LOOPBACK)
    lines = render(dashboard, console)
    row = next(line for line in lines if line.lstrip().startswith("14 "))
    assert "127.0.0.1:58624 → 127.0.0.1:54185" in row
    assert "transfer" in row


def test_dashboard_80_columns_shorten_ipv6_in_middle() -> None:
    client = bytes.fromhex("20010db8aaaabbbbccccdddd00000001")
    server = bytes.fromhex("20010db8aaaabbbbccccdddd00000002")
    dashboard, console = loopback_dashboard(client, server)
    lines = render(dashboard, console)
    row = next(line for line in lines if line.lstrip().startswith("14 "))
    assert "[2001:" in row
    assert "…" in row
    assert "0:1]:58624 → [2001:" in row
    assert "0:2]:54185" in row
    assert "transfer" in row
    assert "100 B" in row


def test_dashboard_80_columns_drop_rtx_before_hosts() -> None:
    tracker = FlowTracker(keep_segments=True)
    console = Console(file=io.StringIO(), width=80, height=24)
    dashboard = Dashboard(
        tracker, CaptureStatus("lo"), console=console, clock=Clock(5.0), keys=False
    )
    client, server = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 90])
    # A thousand connections, so that four-digit numbers take room too.
    for index in range(1000):
        talk = Conversation(client_port=59554 + index, server_port=9101)
        talk.handshake()
        talk.client(PSH | ACK, 100)
        for segment in talk.segments:
            forward = segment.dport == 9101
            tracker.process(
                segment._replace(
                    ts=segment.ts + index * 0.001,
                    src=client if forward else server,
                    dst=server if forward else client,
                )
            )
    lines = render(dashboard, console)
    header = next(line for line in lines if "client → server" in line)
    row = next(line for line in lines if line.lstrip().startswith("1000 "))
    assert "127.0.0.1:60553 → 127.0.0.90:9101" in row
    assert "…" not in row
    assert "rtx" not in header
    assert "→ bytes" in header


def test_dashboard_wide_shows_age_and_idle() -> None:
    dashboard, console = loopback_dashboard(LOOPBACK, LOOPBACK, width=120)
    header = next(line for line in render(dashboard, console) if "rtx" in line)
    assert "age" in header
    assert "idle" in header


def test_dashboard_narrow_leaves_out_age_and_idle() -> None:
    dashboard, console = loopback_dashboard(LOOPBACK, LOOPBACK)
    header = next(line for line in render(dashboard, console) if "rtx" in line)
    assert "age" not in header
    assert "idle" not in header


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (40, "127.0.0.1:58624 → 127.0.0.90:9101"),
        (33, "127.0.0.1:58624 → 127.0.0.90:9101"),
        (32, "127.0.0.1:58624 → 127.…0.90:9101"),
        (31, "127.…0.1:58624 → 127.…0.90:9101"),
        (24, "12….1:58624 → 12…90:9101"),
        (10, "1…1:58624 → 1…0:9101"),
    ],
)
def test_fit_endpoints_cuts_hosts_in_middle(width: int, expected: str) -> None:
    assert fit_endpoints("127.0.0.1:58624", "127.0.0.90:9101", width) == expected


def test_fit_endpoints_keeps_similar_hosts_apart() -> None:
    shown = {
        fit_endpoints(f"{host}:59554", f"{host}:9101", 30)
        for host in ("127.0.0.90", "17.0.0.90", "7.0.0.90")
    }
    assert len(shown) == 3


def test_fit_endpoints_keeps_ipv6_ports() -> None:
    shown = fit_endpoints("[2001:db8::1]:40000", "[2001:db8::2]:443", 28)
    assert len(shown) == 28
    assert shown.startswith("[20…")
    assert shown.endswith(":2]:443")
    assert ":1]:40000 → [20" in shown


@pytest.mark.root
@needs_root
@needs_tmux
def test_dashboard_in_tmux_keeps_finished_rows() -> None:
    address, port = own_loopback()
    command = (
        f"{sys.executable} -m tcpwatch live lo -f 'host {address} and tcp port "
        f"{port}' --duration 60; echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(command, 80, 24)
    release = threading.Event()
    release.set()  # every connection closes at once
    try:
        tmux.wait_for("waiting for TCP connections")
        hold_connections(address, port, 3, release, held=0)
        tmux.wait_for("finished: 3 (3 SF)")
        # Past the tracker's close delay and the dashboard's linger time.
        time.sleep(12)
        screen = tmux.screen()
        lines = screen.splitlines()
        assert "waiting for TCP connections" not in screen
        assert "no connection yet" not in screen
        assert "connections 0 open" in lines[1]
        assert lines[2].startswith("finished: 3 (3 SF)")
        assert screen.count("closed SF") == 3
        assert f"╭─ #3 {address}:" in screen
        tmux.keys("q")
        tmux.wait_for("EXIT=0")
    finally:
        tmux.close()


@pytest.mark.parametrize("command", ["live", "replay"])
def test_dashboard_keys_in_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tcpwatch", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    # The help is wrapped to the terminal, so compare with single spaces.
    words = " ".join(result.stdout.split())
    assert "Up/Down or j/k select" in words
    assert "PgUp/PgDn and Home/End (or g/G)" in words
    assert "[ and ] (or Shift+Up/Down) scroll the timeline" in words
    assert "Esc follows the newest" in words
    assert "? or h lists the keys" in words
    assert "q stops" in words


# -- scrolling: the table's window, the selection and the timeline --------------


@pytest.mark.parametrize(
    ("index", "offset", "count", "page", "expected"),
    [
        (0, 0, 30, 8, 0),  # following the newest
        (7, 7, 30, 8, 0),  # the bottom row of the first window
        (8, 7, 30, 8, 1),  # one below it scrolls by one
        (29, 7, 30, 8, 22),  # the last row
        (29, 0, 30, 8, 22),  # never past the last row
        (3, 5, 30, 8, 0),  # never before the first row
        (12, 20, 30, 8, 5),  # an offset beyond the page means its bottom row
        (4, 2, 5, 8, 0),  # fewer rows than the page
        (0, 0, 0, 8, 0),  # no rows at all
    ],
)
def test_window_start(
    index: int, offset: int, count: int, page: int, expected: int
) -> None:
    assert window_start(index, offset, count, page) == expected


def test_window_caption() -> None:
    assert window_caption(7, 16, 30) == "rows 8-23 of 30"
    assert window_caption(0, 3, 3) == "rows 1-3 of 3"
    assert window_caption(0, 0, 0) == ""


@pytest.mark.parametrize(
    ("total", "room", "top", "expected"),
    [
        # Everything fits: no head, no counts.
        (10, 10, None, (0, 0, 10, 0, 0, 0)),
        # The newest lines: head, "above", then the last room - 5 lines.
        (30, 10, None, (4, 21, 5, 21, 0, 21)),
        # One line up: both counting lines, so the window has room - 6 lines.
        (30, 10, 20, (4, 20, 4, 20, 2, 21)),
        # The top: no "above", so the window has room - 5 lines again.
        (30, 10, 0, (4, 0, 5, 0, 21, 21)),
        (30, 10, -3, (4, 0, 5, 0, 21, 21)),
        (30, 10, 99, (4, 21, 5, 21, 0, 21)),
        # Too short for the head and two counting lines: a plain window.
        (30, 6, None, (0, 24, 6, 24, 0, 24)),
        (30, 6, 3, (0, 3, 6, 3, 21, 24)),
    ],
)
def test_timeline_window(
    total: int, room: int, top: int | None, expected: tuple[int, ...]
) -> None:
    window = timeline_window(total, room, 4, top)
    assert (
        window.head,
        window.first,
        window.count,
        window.above,
        window.below,
        window.last_top,
    ) == expected
    counts = (window.above > 0) + (window.below > 0) if window.counted else 0
    assert window.head + window.count + counts == min(total, room)
    assert window.head + window.above + window.count + window.below == total


def selected_number(dashboard: Dashboard) -> int:
    timeline = dashboard.view().timeline
    assert timeline is not None
    return timeline.number


def caption_line(dashboard: Dashboard, console: Console) -> str:
    return next(line for line in render(dashboard, console) if "rows " in line)


def test_dashboard_selection_scrolls_to_oldest() -> None:
    dashboard, _, console = make_dashboard(count=30)
    assert "rows 1-8 of 30" in caption_line(dashboard, console)
    for _ in range(30):
        dashboard.move_selection(1)
        dashboard.view()
    assert selected_number(dashboard) == 1
    lines = render(dashboard, console)
    assert any("rows 23-30 of 30" in line for line in lines)
    row = next(line for line in lines if "10.0.0.1:40000 →" in line)
    assert row.lstrip().startswith("1 ")
    assert not any(line.lstrip().startswith("30 ") for line in lines)


def test_dashboard_selection_scrolls_back_up() -> None:
    dashboard, _, console = make_dashboard(count=30, closed_every=1000)
    dashboard.view()
    dashboard.select_end(last=True)
    dashboard.view()
    for _ in range(8):
        dashboard.move_selection(-1)
        dashboard.view()
    assert selected_number(dashboard) == 9
    # The selection went to the window's top row, then the window followed it.
    assert "rows 22-29 of 30" in caption_line(dashboard, console)


def test_dashboard_selection_stays_on_connection_as_rows_move() -> None:
    # Only #1 closes, so that no row turns past and moves to the end.
    dashboard, clock, console = make_dashboard(count=30, closed_every=1000)
    dashboard.view()
    for _ in range(5):
        dashboard.move_selection(1)
        dashboard.view()
    assert selected_number(dashboard) == 25
    # Ten new connections push the selected one down the list.
    for index in range(10):
        for segment in conversation(45000 + index, clock.now + index, False):
            dashboard.tracker.process(segment)
    clock.now += 11
    assert selected_number(dashboard) == 25
    lines = render(dashboard, console)
    selected_row = next(line for line in lines if "10.0.0.1:40024 →" in line)
    assert selected_row.lstrip().startswith("25 ")
    # It keeps its place in the window: the sixth row, rows 11-18 of 40.
    assert any("rows 11-18 of 40" in line for line in lines)


def test_dashboard_selection_survives_resize() -> None:
    dashboard, _, console = make_dashboard(count=30, width=200, height=50)
    dashboard.view()
    for _ in range(29):
        dashboard.move_selection(1)
    assert selected_number(dashboard) == 1
    console.size = (80, 24)
    assert selected_number(dashboard) == 1
    assert "rows 23-30 of 30" in caption_line(dashboard, console)
    console.size = (200, 50)
    assert selected_number(dashboard) == 1


def test_dashboard_says_when_selection_leaves() -> None:
    dashboard, clock, console = finished_dashboard(["SF"] * 5)
    dashboard.kept = deque(dashboard.kept, maxlen=5)
    dashboard.view()
    dashboard.select_end(last=True)
    assert selected_number(dashboard) == 1
    # One more finished connection pushes #1 out of the kept ones.
    for segment in conversation(43000, clock.now, closed=True):
        dashboard.tracker.process(segment)
    clock.now += 2
    dashboard.tracker.expire(clock.now)
    dashboard.feed._deliver(dashboard.tracker.pop_finished())
    assert selected_number(dashboard) == 6
    caption = caption_line(dashboard, console)
    assert "#1 left the dashboard · following the newest" in caption
    assert dashboard.selected is None
    dashboard.move_selection(1)
    assert "left the dashboard" not in caption_line(dashboard, console)


def test_dashboard_pages_and_ends() -> None:
    dashboard, _, console = make_dashboard(count=30)
    dashboard.view()
    dashboard.move_selection(2)
    dashboard.view()
    dashboard.move_page(1)
    assert selected_number(dashboard) == 20  # the third row of rows 9-16
    assert "rows 9-16 of 30" in caption_line(dashboard, console)
    dashboard.move_page(5)
    assert "rows 23-30 of 30" in caption_line(dashboard, console)
    dashboard.move_page(1)
    assert selected_number(dashboard) == 1
    dashboard.move_page(-1)
    assert "rows 15-22 of 30" in caption_line(dashboard, console)
    dashboard.select_end(last=False)
    assert selected_number(dashboard) == 30
    assert "rows 1-8 of 30" in caption_line(dashboard, console)
    dashboard.move_page(-1)
    assert selected_number(dashboard) == 30
    dashboard.select_end(last=True)
    assert selected_number(dashboard) == 1


def long_dashboard() -> tuple[Dashboard, Console]:
    """A dashboard whose newest connection's timeline is far taller than its panel.

    An older connection of one SYN is the second row.
    """
    tracker = FlowTracker(keep_segments=True)
    tracker.process(Conversation(client_port=41000).client(SYN)._replace(ts=-1.0))
    talk = Conversation()
    talk.handshake()
    for _ in range(40):
        talk.client(PSH | ACK, 100)
        talk.server(ACK)
    for segment in talk.segments:
        tracker.process(segment)
    console = Console(file=io.StringIO(), width=80, height=24)
    dashboard = Dashboard(
        tracker,
        CaptureStatus("lo"),
        console=console,
        clock=lambda: talk.time,
        keys=False,
    )
    return dashboard, console


def test_dashboard_timeline_scrolls() -> None:
    dashboard, console = long_dashboard()
    newest = render(dashboard, console)
    dashboard.scroll_timeline(-1)
    one_up = render(dashboard, console)
    assert one_up != newest
    assert any("lines below · ] scrolls down" in line for line in one_up)
    for _ in range(500):
        dashboard.scroll_timeline(-1)
    top = "\n".join(render(dashboard, console))
    assert "lines above" not in top
    assert "lines below" in top
    assert dashboard.timeline_top == 0
    for _ in range(500):
        dashboard.scroll_timeline(1)
    assert dashboard.timeline_top is None  # following the newest lines again
    assert render(dashboard, console) == newest


def test_dashboard_timeline_scroll_resets_on_new_selection() -> None:
    dashboard, console = long_dashboard()
    render(dashboard, console)
    dashboard.scroll_timeline(-1)
    assert dashboard.timeline_top is not None
    dashboard.move_selection(1)
    assert dashboard.timeline_top is None
    assert selected_number(dashboard) == 1


def test_dashboard_help_lists_every_key() -> None:
    dashboard, _, console = make_dashboard(count=30)
    dashboard.toggle_help()
    lines = render(dashboard, console)
    assert len(lines) == 24
    footer = "\n".join(lines[-3:])
    for entry in KEY_HELP:
        assert entry in footer
    assert "rows 1-7 of 30" in "\n".join(lines)
    dashboard.toggle_help()
    assert "q quit" in render(dashboard, console)[-1]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (b"jjj", [b"j", b"j", b"j"]),
        (b"\x1b[A\x1b[B", [b"\x1b[A", b"\x1b[B"]),
        (b"\x1b", [b"\x1b"]),
        (b"\x1bq", [b"\x1b", b"q"]),
        (b"\x1b[5~j", [b"\x1b[5~", b"j"]),
        (b"\x1b[1;2A]", [b"\x1b[1;2A", b"]"]),
        (b"\x1bOH\x1bOF", [b"\x1bOH", b"\x1bOF"]),
        (b"\x1b[1;2", [b"\x1b[1;2"]),
    ],
)
def test_split_keys(typed: bytes, expected: list[bytes]) -> None:
    assert split_keys(typed) == expected


def test_press_keys_moves_selection() -> None:
    dashboard, _, _ = make_dashboard(count=30)
    dashboard.view()
    press_keys(dashboard, b"jjj")
    assert selected_number(dashboard) == 27
    press_keys(dashboard, b"\x1b[A")
    assert selected_number(dashboard) == 28
    press_keys(dashboard, b"\x1b[4~")
    assert selected_number(dashboard) == 1
    press_keys(dashboard, b"g")
    assert selected_number(dashboard) == 30
    press_keys(dashboard, b"\x1b[6~")
    assert selected_number(dashboard) == 22
    press_keys(dashboard, b"?")
    assert dashboard.show_help
    press_keys(dashboard, b"\x1b")
    assert dashboard.selected is None
    press_keys(dashboard, b"x\x1b[Z")  # keys without an action
    assert selected_number(dashboard) == 30
    press_keys(dashboard, b"q")
    assert dashboard.feed.stop.is_set()


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.root
@needs_root
@needs_tmux
@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_dashboard_in_tmux_reaches_every_connection(size: tuple[int, int]) -> None:
    width, height = size
    small = width < WIDE_FROM
    address, port = own_loopback()
    command = (
        f"{sys.executable} -m tcpwatch live lo -f 'host {address}' --duration 120;"
        " echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(command, width, height)
    closed = threading.Event()
    closed.set()
    try:
        tmux.wait_for("waiting for TCP connections")
        # The connections close in the order they opened, so the rows stay
        # in the order #30 to #1 while they linger and after.
        hold_connections(address, port, 30, closed, held=0)
        screen = tmux.wait_for("finished: 30 (30 SF)")
        assert ("rows 1-8 of 30" if small else "rows 1-30 of 30") in screen

        # Thirty presses in one send-keys: the terminal may deliver them in
        # one read.
        tmux.keys(*["j"] * 30)
        screen = tmux.wait_for(f"╭─ #1 {address}:")
        assert ("rows 23-30 of 30" if small else "rows 1-30 of 30") in screen, screen
        row = next(line for line in screen.splitlines() if "closed SF" in line)
        assert f"{address}:" in row
        assert "…" not in row  # both endpoints whole

        if small:
            # #1's timeline is taller than the panel: scroll it up and back.
            screen = tmux.wait_for("lines above · [ scrolls up")
            tmux.keys("[")
            screen = tmux.wait_for("lines below · ] scrolls down")
            assert f"╭─ #1 {address}:" in screen
            tmux.keys(*["]"] * 30)
            tmux.wait_for("lines above · [ scrolls up", without="lines below")

            # Growing the terminal and shrinking it back keeps the selection.
            subprocess.run(
                [*tmux.tmux, "resize-window", "-t", tmux.name, "-x", "200", "-y", "50"],
                check=True,
            )
            screen = tmux.wait_for("rows 1-30 of 30")
            assert f"╭─ #1 {address}:" in screen
            subprocess.run(
                [*tmux.tmux, "resize-window", "-t", tmux.name, "-x", "80", "-y", "24"],
                check=True,
            )
            screen = tmux.wait_for("rows 23-30 of 30")
            assert f"╭─ #1 {address}:" in screen

        # Five newer connections push #1 further down; it stays selected.
        hold_connections(address, free_port(address), 5, closed, held=0)
        screen = tmux.wait_for("rows 28-35 of 35" if small else "rows 1-35 of 35")
        assert f"╭─ #1 {address}:" in screen

        tmux.keys("Home")
        screen = tmux.wait_for(f"╭─ #35 {address}:")
        assert ("rows 1-8 of 35" if small else "rows 1-35 of 35") in screen
        tmux.keys("End")
        screen = tmux.wait_for(f"╭─ #1 {address}:")
        if small:
            tmux.keys("PPage")
            tmux.wait_for("rows 20-27 of 35")
            tmux.keys("NPage")
            tmux.wait_for("rows 28-35 of 35")

        tmux.keys("?")
        screen = tmux.wait_for("Home/End or g/G: the first or last row")
        assert "[/] or Shift+↑/↓: scroll the timeline" in screen
        tmux.keys("?")
        tmux.wait_for("? keys · q quit")

        tmux.keys("q")
        screen = tmux.wait_for("EXIT=0")
        assert "packets captured" in screen
    finally:
        tmux.close()


def test_dashboard_selection_keeps_row_when_finished() -> None:
    # Forty lines give the table room for all ten rows.
    dashboard, clock, console = make_dashboard(count=10, closed_every=1000, height=40)
    dashboard.view()
    dashboard.move_selection(3)
    assert selected_number(dashboard) == 7
    talk = Conversation(client_port=40006)
    talk.handshake()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    talk.server(PSH | ACK, 3000)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    for segment in talk.segments[-3:]:
        dashboard.tracker.process(segment._replace(ts=clock.now))
    # Closed, it is the most recently active row, but the order is held.
    assert selected_number(dashboard) == 7
    assert [row.number for row in dashboard.view().rows][:4] == [10, 9, 8, 7]
    assert "rows 1-10 of 10 · order held" in caption_line(dashboard, console)
    clock.now += 2
    dashboard.tracker.expire(clock.now)
    dashboard.feed._deliver(dashboard.tracker.pop_finished())
    assert selected_number(dashboard) == 7
    # Past the linger time it is dimmed, still in its row.
    clock.now += dashboard.linger + 1
    view = dashboard.view()
    assert view.selected == dashboard.selected
    assert view.rows[3].number == 7
    assert view.rows[3].past
    # Following the newest again, past rows go below the open ones, and #1
    # finished long before #7.
    dashboard.follow_latest()
    view = dashboard.view()
    assert [row.number for row in view.rows][-2:] == [7, 1]
    assert "order held" not in caption_line(dashboard, console)


# -- a held order while a row is selected ------------------------------------------


def touch(dashboard: Dashboard, port: int, ts: float) -> None:
    """Send one more ACK on the scripted connection from ``port``, at ``ts``."""
    talk = Conversation(client_port=port)
    talk.handshake()
    talk.client(PSH | ACK, 100)
    talk.server(ACK)
    talk.server(PSH | ACK, 3000)
    talk.client(ACK)
    dashboard.tracker.process(talk.segments[-1]._replace(ts=ts))


def test_dashboard_selection_holds_row_order() -> None:
    dashboard, clock, console = make_dashboard(count=30, closed_every=1000)
    listed = [row.number for row in dashboard.view().rows]
    assert listed == list(range(30, 22, -1))
    dashboard.select_end(last=False)
    assert selected_number(dashboard) == 30
    # #20 and #5 become the most recently active; the rows stay as listed.
    clock.now += 1
    touch(dashboard, 40019, clock.now)
    touch(dashboard, 40004, clock.now + 0.1)
    assert [row.number for row in dashboard.view().rows] == listed
    assert "rows 1-8 of 30 · order held" in caption_line(dashboard, console)
    # Nine presses of j from the first row land on the tenth row as listed.
    for _ in range(9):
        dashboard.move_selection(1)
        # #1 is closed, so only #2 to #30 take more segments.
        touch(dashboard, 40000 + random.randrange(1, 30), clock.now + 0.2)
        dashboard.view()
    assert selected_number(dashboard) == 21
    assert "rows 3-10 of 30 · order held" in caption_line(dashboard, console)


def test_dashboard_held_order_end_selects_last_row() -> None:
    dashboard, clock, console = make_dashboard(count=30, closed_every=1000)
    dashboard.view()
    dashboard.move_selection(1)
    dashboard.view()
    clock.now += 1
    touch(dashboard, 40001, clock.now)  # #2, the last row but one, turns most recent
    dashboard.view()
    dashboard.select_end(last=True)
    assert selected_number(dashboard) == 1
    assert "rows 23-30 of 30 · order held" in caption_line(dashboard, console)
    dashboard.select_end(last=False)
    assert selected_number(dashboard) == 30


def test_dashboard_held_order_adds_new_rows_above() -> None:
    dashboard, clock, console = make_dashboard(count=30, closed_every=1000)
    dashboard.view()
    dashboard.move_selection(2)
    before = [row.number for row in dashboard.view().rows]
    for index in range(3):
        for segment in conversation(45000 + index, clock.now + index, False):
            dashboard.tracker.process(segment)
    clock.now += 4
    touch(dashboard, 40010, clock.now)
    view = dashboard.view()
    # The window moved down with the selection, so the rows in view stay.
    assert [row.number for row in view.rows] == before
    assert "rows 4-11 of 33 · order held" in caption_line(dashboard, console)
    dashboard.select_end(last=False)
    assert selected_number(dashboard) == 33
    assert [row.number for row in dashboard.view().rows][:4] == [33, 32, 31, 30]


def test_dashboard_follow_restores_activity_order() -> None:
    dashboard, clock, console = make_dashboard(count=30, closed_every=1000)
    dashboard.view()
    dashboard.move_selection(1)
    dashboard.view()
    clock.now += 1
    touch(dashboard, 40019, clock.now)
    assert dashboard.view().rows[0].number == 30
    dashboard.follow_latest()
    view = dashboard.view()
    assert view.rows[0].number == 20
    assert selected_number(dashboard) == 20
    caption = caption_line(dashboard, console)
    assert "rows 1-8 of 30" in caption
    assert "order held" not in caption


# -- connections evicted at the connection limit --------------------------------------


def test_dashboard_shows_evicted_connections() -> None:
    tracker = FlowTracker(keep_segments=True, max_connections=5)
    console = Console(file=io.StringIO(), width=80, height=40)
    clock = Clock(13.0)
    dashboard = Dashboard(
        tracker, CaptureStatus("lo"), console=console, clock=clock, keys=False
    )
    for index in range(12):
        for segment in conversation(40000 + index, float(index), closed=False):
            tracker.process(segment)
    dashboard.feed._deliver(tracker.pop_finished())
    lines = render(dashboard, console)
    rows = [line for line in lines if line.split() and line.split()[0].isdigit()]
    assert len(rows) == 12
    evicted = [line for line in rows if "evicted" in line]
    assert len(evicted) == 7
    assert not any("closed" in line for line in rows)
    assert sum("transfer" in line for line in rows) == 5


# -- the table's width at 200 columns ------------------------------------------------


def test_dashboard_wide_table_fits_content() -> None:
    dashboard, _, console = make_dashboard(width=200, height=50)
    lines = render(dashboard, console)
    header = next(line for line in lines if "rtx" in line)
    endpoints = "10.0.0.1:40005 → 10.0.0.2:80"
    # The column is as wide as its widest cell, then the two-cell gap.
    column = header.index("state") - header.index("client → server")
    assert column == len(endpoints) + 2
    assert header.index("rtx") < header.index("╭─ #6") - 3


def test_dashboard_wide_table_keeps_gap_to_timeline() -> None:
    # Long IPv6 endpoints fill the table's whole width.
    client = bytes.fromhex("20010db8aaaabbbbccccdddd00000001")
    server = bytes.fromhex("20010db8aaaabbbbccccdddd00000002")
    dashboard, console = loopback_dashboard(client, server, width=200)
    console.size = (200, 50)
    lines = render(dashboard, console)
    top = next(line for line in lines if "╭─ #14" in line)
    border = top.index("╭")
    for line in lines[3:20]:
        assert line[border - 2 : border] == "  ", line


def test_footer_lines_extra_keys_first() -> None:
    lines = footer_lines("hint", True, 80, ("Space: the next segment",))
    assert lines[0].startswith("Space: the next segment · ")
    assert footer_lines("hint", False, 80, ("Space: the next segment",)) == ["hint"]


# -- the held order in tmux, with connections active every second --------------------


def trickle(
    address: str, port: int, count: int, stop: threading.Event, seconds: float = 90
) -> None:
    """Open ``count`` connections, then send one byte on each, in random order,
    every ``0.5`` s until ``stop`` is set or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    with socket.socket() as server:
        server.bind((address, port))
        server.listen()
        pairs = []
        for _ in range(count):
            client = socket.create_connection(
                (address, port), source_address=(address, 0)
            )
            conn, _ = server.accept()
            pairs.append((client, conn))
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                for client, conn in random.sample(pairs, len(pairs)):
                    client.sendall(b"x")
                    conn.recv(10)
                stop.wait(0.5)
        finally:
            for client, conn in pairs:
                client.close()
                conn.close()


def listed_numbers(screen: str) -> list[int]:
    """Return the numbers of the table's rows on an 80-column ``screen``."""
    numbers = []
    lines = screen.splitlines()
    start = next(index for index, line in enumerate(lines) if "rows " in line)
    for line in lines[start + 1 :]:
        first = line.split()[0] if line.split() else ""
        if not first.isdigit():
            break
        numbers.append(int(first))
    return numbers


def selected_on_screen(screen: str) -> int:
    title = next(line for line in screen.splitlines() if "╭─ #" in line)
    return int(title.split("#")[1].split()[0])


@pytest.mark.root
@needs_root
@needs_tmux
def test_dashboard_in_tmux_holds_order_while_selected() -> None:
    address, port = own_loopback()
    command = (
        f"{sys.executable} -m tcpwatch live lo -f 'host {address}' --duration 90;"
        " echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(command, 80, 24)
    stop = threading.Event()
    traffic = threading.Thread(target=trickle, args=(address, port, 12, stop))
    try:
        tmux.wait_for("waiting for TCP connections")
        traffic.start()
        tmux.wait_for("rows 1-8 of 12")
        tmux.keys("j")
        screen = tmux.wait_for("order held")
        listed = listed_numbers(screen)
        assert len(listed) == 8
        # A second and a half of traffic later the rows are as they were.
        time.sleep(1.5)
        screen = tmux.screen()
        assert listed_numbers(screen) == listed
        assert "rows 1-8 of 12 · order held" in screen

        tmux.keys("Home")
        tmux.wait_for(f"╭─ #{listed[0]} {address}:")
        tmux.keys(*["j"] * 5)
        screen = tmux.wait_for(f"╭─ #{listed[5]} {address}:")
        assert listed_numbers(screen) == listed

        tmux.keys("Escape")
        screen = tmux.wait_for("rows 1-8 of 12", without="order held")
        time.sleep(1.0)
        # Following the newest again: the selection is the top row.
        screen = tmux.screen()
        assert selected_on_screen(screen) == listed_numbers(screen)[0]

        tmux.keys("q")
        tmux.wait_for("EXIT=0")
    finally:
        stop.set()
        tmux.close()
        if traffic.is_alive():
            traffic.join(10)


@pytest.mark.root
@needs_root
@needs_tmux
def test_dashboard_in_tmux_shows_evicted() -> None:
    address, port = own_loopback()
    command = (
        f"{sys.executable} -m tcpwatch live lo -f 'host {address} and tcp port "
        f"{port}' --max-connections 5 --duration 60; echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(command, 80, 34)  # room for all twelve rows
    release = threading.Event()
    traffic = threading.Thread(
        target=hold_connections, args=(address, port, 12, release, 12)
    )
    try:
        tmux.wait_for("waiting for TCP connections")
        traffic.start()
        screen = tmux.wait_for("rows 1-12 of 12")
        screen = tmux.wait_for("evicted")
        assert "closed OTH" not in screen
        time.sleep(1.0)
        screen = tmux.screen()
        assert screen.count("evicted") == 7
        assert "closed" not in screen
        tmux.keys("q")
        tmux.wait_for("EXIT=0")
    finally:
        release.set()
        tmux.close()
        if traffic.is_alive():
            traffic.join(10)
