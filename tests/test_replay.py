"""``tcpwatch replay``: pacing, stepping, and the same records as ``read``.

Pacing is checked against a fake clock, never by measuring real time. The
dashboard tests drive the real terminal through tmux.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpwatch.capture.replay import MAX_BATCH, ReplayClock, ReplaySource, paced
from tcpwatch.capture.segment import Segment
from tcpwatch.cli.app import app
from tcpwatch.cli.replay import count_keys
from tcpwatch.demo import SCENARIOS, make_capture

runner = CliRunner()
CAPTURES = Path(__file__).parent.parent / "captures"


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def segments_at(*times: float) -> list[Segment]:
    return [
        Segment(ts, b"\x01" * 4, b"\x02" * 4, 1, 2, 0, 0, 0, 0, 0, 40, b"", b"")
        for ts in times
    ]


# -- the clock -----------------------------------------------------------------


def test_replay_clock_reads_zero_before_start():
    fake = FakeTime()
    assert ReplayClock(1.0, fake.monotonic).now() == 0.0


def test_replay_clock_scales_by_speed():
    fake = FakeTime()
    clock = ReplayClock(10.0, fake.monotonic)
    clock.rebase(1000.0)
    fake.now += 0.5
    assert clock.now() == pytest.approx(1005.0)
    assert clock.seconds_until(1010.0) == pytest.approx(0.5)


def test_replay_clock_hold_stops_time():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    clock.hold(50.0)
    fake.now += 30
    assert clock.now() == 50.0
    clock.rebase(60.0)
    fake.now += 1
    assert clock.now() == pytest.approx(61.0)


def test_replay_clock_rejects_non_positive_speed():
    with pytest.raises(ValueError, match="positive"):
        ReplayClock(0.0)


# -- pacing ----------------------------------------------------------------------


def test_paced_waits_recorded_gaps():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    batches = list(paced(segments_at(0.0, 0.5, 2.0), clock, sleep=fake.sleep))
    assert [[s.ts for s in batch] for batch in batches] == [[0.0], [0.5], [2.0]]
    assert sum(fake.sleeps) == pytest.approx(2.0)


def test_paced_slow_motion_stretches_time():
    fake = FakeTime()
    clock = ReplayClock(0.1, fake.monotonic)
    list(paced(segments_at(0.0, 0.5), clock, sleep=fake.sleep))
    assert sum(fake.sleeps) == pytest.approx(5.0)


def test_paced_fast_forward_shrinks_time():
    fake = FakeTime()
    clock = ReplayClock(10.0, fake.monotonic)
    list(paced(segments_at(0.0, 3.0), clock, sleep=fake.sleep))
    assert sum(fake.sleeps) == pytest.approx(0.3)


def test_paced_groups_due_segments():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    times = [0.0, 0.0, 0.0, 1.0, 1.0]
    batches = list(paced(segments_at(*times), clock, sleep=fake.sleep))
    assert [len(batch) for batch in batches] == [3, 2]


def test_paced_limits_batch_size():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    batches = list(paced(segments_at(*[0.0] * 600), clock, sleep=fake.sleep))
    assert [len(batch) for batch in batches] == [MAX_BATCH, MAX_BATCH, 88]


def test_paced_never_yields_empty_batch():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    batches = list(paced(segments_at(0.0, 10.0, 20.0), clock, sleep=fake.sleep))
    assert all(batches)


def test_paced_sleeps_in_short_slices():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    list(paced(segments_at(0.0, 1.0), clock, sleep=fake.sleep))
    assert max(fake.sleeps) <= 0.1 + 1e-9


def test_paced_stop_ends_during_wait():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    batches = paced(
        segments_at(0.0, 60.0),
        clock,
        sleep=fake.sleep,
        stop=lambda: fake.now > 101.0,
    )
    assert [len(batch) for batch in batches] == [1]
    assert fake.now < 102.0


def test_paced_step_releases_one_segment_per_call():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    asked: list[float] = []

    def step(segment: Segment) -> bool:
        asked.append(segment.ts)
        return len(asked) < 3

    batches = list(paced(segments_at(0.0, 5.0, 9.0, 12.0), clock, step=step))
    assert [[s.ts for s in batch] for batch in batches] == [[0.0], [5.0]]
    assert asked == [0.0, 5.0, 9.0]
    assert fake.sleeps == []


def test_paced_step_holds_clock_at_segment():
    fake = FakeTime()
    clock = ReplayClock(1.0, fake.monotonic)
    for batch in paced(segments_at(7.0), clock, step=lambda segment: True):
        fake.now += 100
        assert clock.now() == batch[0].ts


def test_step_keys_counted():
    assert count_keys(b"   ") == (3, False, [])
    assert count_keys(b"\x1b[C\n") == (2, False, [])
    assert count_keys(b"\x1bOCn\r") == (3, False, [])
    assert count_keys(b" q ") == (1, True, [])
    assert count_keys(b"x") == (0, False, [b"x"])


def test_step_keys_pass_on_dashboard_keys() -> None:
    typed = count_keys(b"j \x1b[A\x1b?\x1b[C[")
    assert typed.steps == 2
    assert not typed.quit_requested
    assert typed.others == [b"j", b"\x1b[A", b"\x1b", b"?", b"["]


def test_step_keys_stop_at_quit() -> None:
    typed = count_keys(b"jq k")
    assert typed.quit_requested
    assert typed.others == [b"j"]
    assert typed.steps == 0


# -- same records as read ------------------------------------------------------------


def records(args: list[str]) -> list[dict[str, object]]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return sorted((json.loads(line) for line in lines), key=lambda r: str(r["uid"]))


def replay_equals_read(path: Path) -> None:
    expected = records(["read", str(path), "--format", "json"])
    replayed = records(["replay", str(path), "--speed", "1e9", "--format", "json"])
    assert len(replayed) == len(expected)
    assert replayed == expected


@pytest.mark.parametrize(
    "name", ["mixed.pcap", "mixed.pcapng", "abort-rst.pcap", "ipv6-exchange.pcap"]
)
def test_replay_same_records_as_read(name: str):
    replay_equals_read(CAPTURES / name)


@pytest.mark.parametrize("scenario", ["loss", "zero-window", "bulk", "no-reply"])
def test_replay_same_records_as_read_synthesised(scenario: str, tmp_path: Path):
    capture = make_capture(SCENARIOS[scenario], tmp_path / "s.pcap", synthesise=True)
    replay_equals_read(capture.path)


def test_replay_source_orders_like_read():
    source = ReplaySource([str(CAPTURES / "mixed.pcapng")])
    stamps = [segment.ts for segment in source]
    assert stamps == sorted(stamps)
    assert source.decoder.stats.tcp == len(stamps)


def test_replay_plain_table_when_piped():
    result = runner.invoke(
        app,
        ["replay", str(CAPTURES / "refused.pcap"), "--speed", "1e9"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "rejected" in result.stdout
    assert "REJ" in result.stdout


def test_replay_step_needs_terminal():
    result = runner.invoke(app, ["replay", str(CAPTURES / "mixed.pcap"), "--step"])
    assert result.exit_code == 2
    assert "--step needs a terminal" in result.output


def test_replay_unknown_format():
    result = runner.invoke(
        app, ["replay", str(CAPTURES / "mixed.pcap"), "--format", "yaml"]
    )
    assert result.exit_code == 2
    assert "'yaml'" in result.output


def test_replay_missing_file(tmp_path: Path):
    missing = tmp_path / "none.pcap"
    result = runner.invoke(app, ["replay", str(missing)])
    assert result.exit_code == 2
    assert str(missing) in result.output


# -- the dashboard in a real terminal --------------------------------------------------

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Terminal:
    """A tmux session running one command, read with capture-pane.

    Each terminal has a tmux server of its own (``-L``): sessions on the
    default server race with its shutdown when the previous test's last
    session has just ended ("server exited unexpectedly").
    """

    def __init__(self, command: str, width: int = 120, height: int = 36) -> None:
        self.name = f"tcpwatch-test-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                *self.tmux,
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(width),
                "-y",
                str(height),
                f"{command}; sleep 30",
            ],
            check=True,
        )

    def screen(self) -> str:
        done = subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    @property
    def tmux(self) -> list[str]:
        return ["tmux", "-L", self.name]

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False)
        # tmux 3.3 leaves the socket file behind after kill-server.
        sockets = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (sockets / self.name).unlink(missing_ok=True)


@pytest.fixture
def zero_window_capture(tmp_path: Path) -> Path:
    path = tmp_path / "zero-window.pcap"
    make_capture(SCENARIOS["zero-window"], path, synthesise=True)
    return path


def tcpwatch_command(*args: str) -> str:
    quoted = " ".join(f"'{arg}'" for arg in args)
    return f"{sys.executable} -m tcpwatch {quoted}"


@needs_tmux
def test_replay_dashboard_in_terminal(zero_window_capture: Path):
    pytest.importorskip("tcpwatch.render.dashboard")
    terminal = Terminal(
        tcpwatch_command("replay", str(zero_window_capture), "--speed", "0.5")
    )
    try:
        screen = terminal.wait_for("replay zero-window.pcap (×0.5)")
        assert "192.0.2.10:51514" in screen
        screen = terminal.wait_for("[zero window]")
        assert "originator 192.0.2.10:51514" in screen
        # The replay ends with the table of connections.
        screen = terminal.wait_for("frames: 40 TCP")
        assert "complete" in screen
        assert "SF" in screen
    finally:
        terminal.close()


@needs_tmux
def test_replay_step_mode_in_terminal(zero_window_capture: Path):
    pytest.importorskip("tcpwatch.render.dashboard")
    terminal = Terminal(tcpwatch_command("replay", str(zero_window_capture), "--step"))
    try:
        terminal.wait_for("(step)")
        terminal.wait_for("packets 0 ")
        terminal.keys("Space")
        terminal.wait_for("packets 1 ")
        terminal.keys("Space", "Space", "Right")
        terminal.wait_for("packets 4 ")
        # The panel may be drawn one refresh after the header's count.
        terminal.wait_for("SYN,ACK seq=0 ack=1")
        time.sleep(0.5)
        assert "packets 4 " in terminal.screen()  # no key, no segment
        terminal.keys("q")
        # After the dashboard: the table of connections and what was replayed.
        screen = terminal.wait_for("replay stopped after 4 TCP segments")
        assert "S1" in screen
        assert "40 TCP" not in screen
    finally:
        terminal.close()


@needs_tmux
def test_replay_step_waits_after_last_segment():
    pytest.importorskip("tcpwatch.render.dashboard")
    path = CAPTURES / "refused.pcap"
    terminal = Terminal(tcpwatch_command("replay", str(path), "--step"))
    try:
        screen = terminal.wait_for("(step)")
        assert "Space/Enter/→ next segment · ↑/↓ j/k select · ? keys · q quit" in screen
        terminal.keys("Space")
        terminal.wait_for("packets 1 ")
        terminal.keys("Space")
        # The RST is on the ladder, and the replay waits for one more key.
        screen = terminal.wait_for("end of capture")
        assert "packets 2 " in screen
        assert "RST" in screen
        time.sleep(0.5)
        assert "end of capture" in terminal.screen()
        terminal.keys("Space")
        screen = terminal.wait_for("1 connection; 2 frames: 2 TCP")
        assert "rejected" in screen
    finally:
        terminal.close()


def test_replay_summary_line_matches_read():
    path = str(CAPTURES / "mixed.pcap")
    read = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", path, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpwatch",
            "replay",
            path,
            "--speed",
            "1e9",
            "-F",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    assert replay.stderr.splitlines()[-1] == read.stderr.splitlines()[-1]
    assert " connections; " in replay.stderr.splitlines()[-1]


def test_replay_help_lists_keys():
    result = runner.invoke(app, ["replay", "--help"], env={"COLUMNS": "200"})
    assert "j/k" in result.output
    assert "Esc" in result.output
    assert "Space" in result.output


@needs_tmux
def test_replay_timeline_scrolls_in_terminal(zero_window_capture: Path):
    terminal = Terminal(
        tcpwatch_command("replay", str(zero_window_capture), "--speed", "0.1"),
        width=80,
        height=24,
    )
    try:
        terminal.wait_for("lines above · [ scrolls up")
        terminal.keys("[")
        screen = terminal.wait_for("lines below · ] scrolls down")
        assert "originator 192.0.2.10:51514" in screen
        terminal.keys("?")
        terminal.wait_for("[/] or Shift+↑/↓: scroll the timeline")
        terminal.keys("q")
        terminal.wait_for("replay stopped after")
    finally:
        terminal.close()


@needs_tmux
def test_replay_step_mode_keys_in_terminal() -> None:
    path = CAPTURES / "mixed.pcap"
    terminal = Terminal(tcpwatch_command("replay", str(path), "--step"), 80, 24)
    try:
        screen = terminal.wait_for("(step)")
        assert "j/k select" in screen
        terminal.keys(*["Space"] * 40)
        screen = terminal.wait_for("packets 40 ")
        rows = [
            int(line.split()[0])
            for line in screen.splitlines()
            if line.split() and line.split()[0].isdigit()
        ]
        assert len(rows) >= 2, screen
        terminal.wait_for(f"╭─ #{rows[0]} ")
        # j selects the second row, and the order is held while it is selected.
        terminal.keys("j")
        screen = terminal.wait_for(f"╭─ #{rows[1]} ")
        assert "order held" in screen
        terminal.keys("Space")
        screen = terminal.wait_for("packets 41 ")
        assert f"╭─ #{rows[1]} " in screen
        terminal.keys("End")
        terminal.wait_for(f"╭─ #{min(rows)} ")
        terminal.keys("?")
        screen = terminal.wait_for("Space/Enter/n/→: the next segment")
        assert "Esc: follow the newest connection" in screen
        terminal.keys("?")
        terminal.wait_for("? keys · q quit")
        terminal.keys("Escape")
        deadline = time.monotonic() + 15
        while "order held" in terminal.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        screen = terminal.screen()
        assert "order held" not in screen
        # Following the newest again: the top row, in activity order.
        top = next(line for line in screen.splitlines() if line[:1].isdigit())
        terminal.wait_for(f"╭─ #{top.split()[0]} ")
        terminal.keys("q")
        terminal.wait_for("replay stopped after 41 TCP segments")
    finally:
        terminal.close()


def test_replay_filter_matches_read_filter() -> None:
    path = str(CAPTURES / "mixed.pcap")
    common = [path, "-F", "json", "-f", "port 54185"]
    read = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", *common],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    replay = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "replay", *common, "--speed", "1e9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(read.stdout.splitlines()) == 3
    assert replay.stdout == read.stdout
    assert replay.stderr.splitlines()[-1] == read.stderr.splitlines()[-1]
