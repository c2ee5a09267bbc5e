"""Fuzz the whole offline pipeline: decoder, flow tracker and records.

Frames of real captures (the bundled ones and a fresh loopback recording) are
damaged at random, as ``editcap -E`` does for Wireshark's fuzz tests, and
``editcap`` itself damages files that ``tcpwatch read`` then reads. Every
frame must be counted, nothing may raise, and the records must account for
every segment the tracker saw.
"""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fuzzing import (
    BUNDLED,
    CLIENT4,
    HostileFrame,
    bundled_frames,
    check_counted,
    check_pipeline,
    damage,
    ethernet,
    hostile_frame_lists,
    ipv4_packet,
    read_frames,
    record_loopback,
    run_pipeline,
    tcp_header,
    write_pcap,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpwatch.capture.decoder import Decoder
from tcpwatch.capture.segment import ACK, SYN, Frame, Segment
from tcpwatch.flow.record import build_record
from tcpwatch.flow.tracker import FlowTracker

PROBABILITIES = (0.002, 0.02, 0.1)
SLOW_FRAMES = 100_000


def fuzz_rounds(frames: list[Frame], seed: int, rounds: int) -> int:
    """Damage ``frames`` ``rounds`` times and run the pipeline on each copy.

    Return the number of frames fuzzed.
    """
    rng = random.Random(seed)
    fed = 0
    for round_number in range(rounds):
        probability = PROBABILITIES[round_number % len(PROBABILITIES)]
        damaged = list(damage(frames, rng, probability))
        run = run_pipeline(
            damaged,
            validate_checksums=round_number % 2 == 1,
            idle_timeout=rng.choice((0.05, 300.0)),
        )
        check_pipeline(run)
        fed += run.frames
    return fed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_pipeline_bundled_captures_damaged(seed: int) -> None:
    frames = bundled_frames()

    fed = fuzz_rounds(frames, seed, rounds=3)

    assert fed == 3 * len(frames)


def test_fuzz_pipeline_undamaged_bundle_is_clean() -> None:
    """The baseline: with no damage, every bundled frame is TCP."""
    frames = bundled_frames()

    run = run_pipeline(frames)

    check_pipeline(run)
    assert run.stats.tcp == len(frames)
    assert run.stats.malformed == 0
    assert run.stats.truncated == 0


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    frames=hostile_frame_lists(max_size=30),
    times=st.lists(
        st.floats(min_value=-1e9, max_value=2.0**64, allow_nan=False),
        min_size=30,
        max_size=30,
    ),
)
def test_fuzz_pipeline_hostile_frames(
    frames: list[HostileFrame], times: list[float]
) -> None:
    stream = [
        (times[index], frame.link_type, frame.data, frame.wire_length, 0)
        for index, frame in enumerate(frames)
    ]

    run = run_pipeline(stream)

    check_pipeline(run)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="recording on lo needs root")
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
@pytest.mark.parametrize("snaplen", [4096, 64])
def test_fuzz_pipeline_loopback_recording_damaged(tmp_path: Path, snaplen: int) -> None:
    recording = record_loopback(tmp_path / "lo.pcap", snaplen=snaplen)
    frames = read_frames(recording.path)
    clean = run_pipeline(frames)
    check_pipeline(clean)
    # A 64-byte snaplen cuts IPv6 frames (14 + 40 + 20 bytes of headers)
    # before the end of the TCP header.
    assert clean.stats.tcp + clean.stats.truncated == len(frames)
    assert clean.stats.malformed == 0
    if snaplen > 64:
        assert clean.stats.truncated == 0
        assert len(clean.records) == recording.connections

    fed = fuzz_rounds(frames, seed=snaplen, rounds=9)

    assert fed == 9 * len(frames)


# editcap ----------------------------------------------------------------------


def editcap_damage(source: Path, target: Path, probability: float, seed: int) -> Path:
    """Damage a capture with Wireshark's editcap -E, written as pcap."""
    done = subprocess.run(
        [
            "editcap",
            "-F",
            "pcap",
            "-E",
            str(probability),
            "--seed",
            str(seed),
            str(source),
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target


def read_json(path: Path) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    done = subprocess.run(
        [sys.executable, "-m", "tcpwatch", "read", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    return done, records


def check_cli_read(path: Path, frames: int) -> None:
    done, records = read_json(path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = done.stderr.splitlines()[-1]
    assert f"{frames:,} {'frame' if frames == 1 else 'frames'}:" in summary
    noun = "connection" if len(records) == 1 else "connections"
    assert summary.startswith(f"{len(records):,} {noun};")


EDITCAP_CASES = [
    (name, probability, seed)
    for name in ("mixed.pcap", "ipv6-exchange.pcap", "mixed.pcapng")
    for probability, seed in ((0.01, 11), (0.1, 12))
]


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
@pytest.mark.parametrize(("name", "probability", "seed"), EDITCAP_CASES)
def test_fuzz_cli_reads_editcap_damage(
    tmp_path: Path, name: str, probability: float, seed: int
) -> None:
    source = next(path for path in BUNDLED if path.name == name)
    damaged = editcap_damage(source, tmp_path / "damaged.pcap", probability, seed)

    check_cli_read(damaged, len(read_frames(damaged)))


# The LAND segment: from an address and port to themselves ----------------------


def land_segment(ts: float, flags: int) -> Segment:
    return Segment(ts, CLIENT4, CLIENT4, 80, 80, 1000, 0, flags, 65535, 0, 40, b"", b"")


def test_fuzz_tracker_land_segment_finishes() -> None:
    tracker = FlowTracker()
    tracker.process(land_segment(1.0, SYN))
    tracker.process(land_segment(1.1, SYN | ACK))

    finished = tracker.flush()

    assert len(finished) == 1
    record = build_record(finished[0])
    assert record["orig_pkts"] + record["resp_pkts"] == 2


def test_fuzz_cli_reads_land_packet(tmp_path: Path) -> None:
    segment = tcp_header(sport=80, dport=80, flags=SYN)
    data = ethernet(ipv4_packet(segment, src=CLIENT4, dst=CLIENT4))
    path = write_pcap(tmp_path / "land.pcap", [(1.0, 1, data, len(data), 0)], 1)

    check_cli_read(path, 1)


# Slow tier ---------------------------------------------------------------------


@pytest.mark.slow
def test_fuzz_pipeline_slow_tier() -> None:
    frames = bundled_frames()
    rounds = -(-SLOW_FRAMES // len(frames))

    fed = fuzz_rounds(frames, seed=1000, rounds=rounds)

    assert fed >= SLOW_FRAMES


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
def test_fuzz_cli_editcap_slow_tier(tmp_path: Path) -> None:
    runs = 0
    for seed in range(12):
        for source in BUNDLED:
            probability = PROBABILITIES[seed % len(PROBABILITIES)]
            damaged = tmp_path / f"{source.stem}-{seed}.pcap"
            editcap_damage(source, damaged, probability, seed)
            frames = len(read_frames(damaged))
            check_cli_read(damaged, frames)
            check_counted_file(damaged, frames)
            damaged.unlink()
            runs += 1

    assert runs == 12 * len(BUNDLED)


def check_counted_file(path: Path, frames: int) -> None:
    decoder = Decoder()
    for frame in read_frames(path):
        decoder.decode(*frame)
    check_counted(decoder.stats, frames)
