"""The live dashboard: rendered to a string console, and for real in tmux."""

import io
import os
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
from tcpwatch.capture.segment import ACK, FIN, PSH
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.render.dashboard import Dashboard

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
    assert "connections 4 open, 2 finished" in lines[1]
    assert "totals SF 2" in lines[2]
    assert "connection" in lines[3]
    assert "state" in lines[3]


def test_dashboard_narrow_rows_show_responder() -> None:
    dashboard, _, console = make_dashboard()
    text = "\n".join(render(dashboard, console))
    assert ":40005 → 10.0.0.2:80" in text
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


def test_dashboard_finished_rows_linger_then_leave() -> None:
    dashboard, clock, _ = make_dashboard(count=1, closed_every=1)
    rows = dashboard.view().rows
    assert [row.state for row in rows] == ["SF"]
    assert rows[0].finished
    clock.now += dashboard.linger + 1
    assert dashboard.view().rows == []
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


def hold_connections(port: int, count: int, release: threading.Event) -> None:
    """Open ``count`` connections on loopback, close the first, hold the rest."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        pairs = []
        for index in range(count):
            client = socket.create_connection(("127.0.0.1", port))
            conn, _ = server.accept()
            client.sendall(b"x" * (index + 1) * 10)
            conn.recv(1000)
            pairs.append((client, conn))
            time.sleep(0.05)
        pairs[0][0].close()
        pairs[0][1].close()
        release.wait(60)
        for client, conn in pairs[1:]:
            client.close()
            conn.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.root
@needs_root
@needs_tmux
@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_dashboard_in_tmux(size: tuple[int, int]) -> None:
    width, height = size
    port = free_port()
    command = (
        f"{sys.executable} -m tcpwatch live lo -f 'tcp port {port}' --duration 60; "
        "echo EXIT=$?; sleep 60"
    )
    tmux = Tmux(command, width, height)
    release = threading.Event()
    traffic = threading.Thread(target=hold_connections, args=(port, 4, release))
    try:
        tmux.wait_for("waiting for TCP connections")
        traffic.start()
        screen = tmux.wait_for("closed SF")
        lines = screen.splitlines()
        assert lines[0].startswith("tcpwatch lo  filter: tcp port")
        assert "dropped 0" in lines[1]
        assert "connections 4 open" in screen
        assert "transfer" in screen
        assert "╭─ #1 127.0.0.1:" in screen  # the last active: #1 closed last

        tmux.keys("j")
        screen = tmux.wait_for("╭─ #4 127.0.0.1:")
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
