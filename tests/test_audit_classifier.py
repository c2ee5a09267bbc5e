"""The audit classifier on records the tracker made from scripted conversations."""

import tomllib
from typing import Any

import pytest
from scripted import Conversation, track, track_one

from tcpwatch.audit.classifier import (
    AuditClass,
    AuditClassifier,
    Outcome,
    attempt_outcome,
    audit_class,
)
from tcpwatch.audit.detect import Thresholds
from tcpwatch.audit.policy import Decision, Policy
from tcpwatch.audit.policyfile import parse_policy
from tcpwatch.capture.segment import ACK, FIN, PSH, RST, SYN

POLICY = """
[groups.web]
hosts = ["10.1.0.0/24"]
inbound = [{ ports = 443, from = ["0.0.0.0/0"] }, { ports = 22, from = ["ops"] }]

[groups.ops]
hosts = ["10.9.0.0/24"]
inbound = [{ ports = 22, from = ["10.9.0.0/24"] }]
"""
WEB = "10.1.0.5"
OPS = "10.9.0.7"
OUTSIDER = "198.51.100.4"


def make_policy() -> Policy:
    return parse_policy(tomllib.loads(POLICY), "test.toml")


def completed(port: int = 443) -> dict[str, Any]:
    talk = Conversation(server_port=port)
    talk.handshake()
    talk.client(PSH | ACK, 20)
    talk.server(PSH | ACK, 200)
    talk.client(FIN | ACK)
    talk.server(FIN | ACK)
    talk.client(ACK)
    return track_one(talk.segments)


def rejected(port: int = 443, at: float = 1.0) -> dict[str, Any]:
    talk = Conversation(server_port=port)
    talk.client(SYN, at=at)
    talk.server(RST | ACK, at=at + 0.0001, seq=0)
    return track_one(talk.segments)


def unanswered(port: int = 443, at: float = 1.0) -> dict[str, Any]:
    talk = Conversation(server_port=port)
    talk.client(SYN, at=at)
    return track_one(talk.segments)


def unacknowledged(port: int = 443, at: float = 1.0) -> dict[str, Any]:
    talk = Conversation(server_port=port)
    talk.client(SYN, at=at)
    talk.server(SYN | ACK, at=at + 0.001)
    return track_one(talk.segments)


def between(record: dict[str, Any], orig: str, resp: str) -> dict[str, Any]:
    """Return ``record`` as if it had been captured between other hosts."""
    return {**record, "id.orig_h": orig, "id.resp_h": resp}


def test_outcome_of_each_handshake() -> None:
    assert attempt_outcome(completed()) == Outcome.ACCEPTED
    assert attempt_outcome(rejected()) == Outcome.REJECTED
    assert attempt_outcome(unanswered()) == Outcome.NO_REPLY
    assert attempt_outcome(unacknowledged()) == Outcome.ACCEPTED


def test_outcome_simultaneous_open() -> None:
    talk = Conversation()
    talk.client(SYN)
    talk.server(SYN)
    talk.server(SYN | ACK, seq=5000)
    talk.client(SYN | ACK, seq=1000)
    record = track_one(talk.segments)
    assert record["handshake"] == "simultaneous_open"
    assert attempt_outcome(record) == Outcome.ACCEPTED


def test_outcome_midstream() -> None:
    with_data = Conversation()
    with_data.client(PSH | ACK, 100)
    with_data.server(ACK)
    stray = Conversation()
    stray.client(ACK)
    records = track(with_data.segments) + track(stray.segments)
    assert [record["handshake"] for record in records] == ["not_seen", "not_seen"]
    assert attempt_outcome(records[0]) == Outcome.ACCEPTED
    assert attempt_outcome(records[1]) is None


@pytest.mark.parametrize(
    ("covered", "allowed", "outcome", "expected"),
    [
        (True, True, Outcome.ACCEPTED, AuditClass.ALLOWED),
        (True, True, Outcome.REJECTED, AuditClass.BROKEN_SERVICE),
        (True, True, Outcome.NO_REPLY, AuditClass.BROKEN_SERVICE),
        (True, False, Outcome.ACCEPTED, AuditClass.HOLE),
        (True, False, Outcome.REJECTED, AuditClass.BLOCKED),
        (True, False, Outcome.NO_REPLY, AuditClass.BLOCKED),
        (False, True, Outcome.ACCEPTED, AuditClass.NOT_COVERED),
        (False, True, Outcome.NO_REPLY, AuditClass.NOT_COVERED),
    ],
)
def test_audit_class_table(
    covered: bool, allowed: bool, outcome: Outcome, expected: AuditClass
) -> None:
    assert audit_class(Decision(covered, allowed), outcome) == expected


def test_classifier_every_class() -> None:
    classifier = AuditClassifier(make_policy())
    results = [
        classifier.add(between(completed(443), OUTSIDER, WEB)),
        classifier.add(between(rejected(443), OUTSIDER, WEB)),
        classifier.add(between(completed(22), OUTSIDER, WEB)),
        classifier.add(between(unanswered(22), OUTSIDER, WEB)),
        classifier.add(between(completed(80), OUTSIDER, "192.0.2.1")),
    ]
    classes = [result.audit_class for result in results if result is not None]
    report = classifier.report()
    assert classes == [
        AuditClass.ALLOWED,
        AuditClass.BROKEN_SERVICE,
        AuditClass.HOLE,
        AuditClass.BLOCKED,
        AuditClass.NOT_COVERED,
    ]
    assert report.counts == dict.fromkeys(AuditClass, 1)
    assert report.records == 5
    assert report.attempts == 5
    assert [finding.audit_class for finding in report.findings] == [
        AuditClass.HOLE,
        AuditClass.BROKEN_SERVICE,
        AuditClass.BLOCKED,
        AuditClass.ALLOWED,
    ]


def test_classifier_finding_names_rule() -> None:
    classifier = AuditClassifier(make_policy())
    classifier.add(between(completed(22), OPS, WEB))
    finding = classifier.report().findings[0]
    assert finding.audit_class == AuditClass.ALLOWED
    assert [rule.name for rule in finding.rules] == ["web inbound #2"]
    assert finding.missing == ()


def test_classifier_hole_names_missing_rule() -> None:
    classifier = AuditClassifier(make_policy())
    classifier.add(between(completed(22), OUTSIDER, WEB))
    classifier.add(between(completed(22), "198.51.100.5", "10.1.0.6"))
    report = classifier.report()
    [hole] = report.holes
    assert hole.rules == ()
    assert str(hole.missing[0]) == (
        "no inbound rule of web allows tcp/22 from hosts outside every group"
    )
    assert hole.count == 2
    assert hole.sources.counts == {OUTSIDER: 1, "198.51.100.5": 1}
    assert hole.destinations.counts == {WEB: 1, "10.1.0.6": 1}


def test_classifier_findings_split_by_key() -> None:
    classifier = AuditClassifier(make_policy())
    classifier.add(between(completed(25), OUTSIDER, WEB))
    classifier.add(between(completed(26), OUTSIDER, WEB))
    classifier.add(between(completed(25), OPS, WEB))
    texts = sorted(str(f.missing[0]) for f in classifier.report().holes)
    assert texts == [
        "no inbound rule of web allows tcp/25 from hosts outside every group",
        "no inbound rule of web allows tcp/25 from ops",
        "no inbound rule of web allows tcp/26 from hosts outside every group",
    ]


def test_classifier_examples_limited() -> None:
    classifier = AuditClassifier(make_policy(), examples=2)
    record = between(completed(443), OUTSIDER, WEB)
    for _ in range(5):
        classifier.add(record)
    [finding] = classifier.report().findings
    assert finding.count == 5
    assert len(finding.examples) == 2
    assert finding.omitted == 3
    assert finding.examples[0]["uid"] == record["uid"]
    assert finding.examples[0]["verdict"] == record["verdict"]


def test_classifier_examples_zero_keeps_all() -> None:
    classifier = AuditClassifier(make_policy(), examples=0)
    for _ in range(30):
        classifier.add(between(rejected(443), OUTSIDER, WEB))
    [finding] = classifier.report().findings
    assert len(finding.examples) == 30
    assert finding.omitted == 0


def test_classifier_strays_counted() -> None:
    stray = Conversation()
    stray.client(ACK)
    classifier = AuditClassifier(make_policy())
    result = classifier.add(between(track_one(stray.segments), OUTSIDER, WEB))
    report = classifier.report()
    assert result is None
    assert report.strays == 1
    assert report.records == 1
    assert report.attempts == 0


def test_classifier_unused_paths() -> None:
    classifier = AuditClassifier(make_policy())
    classifier.add(between(completed(443), OUTSIDER, WEB))
    classifier.add(between(rejected(22), OPS, WEB))
    classifier.add(between(unanswered(22), OPS, WEB))
    unused = [(path.label, failed) for path, failed in classifier.report().unused]
    assert unused == [
        ("web inbound tcp/22 from ops", 2),
        ("ops inbound tcp/22 from 10.9.0.0/24", 0),
    ]


def test_classifier_scanner_attempts_marked() -> None:
    classifier = AuditClassifier(make_policy(), Thresholds(scan_ports=3))
    for port in (1, 2, 3):
        classifier.add(between(rejected(port, at=float(port)), OUTSIDER, WEB))
    classifier.add(between(rejected(4), "198.51.100.99", WEB))
    report = classifier.report()
    by_port = {finding.port: finding for finding in report.findings}
    assert [scan.source for scan in report.scans] == [OUTSIDER]
    assert by_port[1].from_scanners == 1
    assert by_port[4].from_scanners == 0


def test_classifier_half_open_attempts_flood() -> None:
    classifier = AuditClassifier(
        make_policy(), Thresholds(flood_attempts=4, flood_window=1.0)
    )
    for index in range(4):
        at = 10.0 + index * 0.1
        record = unacknowledged(443, at=at) if index % 2 else unanswered(443, at=at)
        classifier.add(between(record, f"203.0.113.{index}", WEB))
    # A SYN-ACK answered by the originator's RST (a SYN scan) is not half-open.
    talk = Conversation()
    talk.client(SYN, at=10.5)
    talk.server(SYN | ACK, at=10.501)
    talk.client(RST, at=10.502)
    classifier.add(between(track_one(talk.segments), OUTSIDER, WEB))
    [flood] = classifier.report().floods
    assert flood.destination == f"{WEB}:443"
    assert flood.half_open == 4
    assert flood.no_reply == 2
    assert flood.unacknowledged == 2
    assert flood.sources == 4


def test_classifier_flood_ipv6_destination() -> None:
    policy = parse_policy(
        tomllib.loads('[groups.v6]\nhosts = ["2001:db8::/64"]\ninbound = []'), "t"
    )
    classifier = AuditClassifier(policy, Thresholds(flood_attempts=2))
    for index in range(2):
        classifier.add(
            between(unanswered(443, at=float(index)), "2001:db8:1::1", "2001:db8::5")
        )
    [flood] = classifier.report().floods
    assert flood.destination == "[2001:db8::5]:443"
