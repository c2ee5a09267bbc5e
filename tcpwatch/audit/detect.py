"""SYN scan and SYN flood detection over connection attempts.

A vertical scan is one source failing to connect to many ports of one host. A
horizontal scan is one source failing to connect to one port on many hosts.
An attempt fails when it is rejected (RST) or gets no reply. As in Zeek's
``policy/misc/scan.zeek``, only distinct ports or hosts count, within a time
window: the defaults (15 ports, 25 hosts, 5 minutes) are that script's
``port_scan_threshold``, ``addr_scan_threshold`` and scan intervals. Unlike
Zeek, which resets its counters every interval, the window here slides, so a
scan that straddles an interval boundary is still found.

A SYN flood is many half-open attempts to one destination port: attempts
whose SYN got no reply, or whose SYN-ACK was never acknowledged with no RST or
FIN to end them. The classifier decides which attempts are half-open.

Records reach the detectors in the order the tracker finishes connections,
not in start order, so the windows are evaluated when ``scans()`` and
``floods()`` are called, on the attempt start times.
"""

import array
import ipaddress
from collections import Counter, OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item", bound=Hashable)

# Distinct sources counted per flooded destination; more are summed as others.
_MAX_FLOOD_SOURCES = 10000
# Open ports or hosts kept per scan, and source and target pairs kept.
_MAX_ACCEPTED = 1000
_MAX_ACCEPTED_PAIRS = 100000


@dataclass(frozen=True)
class Thresholds:
    """When failed attempts count as a scan, and half-open attempts as a flood."""

    scan_ports: int = 15
    """Distinct ports of one host a source fails on within ``scan_window``."""
    scan_hosts: int = 25
    """Distinct hosts a source fails on, on one port, within ``scan_window``."""
    scan_window: float = 300.0
    """Seconds."""
    flood_attempts: int = 100
    """Half-open attempts to one destination port within ``flood_window``."""
    flood_window: float = 10.0
    """Seconds."""


@dataclass(frozen=True)
class Scan:
    """A source that probed many ports of one host, or one port on many hosts."""

    kind: str
    """``vertical`` (many ports of one host) or ``horizontal`` (many hosts)."""
    source: str
    target: str
    """The scanned host (vertical) or the scanned port, e.g. ``tcp/22``."""
    peak: int
    """Most distinct ports or hosts failed within one window."""
    window_start: float
    window_end: float
    distinct: int
    """Distinct ports or hosts failed over the whole capture."""
    rejected: int
    no_reply: int
    first_ts: float
    last_ts: float
    probed: tuple[str, ...]
    """The distinct ports (runs written as ``1-1024``) or hosts failed, sorted."""
    accepted: tuple[str, ...]
    """Ports or hosts where the source's attempt was accepted, in the same form."""


@dataclass(frozen=True)
class Flood:
    """A destination port that received many half-open attempts."""

    destination: str
    peak: int
    """Most half-open attempts within one window."""
    window_start: float
    window_end: float
    half_open: int
    no_reply: int
    unacknowledged: int
    """Attempts whose SYN-ACK was never acknowledged."""
    sources: int
    """Distinct sources (a spoofed flood has many), counted up to 10,000."""
    sources_capped: bool
    """True when there were more distinct sources than were counted."""
    top_sources: tuple[tuple[str, int], ...]
    first_ts: float
    last_ts: float


def peak_window(times: Sequence[float], window: float) -> tuple[int, float, float]:
    """Return the most ``times`` within any ``window`` seconds, and that window.

    ``times`` must be sorted. The window is closed: times exactly ``window``
    apart fall into it.
    """
    best, best_start, best_end = 0, 0.0, 0.0
    start = 0
    for end, time in enumerate(times):
        while time - times[start] > window:
            start += 1
        if end - start + 1 > best:
            best, best_start, best_end = end - start + 1, times[start], time
    return best, best_start, best_end


@dataclass
class _Spread(Generic[Item]):
    """Failed attempts of one source against one target (a host, or a port)."""

    first_failed: dict[Item, float] = field(default_factory=dict)
    """The earliest failed attempt per port or host."""
    rejected: int = 0
    no_reply: int = 0
    first_ts: float = float("inf")
    last_ts: float = float("-inf")

    def fail(self, item: Item, ts: float, rejected: bool) -> None:
        if ts < self.first_failed.get(item, float("inf")):
            self.first_failed[item] = ts
        if rejected:
            self.rejected += 1
        else:
            self.no_reply += 1
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)


class _Accepted(Generic[Item]):
    """Accepted ports or hosts per source and target, for the most recent pairs.

    Records arrive in the order connections finish, so an open port may be
    reported before the scan's first failure. This class keeps them for every
    pair, and drops the least recently seen pairs beyond ``_MAX_ACCEPTED_PAIRS``.
    """

    def __init__(self) -> None:
        self._pairs: OrderedDict[tuple[str, Any], set[Item]] = OrderedDict()

    def add(self, key: tuple[str, Any], item: Item) -> None:
        items = self._pairs.get(key)
        if items is None:
            items = self._pairs[key] = set()
            if len(self._pairs) > _MAX_ACCEPTED_PAIRS:
                self._pairs.popitem(last=False)
        else:
            self._pairs.move_to_end(key)
        if len(items) < _MAX_ACCEPTED:
            items.add(item)

    def get(self, key: tuple[str, Any]) -> set[Item]:
        return self._pairs.get(key, set())


@dataclass
class _HalfOpen:
    times: "array.array[float]" = field(default_factory=lambda: array.array("d"))
    sources: Counter[str] = field(default_factory=Counter)
    other_sources: int = 0
    no_reply: int = 0
    unacknowledged: int = 0


class ScanDetector:
    """Collect failed attempts per source and report the scans among them."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self._vertical: dict[tuple[str, str], _Spread[int]] = {}
        self._horizontal: dict[tuple[str, int], _Spread[str]] = {}
        self._open_ports: _Accepted[int] = _Accepted()
        self._open_hosts: _Accepted[str] = _Accepted()

    def add(
        self, ts: float, orig_h: str, resp_h: str, resp_p: int, outcome: str
    ) -> None:
        """Count one attempt: ``outcome`` is accepted, rejected or no_reply."""
        vertical_key = (orig_h, resp_h)
        horizontal_key = (orig_h, resp_p)
        if outcome == "accepted":
            self._open_ports.add(vertical_key, resp_p)
            self._open_hosts.add(horizontal_key, resp_h)
            return
        rejected = outcome == "rejected"
        vertical = self._vertical.setdefault(vertical_key, _Spread())
        vertical.fail(resp_p, ts, rejected)
        horizontal = self._horizontal.setdefault(horizontal_key, _Spread())
        horizontal.fail(resp_h, ts, rejected)

    def scans(self) -> list[Scan]:
        """Return the scans found so far, vertical first, biggest first."""
        found = []
        limits = self.thresholds
        for (source, host), ports in self._vertical.items():
            if len(ports.first_failed) >= limits.scan_ports:
                opened = self._open_ports.get((source, host))
                scan = _scan("vertical", source, host, ports, opened, limits)
                if scan.peak >= limits.scan_ports:
                    found.append(scan)
        for (source, port), hosts in self._horizontal.items():
            if len(hosts.first_failed) >= limits.scan_hosts:
                target = f"tcp/{port}"
                opened_hosts = self._open_hosts.get((source, port))
                scan = _scan("horizontal", source, target, hosts, opened_hosts, limits)
                if scan.peak >= limits.scan_hosts:
                    found.append(scan)
        found.sort(key=lambda scan: (scan.kind != "vertical", -scan.peak, scan.source))
        return found


def _scan(
    kind: str,
    source: str,
    target: str,
    spread: "_Spread[Item]",
    accepted: "set[Item]",
    limits: Thresholds,
) -> Scan:
    times = sorted(spread.first_failed.values())
    peak, start, end = peak_window(times, limits.scan_window)
    return Scan(
        kind=kind,
        source=source,
        target=target,
        peak=peak,
        window_start=start,
        window_end=end,
        distinct=len(spread.first_failed),
        rejected=spread.rejected,
        no_reply=spread.no_reply,
        first_ts=spread.first_ts,
        last_ts=spread.last_ts,
        probed=_sorted_text(spread.first_failed),
        accepted=_sorted_text(accepted),
    )


def _sorted_text(items: "dict[Item, float] | set[Item]") -> tuple[str, ...]:
    values = list(items)
    if all(isinstance(value, int) for value in values):
        return compress_ports(sorted(int(str(value)) for value in values))
    return tuple(sorted((str(value) for value in values), key=address_sort_key))


def compress_ports(ports: Sequence[int]) -> tuple[str, ...]:
    """Return sorted ports with runs written as ranges: ``("22", "80-90")``."""
    runs: list[str] = []
    start = previous = None
    for port in ports:
        if previous is not None and port == previous + 1:
            previous = port
            continue
        if start is not None:
            runs.append(_run(start, previous))
        start = previous = port
    if start is not None:
        runs.append(_run(start, previous))
    return tuple(runs)


def _run(first: int, last: int | None) -> str:
    return str(first) if last is None or last == first else f"{first}-{last}"


def address_sort_key(text: str) -> tuple[int, bytes, str]:
    """Return a key that sorts IPv4 addresses before IPv6, numerically, then text."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (9, b"", text)
    return (address.version, address.packed, "")


class FloodDetector:
    """Collect half-open attempts per destination and report the floods."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self._destinations: dict[str, _HalfOpen] = {}

    def add(self, ts: float, orig_h: str, destination: str, no_reply: bool) -> None:
        """Count one half-open attempt to ``destination`` (``host:port``)."""
        state = self._destinations.get(destination)
        if state is None:
            state = self._destinations[destination] = _HalfOpen()
        state.times.append(ts)
        if orig_h in state.sources or len(state.sources) < _MAX_FLOOD_SOURCES:
            state.sources[orig_h] += 1
        else:
            state.other_sources += 1
        if no_reply:
            state.no_reply += 1
        else:
            state.unacknowledged += 1

    def floods(self) -> list[Flood]:
        """Return the floods found so far, biggest first."""
        limits = self.thresholds
        found = []
        for destination, state in self._destinations.items():
            if len(state.times) < limits.flood_attempts:
                continue
            times = sorted(state.times)
            peak, start, end = peak_window(times, limits.flood_window)
            if peak < limits.flood_attempts:
                continue
            found.append(
                Flood(
                    destination=destination,
                    peak=peak,
                    window_start=start,
                    window_end=end,
                    half_open=len(times),
                    no_reply=state.no_reply,
                    unacknowledged=state.unacknowledged,
                    sources=len(state.sources),
                    sources_capped=state.other_sources > 0,
                    top_sources=tuple(state.sources.most_common(5)),
                    first_ts=times[0],
                    last_ts=times[-1],
                )
            )
        found.sort(key=lambda flood: (-flood.peak, flood.destination))
        return found
