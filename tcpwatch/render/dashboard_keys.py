"""Keys for the live dashboard, read from its terminal in a thread.

The arrow keys or j and k move the selection, Escape follows the most recent
connection again, and q stops the dashboard.
"""

import os
import select
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcpwatch.render.dashboard import Dashboard


class KeyReader:
    """Read selection keys from a terminal in a thread, in cbreak mode."""

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
        dashboard = self.dashboard
        while not self._closed.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            keys = os.read(self.fd, 32)
            if keys in (b"\x1b[A", b"k"):
                dashboard.move_selection(-1)
            elif keys in (b"\x1b[B", b"j"):
                dashboard.move_selection(1)
            elif keys == b"\x1b":
                dashboard.follow_latest()
            elif keys in (b"q", b"Q"):
                dashboard.stop()
