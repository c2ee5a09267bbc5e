"""The reorder buffer that sorts segments by timestamp before tracking."""

from scripted import Conversation

from tcpwatch.capture.segment import ACK, PSH, Segment
from tcpwatch.flow.reorder import ReorderBuffer


def stamps(segments: list[Segment]) -> list[float]:
    return [segment.ts for segment in segments]


def stream(*times: float) -> list[Segment]:
    talk = Conversation()
    for at in times:
        talk.client(PSH | ACK, 10, at=at)
    return talk.segments


def test_reorder_in_order_passes_through():
    segments = stream(1.0, 1.1, 1.2, 5.0)
    buffer = ReorderBuffer()
    assert list(buffer.ordered(segments)) == segments
    assert buffer.reordered == 0


def test_reorder_swapped_pair_sorted():
    segments = stream(1.0, 1.2, 1.1, 1.3)
    buffer = ReorderBuffer()
    assert stamps(list(buffer.ordered(segments))) == [1.0, 1.1, 1.2, 1.3]
    assert buffer.reordered == 1
    assert buffer.late == 0


def test_reorder_equal_stamps_keep_file_order():
    segments = stream(1.0, 1.0, 1.0)
    released = list(ReorderBuffer().ordered(segments))
    assert [segment.seq for segment in released] == [seg.seq for seg in segments]


def test_reorder_in_order_window_ignores_time():
    segments = stream(1.0, 5.0, 6.5, 2.0)
    buffer = ReorderBuffer(horizon=1.0)
    assert stamps(list(buffer.ordered(segments))) == [1.0, 2.0, 5.0, 6.5]
    assert buffer.late == 0


def test_reorder_beyond_horizon_is_late():
    # The swap at 1.1 widens the window; from then on a segment waits at
    # most ``horizon`` seconds of capture time.
    segments = stream(1.0, 1.2, 1.1, 5.0, 6.5, 2.0)
    buffer = ReorderBuffer(horizon=1.0, capacity=100)
    released = stamps(list(buffer.ordered(segments)))
    assert released == [1.0, 1.1, 1.2, 5.0, 2.0, 6.5]
    assert buffer.reordered == 2
    assert buffer.late == 1


def test_reorder_capacity_releases_early():
    buffer = ReorderBuffer(horizon=100.0, capacity=3)
    source = iter(stream(*(1.0 + i * 0.001 for i in range(10))))
    ordered = buffer.ordered(source)
    first = next(ordered)
    # Holding 3, the 4th segment read pushes the first one out.
    assert first.ts == 1.0
    assert source.__length_hint__() == 6


def test_reorder_pure_acks_and_data_interleave():
    talk = Conversation()
    data = talk.client(PSH | ACK, 100, at=1.0)
    ack = talk.server(ACK, at=1.0001)
    buffer = ReorderBuffer()
    released = list(buffer.ordered([ack, data]))
    assert released == [data, ack]


def test_reorder_window_narrows_after_calm():
    # One swap widens the window; a long in-order run narrows it again, so
    # a late swap far behind is no longer put back in order.
    times = [1.0, 1.2, 1.1] + [2.0 + i * 0.0001 for i in range(50)]
    segments = stream(*times)
    buffer = ReorderBuffer(horizon=100.0, capacity=20)
    released = stamps(list(buffer.ordered(segments)))
    assert released[:3] == [1.0, 1.1, 1.2]
    assert buffer.late == 0
    times = [1.0, 1.2, 1.1] + [2.0 + i * 0.0001 for i in range(200)] + [2.001]
    buffer = ReorderBuffer(horizon=100.0, capacity=100)
    list(buffer.ordered(stream(*times)))
    assert buffer.reordered == 2
    assert buffer.late == 1
