"""Replaying a capture file at its recorded pace, as a live source.

A replay reads the file's segments exactly as ``tcpwatch.pipeline`` does
(same decoder, same reordering), then releases them in batches when their
recorded time comes: at the capture's own pace with ``speed=1``, in slow
motion below 1, faster above it. In step mode, each segment waits for the
caller's go-ahead instead of the clock.

``ReplayClock`` returns the current time in the capture's time base, so that a
live view shows ages and durations as they were recorded. The replay never
yields empty batches: a view that expires idle connections on an empty batch
would otherwise finish them at other moments than ``tcpwatch read`` does, and
the records of a replay must equal those of a read.
"""

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from tcpwatch.capture.decoder import Decoder
from tcpwatch.capture.pcapfile import MergedCapture
from tcpwatch.capture.segment import Frame, Segment
from tcpwatch.flow.reorder import ReorderBuffer

if TYPE_CHECKING:
    from tcpwatch.capture.bpf import FrameFilter

MAX_BATCH = 256
"""Most segments released in one batch when many are due at once."""
MAX_SLEEP = 0.1
"""Longest single sleep, so a stop request is noticed within this many seconds."""
MIN_WAIT = 0.0005
"""Seconds below which a segment counts as due: shorter sleeps cost more than
they pace, and rounding could otherwise leave a wait that never reaches 0."""


class ReplayClock:
    """Capture time during a replay: recorded time, scaled by ``speed``.

    Before the first ``rebase`` the clock reads 0. ``rebase`` makes the clock
    read a given capture time from now on, and ``hold`` stops it there: step
    mode holds the clock at each segment, so waiting for a key takes no time.
    """

    def __init__(
        self, speed: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError(f"replay speed must be positive, got {speed!r}")
        self.speed = speed
        self._monotonic = monotonic
        self._capture_base: float | None = None
        self._wall_base = 0.0
        self._held = False

    @property
    def started(self) -> bool:
        return self._capture_base is not None

    def rebase(self, capture_time: float) -> None:
        """Make the clock read ``capture_time`` now and run on from there."""
        self._capture_base = capture_time
        self._wall_base = self._monotonic()
        self._held = False

    def hold(self, capture_time: float) -> None:
        """Stop the clock at ``capture_time`` until the next ``rebase``."""
        self.rebase(capture_time)
        self._held = True

    def now(self) -> float:
        """Return the current capture time, or 0 before the first segment."""
        if self._capture_base is None:
            return 0.0
        if self._held:
            return self._capture_base
        elapsed = self._monotonic() - self._wall_base
        return self._capture_base + elapsed * self.speed

    def seconds_until(self, capture_time: float) -> float:
        """Return the wall-clock seconds left until ``capture_time`` is due."""
        if self._capture_base is None:
            return 0.0
        return (capture_time - self.now()) / self.speed


def paced(
    segments: Iterable[Segment],
    clock: ReplayClock,
    *,
    step: Callable[[Segment], bool] | None = None,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Sequence[Segment]]:
    """Yield ``segments`` in batches, each segment once its recorded time is due.

    Segments already due go out together, up to ``MAX_BATCH`` at a time. With
    ``step``, every segment is its own batch and waits for ``step(segment)``,
    which returns False to end the replay. ``stop`` is polled while sleeping.
    """
    batch: list[Segment] = []
    for segment in segments:
        if not clock.started:
            clock.rebase(segment.ts)
        if step is not None:
            if not step(segment):
                return
            # The clock is held between key presses.
            clock.hold(segment.ts)
            yield [segment]
            continue
        wait = clock.seconds_until(segment.ts)
        if wait > MIN_WAIT or len(batch) >= MAX_BATCH:
            if batch:
                yield batch
                batch = []
            wait = clock.seconds_until(segment.ts)
            while wait > MIN_WAIT:
                if stop():
                    return
                sleep(min(wait, MAX_SLEEP))
                wait = clock.seconds_until(segment.ts)
        batch.append(segment)
    if batch:
        yield batch


class ReplaySource:
    """The segments of capture files, decoded and ordered as ``read`` does.

    Iterate once. ``decoder.stats`` counts the frames, and ``capture.errors``
    contains a file error that stopped the read early. ``complete`` turns True
    once the iteration has yielded the last segment and asked for more.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        validate_checksums: bool = False,
        frame_filter: "FrameFilter | None" = None,
    ):
        self.paths = list(paths)
        self.decoder = Decoder(validate_checksums=validate_checksums)
        self.capture = MergedCapture(self.paths, on_error=lambda error: None)
        self.reorder = ReorderBuffer()
        self.frame_filter = frame_filter
        """Keeps only the frames its pcap-filter expression accepts."""
        self.complete = False

    def __iter__(self) -> Iterator[Segment]:
        frames: Iterable[Frame] = self.capture
        if self.frame_filter is not None:
            frames = self.frame_filter.frames(frames)
        segments = self.decoder.segments(frames)
        try:
            yield from self.reorder.ordered(segments)
            self.complete = True
        finally:
            segments.close()
            self.capture.close()
