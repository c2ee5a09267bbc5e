"""Keys for the live dashboard, read from its terminal in a thread.

The arrow keys or j and k move the selection. PgUp, PgDn, Home and End (or
g and G) move it a page or to either end. [ and ] (or Shift with the up and
down arrows) scroll the timeline. Escape follows the most recent connection
again, ? or h shows every key, and q stops the dashboard.
"""

import os
import select
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcpwatch.render.dashboard import Dashboard

_ESC = 0x1B

# Terminals send Home and End in several forms, depending on terminfo and on
# the cursor key mode: xterm's CSI H and SS3 H, and the VT220 CSI 1~ and 7~.
KEY_ACTIONS: dict[bytes, Callable[["Dashboard"], None]] = {
    b"k": lambda dashboard: dashboard.move_selection(-1),
    b"\x1b[A": lambda dashboard: dashboard.move_selection(-1),
    b"\x1bOA": lambda dashboard: dashboard.move_selection(-1),
    b"j": lambda dashboard: dashboard.move_selection(1),
    b"\x1b[B": lambda dashboard: dashboard.move_selection(1),
    b"\x1bOB": lambda dashboard: dashboard.move_selection(1),
    b"\x1b[5~": lambda dashboard: dashboard.move_page(-1),
    b"\x1b[6~": lambda dashboard: dashboard.move_page(1),
    b"g": lambda dashboard: dashboard.select_end(last=False),
    b"\x1b[H": lambda dashboard: dashboard.select_end(last=False),
    b"\x1bOH": lambda dashboard: dashboard.select_end(last=False),
    b"\x1b[1~": lambda dashboard: dashboard.select_end(last=False),
    b"\x1b[7~": lambda dashboard: dashboard.select_end(last=False),
    b"G": lambda dashboard: dashboard.select_end(last=True),
    b"\x1b[F": lambda dashboard: dashboard.select_end(last=True),
    b"\x1bOF": lambda dashboard: dashboard.select_end(last=True),
    b"\x1b[4~": lambda dashboard: dashboard.select_end(last=True),
    b"\x1b[8~": lambda dashboard: dashboard.select_end(last=True),
    b"[": lambda dashboard: dashboard.scroll_timeline(-1),
    b"\x1b[1;2A": lambda dashboard: dashboard.scroll_timeline(-1),
    b"]": lambda dashboard: dashboard.scroll_timeline(1),
    b"\x1b[1;2B": lambda dashboard: dashboard.scroll_timeline(1),
    b"\x1b": lambda dashboard: dashboard.follow_latest(),
    b"?": lambda dashboard: dashboard.toggle_help(),
    b"h": lambda dashboard: dashboard.toggle_help(),
    b"q": lambda dashboard: dashboard.stop(),
    b"Q": lambda dashboard: dashboard.stop(),
}
"""The action of each key, by the bytes the terminal sends for it."""


def split_keys(typed: bytes) -> list[bytes]:
    """Split bytes read from a terminal into one item per key.

    One read can hold several keys, such as "jjj" or two arrows. An escape
    sequence is CSI (ESC [, parameter and intermediate bytes, a final byte
    from 0x40 to 0x7E) or SS3 (ESC O and one byte); any other ESC is the
    Escape key. A sequence cut off by the end of ``typed`` is one item.
    """
    keys: list[bytes] = []
    index = 0
    while index < len(typed):
        end = index + 1
        if typed[index] == _ESC and end < len(typed):
            if typed[end : end + 1] == b"[":
                end += 1
                while end < len(typed) and not 0x40 <= typed[end] <= 0x7E:
                    end += 1
                end = min(end + 1, len(typed))
            elif typed[end : end + 1] == b"O":
                end = min(end + 2, len(typed))
        keys.append(typed[index:end])
        index = end
    return keys


def press_keys(dashboard: "Dashboard", typed: bytes) -> None:
    """Act on each key in ``typed``; keys without an action are ignored."""
    for key in split_keys(typed):
        action = KEY_ACTIONS.get(key)
        if action is not None:
            action(dashboard)


class KeyReader:
    """Read the dashboard's keys from a terminal in a thread, in cbreak mode."""

    def __init__(self, dashboard: "Dashboard") -> None:
        self.dashboard = dashboard
        self.fd = sys.stdin.fileno()
        self._closed = threading.Event()
        self._saved: Any = None
        self._thread = threading.Thread(
            target=self._loop, name="tcpwatch-keys", daemon=True
        )

    def start(self) -> None:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self._thread.start()

    def close(self) -> None:
        import termios

        self._closed.set()
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _loop(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                press_keys(self.dashboard, os.read(self.fd, 64))
