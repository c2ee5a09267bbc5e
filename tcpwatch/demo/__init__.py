"""Demo scenarios: a TCP lesson with no capture file at hand.

Every scenario has a synthesised version (``lessons``: scapy packets, any
user). Those that the local TCP stack produces on demand also have a live
version (``loopback``: a real server and client on 127.0.0.1, captured while
they run), used when the process can capture. ``make_capture`` picks one and
says which, so a view can tell the user plainly whether the packets are real.
"""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tcpwatch.demo import lessons
from tcpwatch.demo.synth import Synthesiser


class Scenario(NamedTuple):
    """One lesson: its name on the command line and how to produce it."""

    name: str
    synthesise: Callable[[], Synthesiser]
    live: bool
    """True when the local stack produces it, so it can be captured for real."""

    @property
    def key(self) -> str:
        """Catalogue key stem of the scenario's title and description."""
        return "scenario." + self.name.replace("-", "_")


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("clean", lessons.clean, True),
        Scenario("refused", lessons.refused, True),
        Scenario("abort", lessons.abort, True),
        Scenario("half-close", lessons.half_close, True),
        Scenario("slow-server", lessons.slow_server, True),
        Scenario("bulk", lessons.bulk, True),
        Scenario("loss", lessons.loss, False),
        Scenario("zero-window", lessons.zero_window, False),
        Scenario("simultaneous-open", lessons.simultaneous_open, False),
        Scenario("no-reply", lessons.no_reply, False),
    )
}
DEFAULT_SCENARIO = "clean"


class DemoCapture(NamedTuple):
    """Where a demo's packets came from."""

    path: Path
    synthesised: bool
    reason: str
    """Why the packets were synthesised (``no_root``, ``stack`` or ``requested``);
    empty for a live capture."""
    dropped: int = 0
    """Packets a live capture lost in the kernel."""


def make_capture(
    scenario: Scenario, path: Path, *, synthesise: bool = False
) -> DemoCapture:
    """Write the scenario's packets to ``path``, live when possible."""
    from tcpwatch.demo.capture import capture_unavailable

    reason = ""
    if synthesise:
        reason = "requested"
    elif not scenario.live:
        reason = "stack"
    else:
        reason = capture_unavailable()
    if not reason:
        from tcpwatch.demo import loopback

        dropped = loopback.run(scenario.name, path)
        return DemoCapture(path, False, "", dropped)
    from tcpwatch.demo.synth import write_pcap

    write_pcap(scenario.synthesise().packets, path)
    return DemoCapture(path, True, reason)
