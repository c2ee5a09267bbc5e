"""Put segments back in timestamp order before the tracker sees them.

Capture files are not always written in timestamp order: a capture taken on
several interfaces or CPU queues at once, or files merged without sorting,
interleave packets a little out of order. Tracked in file order, such
segments would look like reordering on the wire: out-of-order marks, a
"previous segment not captured", handshakes timed backwards. Their
timestamps still tell the order in which the capture points saw them.

``ReorderBuffer.ordered`` holds segments back and releases them sorted by
timestamp (file order among equal timestamps). It holds few segments while
the input is in order, because segments held long go cold in the processor's
caches, and an in-order file, the usual case, needs no sorting. (Holding
10,000 segments throughout made a read of the 200,000-packet loopback
benchmark capture about a quarter slower in CPU time.) A segment found out of
order widens the window to ``capacity`` segments or ``horizon`` seconds of
capture time, whichever is reached first. After ``capacity`` segments in a
row in order, the window narrows again to 64 segments, whatever their times.
A segment stamped earlier than one already released cannot be put back in
place: it is released at once and counted in ``late``.
"""

import bisect
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final

from tcpwatch.capture.segment import Segment

DEFAULT_HORIZON: Final = 1.0
"""Seconds of capture time a segment waits for later, earlier-stamped ones."""
DEFAULT_CAPACITY: Final = 4096
"""Most segments held at once after the input was found out of order."""
IN_ORDER_WINDOW: Final = 64
"""Segments held while the input has been in order so far."""


def _timestamp(segment: Segment) -> float:
    return segment.ts


class ReorderBuffer:
    """Sort a stream of segments by timestamp within a bounded window.

    Args:
        horizon: seconds of capture time each segment waits for
            earlier-stamped segments that follow it in the file.
        capacity: at most this many segments wait at once.
    """

    def __init__(
        self, horizon: float = DEFAULT_HORIZON, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        self.horizon = horizon
        self.capacity = capacity
        self.reordered = 0
        """Segments stamped earlier than a segment before them in the input."""
        self.late = 0
        """Reordered segments that came too late to be put back in order."""

    def ordered(
        self, segments: Iterable[Segment], released: float = float("-inf")
    ) -> Iterator[Segment]:
        """Yield ``segments`` sorted by timestamp, within the buffer's bounds.

        ``released`` is the timestamp of the last segment the caller already
        passed on itself, when it takes over a stream part way: a segment
        stamped earlier is late.
        """
        held: deque[Segment] = deque()
        append = held.append
        popleft = held.popleft
        newest = float("-inf")
        horizon = self.horizon
        wide = self.capacity
        narrow = min(IN_ORDER_WINDOW, wide)
        window = narrow
        in_order = 0
        for segment in segments:
            ts = segment.ts
            if ts >= newest:
                newest = ts
                append(segment)
                if window == narrow:
                    # The usual case, kept short: release the oldest.
                    if len(held) > narrow:
                        first = popleft()
                        released = first.ts
                        yield first
                    continue
                in_order += 1
                if in_order > wide:
                    window = narrow
            else:
                self.reordered += 1
                window = wide
                in_order = 0
                if ts < released:
                    self.late += 1
                    yield segment
                    continue
                held.insert(bisect.bisect_right(held, ts, key=_timestamp), segment)
            while len(held) > window:
                first = popleft()
                released = first.ts
                yield first
            limit = newest - horizon
            while held and held[0].ts < limit:
                first = popleft()
                released = first.ts
                yield first
        while held:
            yield popleft()
