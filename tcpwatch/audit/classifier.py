"""Sort connection records into audit classes against a policy.

``AuditClassifier.add`` takes one connection record at a time (the dict of
``tcpwatch.flow.record.build_record``), so the same object serves a capture
file and a live interface: feed it each finished connection and call
``report`` whenever a summary is wanted.

An attempt is *accepted* when the responder answered the SYN with a SYN-ACK
(handshake ``complete``, ``simultaneous_open`` or ``incomplete``): the SYN got
through every firewall on the way and a service listened. It is *rejected*
when the responder answered with a RST, and *no_reply* when nothing came
back. A connection whose opening was not captured (``not_seen``) counts as
accepted when it carried payload, because a stateful firewall passed it; one
that carried none is a stray packet, not an attempt, and is only counted.
"""

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tcpwatch.audit.detect import Flood, FloodDetector, Scan, ScanDetector, Thresholds
from tcpwatch.audit.policy import AllowedPath, Decision, MissingRule, Policy, Rule

# Distinct sources or destinations counted per finding; the rest are summed.
_MAX_TALLY = 1000

EXAMPLE_FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "handshake",
    "conn_state",
    "roles_inferred",
    "verdict",
)
"""The record fields kept for each connection a finding lists."""


class Outcome(enum.StrEnum):
    """The responder's reply to one connection attempt."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    NO_REPLY = "no_reply"


class AuditClass(enum.StrEnum):
    """The meaning of an attempt for the policy. The values appear in JSON output."""

    HOLE = "hole"
    """Denied by the policy, yet accepted: the real firewall is more open."""
    BROKEN_SERVICE = "broken_service"
    """Allowed by the policy, but rejected or unanswered."""
    BLOCKED = "blocked"
    """Denied by the policy, and rejected or unanswered: the firewall did its job."""
    ALLOWED = "allowed"
    """Allowed by the policy and accepted."""
    NOT_COVERED = "not_covered"
    """No group of either endpoint restricts this connection."""


def attempt_outcome(record: Mapping[str, Any]) -> Outcome | None:
    """Return how the attempt was answered, or None for a stray mid-stream packet."""
    handshake = record["handshake"]
    if handshake in ("complete", "simultaneous_open", "incomplete"):
        return Outcome.ACCEPTED
    if handshake == "rejected":
        return Outcome.REJECTED
    if handshake == "no_reply":
        return Outcome.NO_REPLY
    if record["orig_bytes"] or record["resp_bytes"]:
        return Outcome.ACCEPTED
    return None


def audit_class(decision: Decision, outcome: Outcome) -> AuditClass:
    """Return the audit class for a policy decision and an attempt outcome."""
    if not decision.covered:
        return AuditClass.NOT_COVERED
    accepted = outcome == Outcome.ACCEPTED
    if decision.allowed:
        return AuditClass.ALLOWED if accepted else AuditClass.BROKEN_SERVICE
    return AuditClass.HOLE if accepted else AuditClass.BLOCKED


@dataclass(frozen=True)
class Classification:
    """The audit of one connection record."""

    audit_class: AuditClass
    outcome: Outcome
    decision: Decision


class Tally:
    """A counter of at most ``limit`` distinct keys; later new keys go to ``others``."""

    def __init__(self, limit: int = _MAX_TALLY) -> None:
        self.counts: Counter[str] = Counter()
        self.others = 0
        self.limit = limit

    def add(self, key: str) -> None:
        if key in self.counts or len(self.counts) < self.limit:
            self.counts[key] += 1
        else:
            self.others += 1


@dataclass
class Finding:
    """Connections of one audit class that share the rules that decided them."""

    audit_class: AuditClass
    rules: tuple[Rule, ...]
    """The rules that allowed the connections (empty when denied)."""
    missing: tuple[MissingRule, ...]
    """The rules that would have allowed them (empty when allowed)."""
    port: int
    count: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    sources: Tally = field(default_factory=Tally)
    destinations: Tally = field(default_factory=Tally)
    first_ts: float = float("inf")
    last_ts: float = float("-inf")
    examples: list[dict[str, Any]] = field(default_factory=list)
    from_scanners: int = 0
    """Connections whose originator was found scanning; set by ``report``."""

    @property
    def omitted(self) -> int:
        """Connections counted but not kept in ``examples``."""
        return self.count - len(self.examples)


@dataclass
class AuditReport:
    """Everything the audit found, as of the ``report`` call."""

    policy: Policy
    records: int
    """Connection records seen."""
    strays: int
    """Records that were no connection attempt (mid-stream, no payload)."""
    counts: dict[AuditClass, int]
    findings: list[Finding]
    """Covered attempts, holes first, then broken services, blocked, allowed."""
    not_covered: Finding
    unused: list[tuple[AllowedPath, int]]
    """Allowed paths no accepted connection used, with their failed attempts."""
    scans: list[Scan]
    floods: list[Flood]
    thresholds: Thresholds

    @property
    def attempts(self) -> int:
        return sum(self.counts.values())

    @property
    def holes(self) -> list[Finding]:
        return [f for f in self.findings if f.audit_class == AuditClass.HOLE]


_CLASS_ORDER = {name: index for index, name in enumerate(AuditClass)}


class AuditClassifier:
    """Classify connection records one at a time and summarise them.

    Args:
        policy: the groups and rules to audit against.
        thresholds: when failed attempts are a scan and half-open ones a flood.
        examples: connections kept per finding for listing; 0 keeps all.
    """

    def __init__(
        self,
        policy: Policy,
        thresholds: Thresholds | None = None,
        examples: int = 10,
    ) -> None:
        self.policy = policy
        self.thresholds = thresholds or Thresholds()
        self.examples = examples
        self.records = 0
        self.strays = 0
        self._findings: dict[tuple[Any, ...], Finding] = {}
        self._not_covered = Finding(AuditClass.NOT_COVERED, (), (), 0)
        self._used: Counter[AllowedPath] = Counter()
        self._failed: Counter[AllowedPath] = Counter()
        self._scans = ScanDetector(self.thresholds)
        self._floods = FloodDetector(self.thresholds)

    def add(self, record: Mapping[str, Any]) -> Classification | None:
        """Classify one connection record; return None if it was no attempt."""
        self.records += 1
        outcome = attempt_outcome(record)
        if outcome is None:
            self.strays += 1
            return None
        orig_h, resp_h = record["id.orig_h"], record["id.resp_h"]
        resp_p = record["id.resp_p"]
        ts = record["ts"]
        decision = self.policy.decide(orig_h, resp_h, resp_p)
        kind = audit_class(decision, outcome)
        if kind == AuditClass.NOT_COVERED:
            finding = self._not_covered
        else:
            finding = self._finding(kind, decision, resp_p)
            used = self._used if outcome == Outcome.ACCEPTED else self._failed
            for path in decision.paths:
                used[path] += 1
        self._count(finding, record, outcome)
        self._scans.add(ts, orig_h, resp_h, resp_p, outcome)
        if _is_half_open(record):
            destination = f"{_host(resp_h)}:{resp_p}"
            no_reply = outcome == Outcome.NO_REPLY
            self._floods.add(ts, orig_h, destination, no_reply)
        return Classification(kind, outcome, decision)

    def report(self) -> AuditReport:
        """Return the findings, unused paths, scans and floods so far."""
        scans = self._scans.scans()
        scanners = {scan.source for scan in scans}
        findings = sorted(
            self._findings.values(),
            key=lambda f: (_CLASS_ORDER[f.audit_class], -f.count, f.port),
        )
        for finding in (*findings, self._not_covered):
            finding.from_scanners = sum(
                finding.sources.counts[source] for source in scanners
            )
        counts = dict.fromkeys(AuditClass, 0)
        for finding in findings:
            counts[finding.audit_class] += finding.count
        counts[AuditClass.NOT_COVERED] = self._not_covered.count
        unused = [
            (path, self._failed[path])
            for path in self.policy.paths()
            if not self._used[path]
        ]
        return AuditReport(
            policy=self.policy,
            records=self.records,
            strays=self.strays,
            counts=counts,
            findings=findings,
            not_covered=self._not_covered,
            unused=unused,
            scans=scans,
            floods=self._floods.floods(),
            thresholds=self.thresholds,
        )

    def _finding(self, kind: AuditClass, decision: Decision, port: int) -> Finding:
        rules = tuple(dict.fromkeys(path.rule for path in decision.paths))
        if kind in (AuditClass.HOLE, AuditClass.BLOCKED):
            rules = ()
        key = (kind, tuple(rule.name for rule in rules), decision.missing, port)
        finding = self._findings.get(key)
        if finding is None:
            finding = Finding(kind, rules, decision.missing, port)
            self._findings[key] = finding
        return finding

    def _count(
        self, finding: Finding, record: Mapping[str, Any], outcome: Outcome
    ) -> None:
        finding.count += 1
        finding.outcomes[outcome] += 1
        finding.sources.add(record["id.orig_h"])
        finding.destinations.add(record["id.resp_h"])
        ts = record["ts"]
        finding.first_ts = min(finding.first_ts, ts)
        finding.last_ts = max(finding.last_ts, ts)
        if not self.examples or len(finding.examples) < self.examples:
            finding.examples.append({name: record[name] for name in EXAMPLE_FIELDS})


def _is_half_open(record: Mapping[str, Any]) -> bool:
    """Return whether the attempt was left half-open: no answer, or no final ACK.

    A RST or FIN from either side ends the attempt, so it is not half-open.
    """
    handshake = record["handshake"]
    if handshake == "no_reply":
        return True
    if handshake != "incomplete":
        return False
    return record["teardown"] in ("open", "idle_timeout")


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
