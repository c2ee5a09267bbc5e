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
from tcpwatch.render.dashboard import Dashboard, fit_endpoints

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
    assert "lines not shown" in text
    assert "SYN" in text


# -- the real thing in tmux ------------------------------------------------------

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


class Tmux:
    """A detached tmux session running one command, read with capture-pane."""

    def __init__(self, command: str, width: int, height: int) -> None:
        self.name = f"tcpwatch-dash-{os.getpid()}-{width}"
        size = ["-x", str(width), "-y", str(height)]
        arguments = ["tmux", "new-session", "-d", "-s", self.name, *size, command]
        # A tmux server whose last session was just killed can still be
        # shutting down, and then refuses new sessions for a moment.
        for _ in range(20):
            result = subprocess.run(arguments, capture_output=True, text=True)
            if result.returncode == 0:
                return
            time.sleep(0.25)
        raise AssertionError(f"tmux new-session failed: {result.stderr}")

    def screen(self) -> str:
        result = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
        )
        return result.stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not on screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


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


def test_dashboard_80_columns_shorten_ipv6_from_left() -> None:
    client = bytes.fromhex("20010db8aaaabbbbccccdddd00000001")
    server = bytes.fromhex("20010db8aaaabbbbccccdddd00000002")
    dashboard, console = loopback_dashboard(client, server)
    lines = render(dashboard, console)
    row = next(line for line in lines if line.lstrip().startswith("14 "))
    assert "…" in row
    assert "0:1]:58624 → " in row
    assert "0:2]:54185" in row
    assert "transfer" in row


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
        (40, "127.0.0.1:58624 → 127.0.0.1:54185"),
        (33, "127.0.0.1:58624 → 127.0.0.1:54185"),
        (32, "…7.0.0.1:58624 → 127.0.0.1:54185"),
        (31, "…7.0.0.1:58624 → …7.0.0.1:54185"),
        (24, "…0.1:58624 → ….0.1:54185"),
        (10, "…1:58624 → …1:54185"),
    ],
)
def test_fit_endpoints_cuts_hosts_from_left(width: int, expected: str) -> None:
    assert fit_endpoints("127.0.0.1:58624", "127.0.0.1:54185", width) == expected


def test_fit_endpoints_keeps_ipv6_ports() -> None:
    shown = fit_endpoints("[2001:db8::1]:40000", "[2001:db8::2]:443", 28)
    assert len(shown) == 28
    assert shown.endswith("::2]:443")
    assert ":40000 → " in shown


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
    assert "Up/Down or j/k select" in result.stdout
    assert "Esc follows the newest" in result.stdout
    assert "q stops" in result.stdout
