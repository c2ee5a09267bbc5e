"""Put segments back in timestamp order before the tracker sees them.

Capture files are not always written in timestamp order: a capture taken on
several interfaces or CPU queues at once, or files merged without sorting,
interleave packets a little out of order. Tracked in file order, such
segments would look like reordering on the wire: out-of-order marks, a
"previous segment not captured", handshakes timed backwards. Their
timestamps still tell the order in which the capture points saw them.

``ReorderBuffer.ordered`` holds segments back for a short span of capture
time and releases them sorted by timestamp (file order among equal
timestamps). The span is bounded in time and in count, so memory stays flat.
A segment stamped earlier than one already released cannot be put back in
place: it is released at once and counted in ``late``.

Segments already in order, the usual case, cost one append and one pop.
"""

import bisect
from collections import deque
from collections.abc import Iterable, Iterator

from tcpwatch.capture.segment import Segment

DEFAULT_HORIZON = 1.0
"""Seconds of capture time a segment is held for later, earlier-stamped ones."""
DEFAULT_CAPACITY = 10000
"""Most segments held at once; past it the oldest is released early."""


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

    def ordered(self, segments: Iterable[Segment]) -> Iterator[Segment]:
        """Yield ``segments`` sorted by timestamp, within the buffer's bounds."""
        held: deque[Segment] = deque()
        newest = float("-inf")
        released = float("-inf")
        horizon = self.horizon
        capacity = self.capacity
        for segment in segments:
            ts = segment.ts
            if ts >= newest:
                newest = ts
                held.append(segment)
            else:
                self.reordered += 1
                if ts < released:
                    self.late += 1
                    yield segment
                    continue
                index = bisect.bisect_right(held, ts, key=_timestamp)
                held.insert(index, segment)
            limit = newest - horizon
            while held and (held[0].ts < limit or len(held) > capacity):
                first = held.popleft()
                released = first.ts
                yield first
        while held:
            yield held.popleft()
