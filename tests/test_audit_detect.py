"""Scan and flood detection: thresholds, sliding windows and evidence."""

import pytest

from tcpwatch.audit.detect import (
    FloodDetector,
    ScanDetector,
    Thresholds,
    compress_ports,
    peak_window,
)

SOURCE = "198.51.100.4"
VICTIM = "10.0.0.5"


def test_peak_window_counts_closed_interval() -> None:
    assert peak_window([0.0, 1.0, 2.0, 3.0], 2.0) == (3, 0.0, 2.0)
    assert peak_window([0.0, 1.0, 2.5, 3.0, 3.5], 1.0) == (3, 2.5, 3.5)
    assert peak_window([], 5.0) == (0, 0.0, 0.0)


def test_compress_ports() -> None:
    assert compress_ports([22, 80, 81, 82, 443, 444]) == ("22", "80-82", "443-444")
    assert compress_ports([7]) == ("7",)
    assert compress_ports([]) == ()


def vertical(count: int, spacing: float, **limits: float) -> ScanDetector:
    detector = ScanDetector(Thresholds(**limits))  # type: ignore[arg-type]
    for index in range(count):
        detector.add(index * spacing, SOURCE, VICTIM, 1000 + index, "rejected")
    return detector


def test_scan_vertical_at_threshold() -> None:
    [scan] = vertical(15, 1.0).scans()
    assert scan.kind == "vertical"
    assert scan.source == SOURCE
    assert scan.target == VICTIM
    assert scan.peak == 15
    assert scan.distinct == 15
    assert scan.rejected == 15
    assert scan.no_reply == 0
    assert scan.probed == ("1000-1014",)
    assert scan.window_start == 0.0
    assert scan.window_end == 14.0


def test_scan_vertical_below_threshold() -> None:
    assert vertical(14, 1.0).scans() == []


def test_scan_slow_probes_outside_window() -> None:
    # 20 ports, one a minute: at most 6 fall within any 5-minute window.
    detector = vertical(20, 60.0)
    assert detector.scans() == []
    assert vertical(20, 60.0, scan_window=1200.0).scans()[0].peak == 20


def test_scan_window_slides_across_boundaries() -> None:
    # Eight probes just before 300 s and eight just after: a window that resets
    # every 300 s would see at most eight, the sliding one sees all sixteen.
    detector = ScanDetector(Thresholds(scan_ports=16))
    times = [290.0 + index for index in range(8)] + [301.0 + i for i in range(8)]
    for index, ts in enumerate(times):
        detector.add(ts, SOURCE, VICTIM, 2000 + index, "no_reply")
    [scan] = detector.scans()
    assert scan.peak == 16
    assert scan.no_reply == 16


def test_scan_repeated_port_counts_once() -> None:
    detector = ScanDetector(Thresholds(scan_ports=3))
    for ts in range(10):
        detector.add(float(ts), SOURCE, VICTIM, 22, "rejected")
    detector.add(11.0, SOURCE, VICTIM, 23, "rejected")
    assert detector.scans() == []


def test_scan_records_out_of_order() -> None:
    detector = ScanDetector(Thresholds(scan_ports=5, scan_window=10.0))
    for index, ts in enumerate([9.0, 1.0, 5.0, 3.0, 7.0]):
        detector.add(ts, SOURCE, VICTIM, 100 + index, "rejected")
    [scan] = detector.scans()
    assert scan.first_ts == 1.0
    assert scan.last_ts == 9.0
    assert scan.peak == 5


def test_scan_open_ports_before_failures() -> None:
    detector = ScanDetector(Thresholds(scan_ports=3))
    detector.add(0.0, SOURCE, VICTIM, 22, "accepted")
    for port in (1, 2, 3):
        detector.add(1.0, SOURCE, VICTIM, port, "rejected")
    detector.add(2.0, SOURCE, VICTIM, 443, "accepted")
    [scan] = detector.scans()
    assert scan.accepted == ("22", "443")
    assert scan.probed == ("1-3",)


def test_scan_horizontal() -> None:
    detector = ScanDetector(Thresholds())
    for index in range(25):
        detector.add(index * 0.01, SOURCE, f"10.0.{index}.9", 3389, "no_reply")
    detector.add(1.0, SOURCE, "10.0.99.9", 3389, "accepted")
    [scan] = detector.scans()
    assert scan.kind == "horizontal"
    assert scan.target == "tcp/3389"
    assert scan.distinct == 25
    assert scan.probed[:3] == ("10.0.0.9", "10.0.1.9", "10.0.2.9")
    assert scan.accepted == ("10.0.99.9",)


def test_scan_horizontal_sorts_ipv4_before_ipv6() -> None:
    detector = ScanDetector(Thresholds(scan_hosts=3))
    for host in ("2001:db8::1", "10.0.0.10", "10.0.0.9"):
        detector.add(0.0, SOURCE, host, 22, "rejected")
    [scan] = detector.scans()
    assert scan.probed == ("10.0.0.9", "10.0.0.10", "2001:db8::1")


def test_scan_accepted_only_is_no_scan() -> None:
    detector = ScanDetector(Thresholds(scan_ports=2))
    for port in range(50):
        detector.add(0.0, SOURCE, VICTIM, port, "accepted")
    assert detector.scans() == []


def test_scans_sorted_vertical_first() -> None:
    detector = ScanDetector(Thresholds(scan_ports=2, scan_hosts=2))
    for host in ("10.0.0.1", "10.0.0.2"):
        detector.add(0.0, "203.0.113.1", host, 22, "rejected")
    for port in (1, 2, 3):
        detector.add(0.0, "203.0.113.2", VICTIM, port, "rejected")
    kinds = [(scan.kind, scan.source) for scan in detector.scans()]
    assert kinds == [("vertical", "203.0.113.2"), ("horizontal", "203.0.113.1")]


def flood(times: list[float], **limits: float) -> FloodDetector:
    detector = FloodDetector(Thresholds(**limits))  # type: ignore[arg-type]
    for index, ts in enumerate(times):
        detector.add(ts, f"203.0.{index // 250}.{index % 250}", "10.0.0.5:80", True)
    return detector


def test_flood_at_threshold() -> None:
    [found] = flood([index * 0.1 for index in range(100)]).floods()
    assert found.destination == "10.0.0.5:80"
    assert found.peak == 100
    assert found.half_open == 100
    assert found.no_reply == 100
    assert found.unacknowledged == 0
    assert found.sources == 100
    assert not found.sources_capped
    assert found.first_ts == 0.0
    assert found.last_ts == pytest.approx(9.9)


def test_flood_below_threshold() -> None:
    assert flood([index * 0.1 for index in range(99)]).floods() == []


def test_flood_spread_out_is_no_flood() -> None:
    # 200 half-open attempts, one every 0.2 s: 51 within any 10 s window.
    assert flood([index * 0.2 for index in range(200)]).floods() == []
    assert flood([index * 0.2 for index in range(200)], flood_attempts=50).floods()


def test_flood_sources_capped() -> None:
    detector = FloodDetector(Thresholds(flood_attempts=10))
    for index in range(10050):
        source = f"10.{index // 65536}.{index // 256 % 256}.{index % 256}"
        detector.add(index * 0.0001, source, "10.0.0.5:80", False)
    [found] = detector.floods()
    assert found.sources == 10000
    assert found.sources_capped
    assert found.unacknowledged == 10050


def test_flood_top_sources() -> None:
    detector = FloodDetector(Thresholds(flood_attempts=3))
    for source in ["a", "b", "a", "c", "a", "b"]:
        detector.add(0.0, source, "10.0.0.5:80", True)
    [found] = detector.floods()
    assert found.top_sources == (("a", 3), ("b", 2), ("c", 1))
