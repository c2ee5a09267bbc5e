"""Capture contents and file names must reach the terminal as inert text.

Payload previews, pcapng comments and interface names, and file names in
error messages carry rich markup (``[bold red]``), ANSI escape sequences
(``\\x1b[2J`` clears the screen, ``\\x1b]0;...\\x07`` sets the window title)
and other control characters. Each must print literally or escaped. The
last tests run the real command in a tmux pane and read the screen back.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fuzzing import pcapng_bytes, read_frames
from scripted import Conversation, write_pcap

from tcpwatch.capture.segment import ACK, FIN, PSH
from tcpwatch.errors import CaptureFileError
from tcpwatch.render.style import printable

# Each payload starts with its hostile part, because a preview shows only the
# first 32 characters.
PAYLOADS = (
    b"[bold red]RED[/bold red] payload",
    b"\x1b[2J\x1b[H cleared the screen",
    b"\x1b]0;pwned-title\x07 set the title",
    b"\x1b]8;;http://example.invalid/\x1b\\link\x1b]8;;\x1b\\",
    b"\x9b31m C1 control sequence introducer",
    b"[link=http://example.invalid]x[/link] text",
    b"<script>alert(1)</script> for HTML",
)

# What the screen or the file must show for each payload: the markup as
# typed, the control characters as \xNN escapes.
SHOWN = (
    "[bold red]RED[/bold red]",
    "\\x1b[2J\\x1b[H",
    "\\x1b]0;pwned-title\\x07",
    "\\x1b]8;;http://exa",
    "\\x9b31m C1",
    "[link=http://example.invalid]x[/",
)

HOSTILE_NAMES = (
    "[bold red]name",
    "title\x1b]0;pwned-title\x07",
    "clear\x1b[2J",
    "bell\x07\x08back",
)

# Any C0 control but newline, DEL, and the C1 controls.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]")
SGR = re.compile("\x1b\\[[0-9;]*m")


def hostile_capture(path: Path) -> Path:
    """Write one connection whose data segments carry ``PAYLOADS``."""
    talk = Conversation()
    talk.handshake()
    for index, payload in enumerate(PAYLOADS):
        sender = talk.client if index % 2 == 0 else talk.server
        sender(PSH | ACK, len(payload), payload=payload)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    write_pcap(talk.segments, str(path))
    return path


def tcpwatch(
    *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    environment.update(COLUMNS="200", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "tcpwatch", *args],
        capture_output=True,
        timeout=120,
        check=False,
        env=environment,
    )


def check_inert(output: bytes) -> str:
    """Check that the output contains no control character but newlines."""
    text = output.decode("utf-8")
    found = CONTROL.findall(text)
    assert found == [], f"control characters reached the output: {found!r}"
    return text


# Payload previews ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["timeline", "--explain"], ["read", "--timeline", "--explain"]],
    ids=["timeline", "read"],
)
def test_injection_payload_preview_piped(tmp_path: Path, command: list[str]) -> None:
    path = hostile_capture(tmp_path / "payloads.pcap")

    done = tcpwatch(command[0], str(path), *command[1:])

    assert done.returncode == 0, done.stderr
    text = check_inert(done.stdout)
    for shown in SHOWN:
        assert shown in text


def test_injection_payload_preview_in_colour(tmp_path: Path) -> None:
    """With colours forced, only rich's own SGR sequences may appear."""
    path = hostile_capture(tmp_path / "payloads.pcap")

    done = tcpwatch(
        "timeline", str(path), "--explain", env={"FORCE_COLOR": "1", "TERM": "xterm"}
    )

    assert done.returncode == 0, done.stderr
    assert SGR.search(done.stdout.decode()) is not None
    text = check_inert(SGR.sub("", done.stdout.decode()).encode())
    for shown in SHOWN:
        assert shown in text


def test_injection_payload_preview_in_html_and_svg(tmp_path: Path) -> None:
    path = hostile_capture(tmp_path / "payloads.pcap")
    html, svg = tmp_path / "out.html", tmp_path / "out.svg"

    done = tcpwatch(
        "timeline", str(path), "--explain", "--html", str(html), "--svg", str(svg)
    )

    assert done.returncode == 0, done.stderr
    for saved in (html.read_text(), svg.read_text()):
        assert "<script>alert" not in saved
        assert CONTROL.findall(saved) == []
    assert "&lt;script&gt;alert(1)" in html.read_text()


def test_injection_mermaid_export(tmp_path: Path) -> None:
    path = hostile_capture(tmp_path / "payloads.pcap")

    done = tcpwatch("read", str(path), "--format", "mermaid", "--explain")

    assert done.returncode == 0, done.stderr
    check_inert(done.stdout)


# pcapng comments and interface names --------------------------------------------


def test_injection_pcapng_comments_and_interface_name(tmp_path: Path) -> None:
    hostile = b"[bold red]X\x1b[2J\x1b]0;pwned-title\x07"
    frames = read_frames(hostile_capture(tmp_path / "payloads.pcap"))
    path = tmp_path / "comments.pcapng"
    path.write_bytes(
        pcapng_bytes(
            frames,
            101,
            section_comment=hostile,
            interface_name=hostile,
            packet_comment=hostile,
        )
    )

    for command in (["read"], ["read", "-F", "json"], ["timeline", "--explain"]):
        done = tcpwatch(command[0], str(path), *command[1:])
        assert done.returncode == 0, done.stderr
        check_inert(done.stdout)
        check_inert(done.stderr)


# File names ----------------------------------------------------------------------


def cut_capture(directory: Path, name: str | bytes) -> bytes:
    """Write a capture cut inside its last record under ``name``; return the path."""
    content = hostile_capture(directory / "whole.pcap").read_bytes()
    path = os.path.join(os.fsencode(directory), os.fsencode(name))
    with open(path, "wb") as stream:
        stream.write(content[:-7])
    return path


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_injection_file_name_in_read_error(tmp_path: Path, name: str) -> None:
    path = cut_capture(tmp_path, name + ".pcap")

    done = tcpwatch("read", path, "-F", "json")

    assert done.returncode == 1
    stderr = check_inert(done.stderr)
    assert printable(name) + ".pcap at byte" in stderr
    assert done.stdout.count(b'"uid"') == 1


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_injection_file_name_in_open_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / (name + ".pcap")
    path.write_bytes(b"not a capture")

    done = tcpwatch("read", str(path))

    assert done.returncode == 2
    stderr = check_inert(done.stderr)
    assert printable(name) + ".pcap at byte 0" in stderr


def test_injection_file_name_not_utf8(tmp_path: Path) -> None:
    """A name that is not UTF-8 is shown with its bytes escaped, not a crash."""
    path = cut_capture(tmp_path, b"latin-\xe9-\xff.pcap")

    done = tcpwatch("read", path, "-F", "json")

    assert done.returncode == 1
    stderr = check_inert(done.stderr)
    assert "Traceback" not in stderr
    assert "latin-\\xe9-\\xff.pcap at byte" in stderr


def test_injection_missing_file_name(tmp_path: Path) -> None:
    path = tmp_path / "gone\x1b]0;pwned-title\x07.pcap"

    done = tcpwatch("timeline", str(path))

    assert done.returncode == 2
    stderr = check_inert(done.stderr)
    assert "gone\\x1b]0;pwned-title\\x07.pcap" in stderr


def test_injection_error_reason_from_another_program() -> None:
    """A reason quoting another program's message is escaped as well."""
    error = CaptureFileError("cap.pcap", "tshark: \x1b]0;pwned-title\x07 failed", 8)

    assert str(error) == "cap.pcap at byte 8: tshark: \\x1b]0;pwned-title\\x07 failed"
    assert error.reason == "tshark: \x1b]0;pwned-title\x07 failed"


# The real terminal ------------------------------------------------------------------


class Tmux:
    """A tmux server of its own with one 120x40 pane running a plain shell."""

    def __init__(self, cwd: Path) -> None:
        self.socket = f"tcpwatch-test-{uuid.uuid4().hex[:12]}"
        self.cwd = cwd
        self.run(
            "new-session", "-d", "-x", "120", "-y", "40", "-c", str(cwd),
            "env", "PS1=$ ", "bash", "--norc", "--noprofile",
        )  # fmt: skip
        self.run("select-pane", "-T", "original-title")
        self.socket_path = self.value("socket_path")

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def type(self, line: str) -> None:
        self.run("send-keys", "-l", line)
        self.run("send-keys", "Enter")

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen(history=True)
            if marker in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{marker!r} did not appear: {self.screen()!r}")

    def screen(self, history: bool = False) -> str:
        start = ["-S", "-"] if history else []
        return self.run("capture-pane", "-p", "-J", *start)

    def value(self, name: str) -> str:
        return self.run("display-message", "-p", f"#{{{name}}}").strip()

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False)
        # tmux 3.3 leaves the socket file behind after kill-server.
        Path(self.socket_path).unlink(missing_ok=True)


@pytest.fixture
def tmux(tmp_path: Path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    session = Tmux(tmp_path)
    try:
        yield session
    finally:
        session.kill()


def shell_command(*args: str) -> str:
    """Return a shell line that runs tcpwatch with ``args`` quoted by printf."""
    quoted = " ".join(f"\"$(printf '%b' '{arg}')\"" for arg in args)
    return f"COLUMNS=120 {sys.executable} -m tcpwatch {quoted}"


def test_injection_terminal_timeline(tmux: Tmux, tmp_path: Path) -> None:
    hostile_capture(tmp_path / "payloads.pcap")
    tmux.type("echo MARKER-BEFORE")

    tmux.type(shell_command("timeline", "payloads.pcap", "--explain") + "; echo DONE")

    screen = tmux.wait_for("\nDONE")
    assert tmux.value("pane_title") == "original-title"
    assert tmux.value("window_bell_flag") == "0"
    assert "MARKER-BEFORE" in screen
    flat = screen.replace("\n", "")
    for shown in SHOWN[:3]:
        assert shown in flat


def test_injection_terminal_file_name(tmux: Tmux, tmp_path: Path) -> None:
    # The name's escapes are written as printf escapes, so the shell line
    # itself stays plain text.
    name = "t\\033]0;pwned-title\\007c\\033[2J[bold red]x.pcap"
    (tmp_path / "t\x1b]0;pwned-title\x07c\x1b[2J[bold red]x.pcap").write_bytes(
        b"garbage"
    )
    tmux.type("clear; echo MARKER-BEFORE")
    tmux.wait_for("MARKER-BEFORE")

    tmux.type(shell_command("read", name) + "; echo DONE")

    screen = tmux.wait_for("\nDONE")
    visible = tmux.screen()
    assert tmux.value("pane_title") == "original-title"
    assert tmux.value("window_bell_flag") == "0"
    assert "MARKER-BEFORE" in visible
    assert "t\\x1b]0;pwned-title\\x07c\\x1b[2J[bold red]x.pcap" in screen
