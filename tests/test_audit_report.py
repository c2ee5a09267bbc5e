"""The audit report rendered by rich, and its JSON document."""

import io
import json
import tomllib
from typing import Any

from scripted import Conversation, track_one

from tcpwatch.audit.classifier import AuditClassifier, AuditReport
from tcpwatch.audit.detect import Thresholds
from tcpwatch.audit.policyfile import parse_policy
from tcpwatch.audit.report import AuditView, format_time, report_json
from tcpwatch.capture.segment import ACK, RST, SYN

WEB = "10.1.0.5"
OUTSIDER = "198.51.100.4"


def attempt(port: int, answer: int | None, at: float = 1.0) -> dict[str, Any]:
    talk = Conversation(server_port=port)
    talk.client(SYN, at=at)
    if answer == RST:
        talk.server(RST | ACK, at=at + 0.0001, seq=0)
    elif answer is not None:
        talk.server(SYN | ACK, at=at + 0.0001)
        talk.client(ACK, at=at + 0.0002)
    record = track_one(talk.segments)
    return {**record, "id.orig_h": OUTSIDER, "id.resp_h": WEB}


def make_report(description: str = "HTTPS", **options: Any) -> AuditReport:
    text = (
        f'[groups.web]\nhosts = ["{WEB}"]\n'
        f'inbound = [{{ ports = 443, from = ["0.0.0.0/0"], description = '
        f'{json.dumps(description)} }}, {{ ports = 22, from = ["10.9.0.0/16"] }}]\n'
    )
    classifier = AuditClassifier(parse_policy(tomllib.loads(text), "p.toml"), **options)
    classifier.add(attempt(443, SYN))
    classifier.add(attempt(443, RST))
    classifier.add(attempt(25, SYN))
    classifier.add(attempt(8080, None))
    return classifier.report()


def render(report: AuditReport, width: int = 120) -> str:
    stream = io.StringIO()
    from rich.console import Console

    Console(file=stream, width=width, color_system=None).print(AuditView(report))
    return stream.getvalue()


def test_report_sections_in_order() -> None:
    text = render(make_report())
    positions = [
        text.index(title)
        for title in (
            "holes: denied by the policy, yet accepted (1 connection)",
            "broken services: allowed, but refused or unanswered (1 connection)",
            "blocked: denied, and refused or unanswered (1 connection)",
            "allowed and accepted (1 connection)",
            "allowed paths no accepted connection used",
        )
    ]
    assert positions == sorted(positions)


def test_report_names_rules_and_missing_rules() -> None:
    text = render(make_report())
    assert "no inbound rule of web allows tcp/25 from hosts outside every group" in text
    assert "no inbound rule of web allows tcp/8080 from hosts outside every group" in (
        text
    )
    assert "web inbound #1: tcp/443 from 0.0.0.0/0 (HTTPS)" in text
    assert "1 connection on tcp/8080: 1 unanswered; from 198.51.100.4 (1)" in text
    assert "web inbound tcp/22 from 10.9.0.0/16" in text


def test_report_lists_example_connections() -> None:
    report = make_report()
    text = render(report, width=200)
    hole = report.holes[0]
    example = hole.examples[0]
    assert example["uid"] in text
    assert format_time(example["ts"]) in text
    assert "server refused: SYN answered by RST after" in text


def test_report_escapes_policy_text() -> None:
    text = render(make_report(description="[bold]x\x1b[2J"))
    assert "([bold]x\\x1b[2J)" in text
    assert "\x1b" not in text


def test_report_fits_80_columns() -> None:
    report = make_report()
    text = render(report, width=80)
    example = report.holes[0].examples[0]
    assert max(len(line) for line in text.splitlines()) <= 80
    # Narrow screens get two lines per connection instead of a cropped table.
    assert f"UTC  {OUTSIDER}:{example['id.orig_p']} -> {WEB}:25" in text
    assert f"complete  {example['uid']}  {example['verdict']}" in text


def test_report_json_round_trips() -> None:
    document = json.loads(json.dumps(report_json(make_report(), ["a.pcap"])))
    assert document["captures"] == ["a.pcap"]
    assert document["classes"] == {
        "hole": 1,
        "broken_service": 1,
        "blocked": 1,
        "allowed": 1,
        "not_covered": 0,
    }
    assert [f["class"] for f in document["findings"]] == [
        "hole",
        "broken_service",
        "blocked",
        "allowed",
    ]
    assert document["findings"][0]["missing"][0] == {
        "direction": "inbound",
        "groups": ["web"],
        "port": 25,
        "peer": "hosts outside every group",
        "text": "no inbound rule of web allows tcp/25 from hosts outside every group",
    }
    assert document["findings"][1]["rejected"] == 1
    assert document["not_covered"]["first_ts"] is None
    assert document["unused_paths"] == [
        {
            "group": "web",
            "direction": "inbound",
            "ports": "tcp/22",
            "peer": "10.9.0.0/16",
            "rule": "web inbound #2",
            "failed_attempts": 0,
        }
    ]
    assert document["thresholds"] == {
        "scan_ports": 15,
        "scan_hosts": 25,
        "scan_window": 300.0,
        "flood_attempts": 100,
        "flood_window": 10.0,
    }


def test_report_grows_between_calls() -> None:
    policy = parse_policy(
        tomllib.loads(f'[groups.web]\nhosts = ["{WEB}"]\ninbound = []'), "p.toml"
    )
    classifier = AuditClassifier(policy, Thresholds(scan_ports=2))
    classifier.add(attempt(1, RST))
    first = classifier.report()
    classifier.add(attempt(2, RST, at=2.0))
    second = classifier.report()
    assert first.attempts == 1
    assert first.scans == []
    assert second.attempts == 2
    assert [scan.distinct for scan in second.scans] == [2]
    assert "vertical scan: 198.51.100.4 probed 2 ports of 10.1.0.5" in render(second)


def split_units(text: str) -> list[tuple[str, str]]:
    """Return the line pairs that split a number from its unit."""
    lines = [line.rstrip() for line in text.splitlines()]
    pairs = []
    for line, following in zip(lines, lines[1:], strict=False):
        unit = following.strip().split(" ")[0]
        if line[-1:].isdigit() and unit in ("µs", "ms", "s", "B", "kB", "MB"):
            pairs.append((line, following))
    return pairs


def test_report_keeps_number_with_unit() -> None:
    report = make_report()
    # At 80 columns the verdict "... SYN answered by RST after 100 µs" used to
    # end a line with "100" and start the next with "µs".
    for width in range(60, 140):
        text = render(report, width)
        assert split_units(text) == [], f"width {width}"
        assert max(len(line) for line in text.splitlines()) <= width


def test_report_unit_text_wraps_between_words() -> None:
    from rich.console import Console
    from rich.text import Text

    from tcpwatch.audit.report import UnitText

    sentence = "answered after 14 µs, then 2.5 kB in 3.20 ms, 7 s later"
    for width in range(12, 60):
        stream = io.StringIO()
        Console(file=stream, width=width, color_system=None).print(
            UnitText(Text(sentence))
        )
        text = stream.getvalue()
        assert split_units(text) == [], f"width {width}"
        assert " ".join(text.split()) == sentence
        assert "\ue000" not in text
