"""Fuzz the views: tables and timelines of connections rebuilt from damaged frames.

Damaged frames give connections with odd flags, lengths, options, payloads and
timestamps. Drawing them must not raise, and the drawn text must contain no
control character, whatever bytes the payload previews quote.
"""

import io
import random
import re

import pytest
from fuzzing import bundled_frames, check_pipeline, damage, run_pipeline
from rich.console import Console

from tcpwatch.render.table import ConnectionTable
from tcpwatch.render.timeline import Timeline

# Any C0 control but newline, DEL, and the C1 controls.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]")


def render(renderable: object, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, highlight=False)
    console.print(renderable, crop=False)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def fuzz_views(seed: int, rounds: int) -> int:
    """Draw every damaged connection of ``rounds`` runs; return how many."""
    rng = random.Random(seed)
    frames = bundled_frames()
    drawn = 0
    for round_number in range(rounds):
        probability = (0.002, 0.02, 0.1)[round_number % 3]
        run = run_pipeline(damage(frames, rng, probability), idle_timeout=300.0)
        check_pipeline(run)
        rows = [
            (conn.number, record)
            for conn, record in zip(run.connections, run.records, strict=True)
        ]
        for width in (80, 160):
            assert CONTROL.findall(render(ConnectionTable(rows), width)) == []
        for conn in run.connections:
            timeline = Timeline(
                conn,
                full=rng.random() < 0.5,
                explain=True,
                lang=rng.choice(("en", "ja")),
                title=True,
                verdict=True,
            )
            text = render(timeline, rng.choice((60, 100, 200)))
            assert CONTROL.findall(text) == [], text
            drawn += 1
    return drawn


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_views_damaged_connections(seed: int) -> None:
    drawn = fuzz_views(seed, rounds=3)

    assert drawn > 0


@pytest.mark.slow
def test_fuzz_views_slow_tier() -> None:
    drawn = fuzz_views(seed=100, rounds=150)

    assert drawn > 1000
