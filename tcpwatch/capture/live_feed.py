"""Continuous analysis: batches of frames through the decoder into the tracker.

This is the live counterpart of ``tcpwatch.pipeline``. A ``FrameFeed`` runs in
its own thread, so that neither the terminal nor the reader of the output can
slow the capture. It takes the tracker's lock once per batch; views take the
same lock to read the tracker between batches.

A frame source is any iterable of batches (lists of ``Frame`` tuples): a live
capture yields one batch per ring block, a replay whatever suits its pacing.
An empty batch means that time passed without packets, and the feed then
finishes connections that went idle as of ``clock()``.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tcpwatch.capture.decoder import Decoder, DecodeStats
from tcpwatch.capture.segment import Frame, Segment
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker

logger = logging.getLogger("tcpwatch.capture")


@dataclass
class CaptureStatus:
    """The counters a live view shows in its header.

    The frame source sets ``received`` and ``dropped``; the feed sets the rest.
    """

    source: str
    """Interface name, file name, or whatever names the frame source."""
    bpf_filter: str = ""
    backend: str = "native"
    started: float = field(default_factory=time.time)
    """Wall-clock time the capture started, seconds since the epoch."""
    packets: int = 0
    """Frames handed to the decoder."""
    received: int | None = None
    """Packets the kernel's filter accepted, dropped ones included; None if unknown."""
    dropped: int | None = None
    """Packets the kernel dropped because the ring was full; None if unknown."""
    finished: int = 0
    """Connections the tracker has finished, including those flushed at the end."""
    decode: DecodeStats = field(default_factory=DecodeStats)
    done: bool = False
    """True once the source is exhausted and every connection is finished."""


class FrameFeed:
    """Decode and track every frame of a source, one batch at a time.

    Args:
        tracker: the tracker to feed. Read it only while holding ``lock``.
        status: counters to update.
        on_finished: called with each finished connection, under ``lock``.
            Connections still open when the source ends are flushed and passed
            to it too.
        clock: the current time for idle expiry, in the frames' time base.
        decoder: the decoder to use; a new one by default.
        decoded: the batches carry ``Segment`` records, already decoded
            (the tshark backend), instead of frames; None stands for a
            frame without a TCP segment.
    """

    def __init__(
        self,
        tracker: FlowTracker,
        status: CaptureStatus,
        on_finished: Callable[[Connection], None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        decoder: Decoder | None = None,
        decoded: bool = False,
    ) -> None:
        self.tracker = tracker
        self.status = status
        self.on_finished = on_finished
        self.clock = clock
        self.decoder = decoder or Decoder()
        self.decoded = decoded
        if not decoded:
            status.decode = self.decoder.stats
        self.lock = threading.Lock()
        self.stop = threading.Event()
        """Set it to end the feed after the current batch."""
        self.source_stops = False
        """True when the source watches ``stop`` itself and ends soon after it
        is set. The feed then consumes what the source still yields, such as
        the packets tshark has yet to print."""
        self.error: BaseException | None = None
        """The exception that ended ``run`` in a thread, if one did."""
        self._thread: threading.Thread | None = None

    def run(
        self, batches: Iterable[Sequence[Frame] | Sequence[Segment | None]]
    ) -> None:
        """Consume ``batches`` until they end or ``stop`` is set, then flush."""
        decode = self.decoder.decode
        tracker = self.tracker
        process = tracker.process
        status = self.status
        lock = self.lock
        try:
            for batch in batches:
                with lock:
                    if batch and self.decoded:
                        status.packets += len(batch)
                        for segment in batch:
                            if segment is not None:
                                process(segment)  # type: ignore[arg-type]
                    elif batch:
                        status.packets += len(batch)
                        for ts, link_type, data, wire_length, _ in batch:  # type: ignore[misc]
                            segment = decode(ts, link_type, data, wire_length)
                            if segment is not None:
                                process(segment)
                    else:
                        tracker.expire(self.clock())
                    self._deliver(tracker.pop_finished())
                if self.stop.is_set() and not self.source_stops:
                    break
        finally:
            with lock:
                self._deliver(tracker.flush())
                status.done = True
            logger.debug(
                "feed.complete packets=%d connections=%d",
                status.packets,
                status.finished,
            )

    def start(
        self, batches: Iterable[Sequence[Frame] | Sequence[Segment | None]]
    ) -> threading.Thread:
        """Run the feed in a new daemon thread and return the thread."""

        def target() -> None:
            try:
                self.run(batches)
            except BaseException as error:  # re-raised by join()
                self.error = error

        thread = threading.Thread(target=target, name="tcpwatch-feed", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread started by ``start``; return True once it ended.

        Raises the exception that ended the thread, if any.
        """
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return True

    def _deliver(self, finished: list[Connection]) -> None:
        self.status.finished += len(finished)
        if self.on_finished is not None:
            for conn in finished:
                self.on_finished(conn)
