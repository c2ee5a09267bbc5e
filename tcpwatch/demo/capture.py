"""Capturing a demo's loopback traffic to a pcap file with tcpwatch's live capture."""

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from tcpwatch.capture.segment import Frame

logger = logging.getLogger("tcpwatch.demo")

SETTLE = 0.3
"""Seconds to keep capturing after the scenario, for its last packets. The
ring hands over a partly filled block after 60 ms, so this covers it."""
JOIN_TIMEOUT = 5.0
"""Seconds to wait for the capture thread to finish after it is told to stop."""


def capture_unavailable() -> str:
    """Return why a loopback capture cannot run (``no_root``), or ""."""
    if os.geteuid() != 0:
        return "no_root"
    return ""


class _Counters:
    """The kernel's counters, as ``capture_batches`` reports them."""

    received: int | None = None
    dropped: int | None = None


class LoopbackCapture:
    """Capture one loopback connection, named by its two ports, while the block runs.

    Both ports go into the filter: a filter on the server's port alone also
    catches any other program's connection that happens to use that number as
    its own ephemeral port.

    The packet socket and its filter are in place when ``__enter__`` returns,
    so the scenario's first SYN is captured. Frames are written to ``path``
    as they arrive, from a thread.
    """

    def __init__(self, path: Path, port: int, client_port: int) -> None:
        self.path = path
        self.port = port
        self.client_port = client_port
        self.dropped = 0
        """Packets the kernel dropped before they could be read."""
        self._counters = _Counters()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> "LoopbackCapture":
        from tcpwatch.capture import live

        self._capture = live.LiveCapture(
            "lo",
            bpf_filter=(
                f"tcp and host 127.0.0.1 and port {self.port}"
                f" and port {self.client_port}"
            ),
            snaplen=live.WRITE_SNAPLEN,
            promiscuous=False,
        )
        try:
            self._writer = live.PcapWriter(
                str(self.path), self._capture.link_type, live.WRITE_SNAPLEN
            )
        except BaseException:
            self._capture.close()
            raise
        batches = live.capture_batches(
            self._capture, self._counters, self._stop, writer=self._writer
        )
        self._thread = threading.Thread(
            target=self._drain, args=(batches,), name="tcpwatch-demo", daemon=True
        )
        self._thread.start()
        logger.debug("demo.capture.started port=%d path=%s", self.port, self.path)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        time.sleep(SETTLE)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
        self._writer.close()
        self._capture.close()
        self.dropped = self._counters.dropped or 0
        logger.debug("demo.capture.complete dropped=%d", self.dropped)
        if self._error is not None and exc_type is None:
            raise self._error

    def _drain(self, batches: Iterator[list[Frame]]) -> None:
        try:
            for _ in batches:
                pass
        except BaseException as error:  # re-raised by __exit__
            logger.debug("demo.capture.failed error=%s", error)
            self._error = error
