"""Fuzz the decoder with frames whose headers lie, built by Hypothesis.

Each frame is built with one known defect (see ``fuzzing.HOSTILE_KINDS``), so
the test checks the exact counter it lands in, not only that nothing raised.
The default run decodes a few thousand frames; the slow tier at least
100,000.
"""

from collections import Counter
from collections.abc import Callable

import pytest
from fuzzing import (
    HOSTILE_KINDS,
    TCP,
    HostileFrame,
    check_counted,
    check_segment,
    counter_of,
    hostile_frame_lists,
    hostile_frames,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpwatch.capture.decoder import Decoder

OUTCOMES = ("tcp", "non_tcp", "truncated", "malformed")
SLOW_FRAMES = 100_000


def decode_one(frame: HostileFrame, validate_checksums: bool = False) -> Decoder:
    decoder = Decoder(validate_checksums=validate_checksums)
    wire_length = max(frame.wire_length, len(frame.data))
    segment = decoder.decode(1.0, frame.link_type, frame.data, wire_length)
    if frame.expected == TCP:
        assert segment is not None, frame.kind
        check_segment(segment, frame)
    else:
        assert segment is None, frame.kind
    return decoder


def check_list(frames: list[HostileFrame], validate_checksums: bool) -> None:
    """Decode a list as one stream and check the counters per outcome."""
    decoder = Decoder(validate_checksums=validate_checksums)
    stream = [
        (float(index), frame.link_type, frame.data, frame.wire_length, 0)
        for index, frame in enumerate(frames)
    ]

    segments = list(decoder.segments(stream))

    expected = Counter(frame.expected for frame in frames)
    check_counted(decoder.stats, len(frames))
    for outcome in OUTCOMES:
        assert counter_of(decoder.stats, outcome) == expected[outcome], outcome
    built = [frame for frame in frames if frame.expected == TCP]
    assert len(segments) == len(built)
    for segment, frame in zip(segments, built, strict=True):
        check_segment(segment, frame)


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(frame=hostile_frames())
def test_fuzz_decoder_hostile_frame_counted(frame: HostileFrame) -> None:
    decoder = decode_one(frame)

    assert decoder.stats.frames == 1
    assert counter_of(decoder.stats, frame.expected) == 1, frame.kind


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(frame=hostile_frames())
def test_fuzz_decoder_checksum_validation_counts_alike(frame: HostileFrame) -> None:
    decoder = decode_one(frame, validate_checksums=True)

    assert decoder.stats.frames == 1
    assert counter_of(decoder.stats, frame.expected) == 1, frame.kind


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frames=hostile_frame_lists())
def test_fuzz_decoder_stream_counts_each_outcome(frames: list[HostileFrame]) -> None:
    check_list(frames, validate_checksums=False)


@pytest.mark.parametrize("kind", HOSTILE_KINDS, ids=lambda kind: kind.__name__)
def test_fuzz_decoder_each_kind(kind: Callable[[], st.SearchStrategy[HostileFrame]]):
    """Each kind on its own, so none is left out by the mix's random choices."""

    @settings(max_examples=60, deadline=None, database=None)
    @given(frame=kind())
    def check(frame: HostileFrame) -> None:
        decoder = decode_one(frame)
        assert counter_of(decoder.stats, frame.expected) == 1, frame.kind

    check()


@pytest.mark.slow
def test_fuzz_decoder_slow_tier() -> None:
    fed: list[int] = []

    @settings(
        max_examples=6000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(frames=hostile_frame_lists(max_size=40))
    def fuzz(frames: list[HostileFrame]) -> None:
        check_list(frames, validate_checksums=len(fed) % 3 == 0)
        fed.append(len(frames))

    while sum(fed) < SLOW_FRAMES:
        fuzz()

    assert sum(fed) >= SLOW_FRAMES
