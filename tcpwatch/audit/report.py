"""The audit report: a rich renderable and a JSON document.

Text from the policy file (group names, descriptions) and from captures goes
into ``rich.text.Text`` objects through ``printable``, so neither rich markup
nor terminal escape sequences in it take effect.
"""

import dataclasses
import datetime
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from tcpwatch.audit.classifier import AuditClass, AuditReport, Finding, Outcome, Tally
from tcpwatch.audit.detect import Flood, Scan, compress_ports
from tcpwatch.audit.policy import AllowedPath, MissingRule, Policy
from tcpwatch.render.style import HANDSHAKE_STYLES, printable
from tcpwatch.render.table import endpoint_text
from tcpwatch.units import format_seconds

CLASS_TITLES = {
    AuditClass.HOLE: "holes: denied by the policy, yet accepted",
    AuditClass.BROKEN_SERVICE: "broken services: allowed, but refused or unanswered",
    AuditClass.BLOCKED: "blocked: denied, and refused or unanswered",
    AuditClass.ALLOWED: "allowed and accepted",
    AuditClass.NOT_COVERED: "not covered: no group restricts these connections",
}
CLASS_STYLES = {
    AuditClass.HOLE: "bold red",
    AuditClass.BROKEN_SERVICE: "yellow",
    AuditClass.BLOCKED: "cyan",
    AuditClass.ALLOWED: "green",
    AuditClass.NOT_COVERED: "dim",
}
# Sources or destinations named per finding in the rich report.
_TOP = 5
# Indentation of the details under a finding, scan or flood.
_INDENT = 2
# Width from which example connections are a table rather than two lines each.
_WIDE_EXAMPLES = 118


# The space between a number and the unit that ``tcpwatch.units`` writes after it.
_UNIT_SPACE = re.compile(r"(?<=\d) (?=(?:µs|ms|s|min|h|B|kB|MB|GB|TB)\b)")
# Holds the place of a unit space while rich wraps. rich breaks lines at every
# character that Python's ``str.isspace`` accepts, the no-break space U+00A0
# too (rich 15.0), so the placeholder is a one-cell private-use character.
_HELD_SPACE = "\ue000"


class UnitText:
    """A text that wraps like ``rich.text.Text`` but never between a number
    and its unit, so that "after 14 µs" never ends a line with "14"."""

    def __init__(self, text: Text) -> None:
        self.text = text

    def _with_held_spaces(self) -> Text:
        text = self.text.copy()
        text.plain = _UNIT_SPACE.sub(_HELD_SPACE, text.plain)
        return text

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        lines = self._with_held_spaces().wrap(console, options.max_width)
        text = Text("\n").join(lines)
        text.plain = text.plain.replace(_HELD_SPACE, " ")
        # Every line already fits, so rich has nothing left to wrap.
        text.no_wrap = True
        yield text

    def __rich_measure__(
        self, console: Console, options: ConsoleOptions
    ) -> Measurement:
        return Measurement.get(console, options, self._with_held_spaces())


def format_time(ts: float) -> str:
    """Return a capture timestamp as UTC date and time to the millisecond."""
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class AuditView:
    """The rich report of an audit.

    Holes, broken services and blocked attempts list their connections;
    allowed traffic is summed per rule.
    """

    def __init__(self, report: AuditReport, captures: Iterable[str] = ()) -> None:
        self.report = report
        self.captures = list(captures)

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        report = self.report
        yield self._header()
        yield self._summary()
        for kind in (AuditClass.HOLE, AuditClass.BROKEN_SERVICE, AuditClass.BLOCKED):
            findings = [f for f in report.findings if f.audit_class == kind]
            if not findings:
                continue
            yield _section(
                CLASS_TITLES[kind], CLASS_STYLES[kind], _connections(findings)
            )
            # Failed attempts that all came from scanners are summed in one
            # line, so a port scan does not bury the rest. Holes are always listed.
            scanned = [
                f
                for f in findings
                if kind != AuditClass.HOLE and f.from_scanners == f.count
            ]
            scanned_ids = {id(f) for f in scanned}
            for finding in findings:
                if id(finding) not in scanned_ids:
                    yield _finding_view(finding, options.max_width)
            if scanned:
                yield _scanned_line(scanned, listed=len(scanned) < len(findings))
        allowed = [f for f in report.findings if f.audit_class == AuditClass.ALLOWED]
        if allowed:
            yield _section(
                CLASS_TITLES[AuditClass.ALLOWED], "green", _connections(allowed)
            )
            yield _allowed_table(allowed)
        if report.unused:
            yield _section("allowed paths no accepted connection used", "magenta", None)
            yield _unused_table(report.unused)
        if report.scans:
            yield _section("SYN scans", "bold red", _count(len(report.scans), "scan"))
            for scan in report.scans:
                yield _scan_view(scan)
        if report.floods:
            yield _section(
                "SYN floods", "bold red", _count(len(report.floods), "flood")
            )
            for flood in report.floods:
                yield _flood_view(flood)
        if report.not_covered.count:
            yield _section(CLASS_TITLES[AuditClass.NOT_COVERED], "dim", None)
            yield _not_covered_view(report.not_covered)
        yield from _policy_messages(report.policy)

    def _header(self) -> Text:
        report = self.report
        policy = report.policy
        text = Text("audit of ", style="bold")
        text.append(f"{report.attempts:,} connection attempts", style="bold")
        text.append(f" against {printable(policy.source)}")
        text.append(f" ({_count(len(policy.groups), 'group')})")
        if self.captures:
            text.append("\ncaptures: " + ", ".join(printable(c) for c in self.captures))
        if report.strays:
            text.append(
                f"\n{report.strays:,} mid-stream connections carried no payload "
                "and were not counted as attempts",
                style="dim",
            )
        return text

    def _summary(self) -> Table:
        table = Table(show_header=True, header_style="bold", pad_edge=False)
        table.add_column("class", no_wrap=True)
        table.add_column("attempts", justify="right")
        table.add_column("meaning")
        for kind in AuditClass:
            count = self.report.counts[kind]
            style = CLASS_STYLES[kind] if count else "dim"
            table.add_row(
                Text(str(kind), style=style),
                Text(f"{count:,}", style=style),
                Text(CLASS_TITLES[kind].split(": ", 1)[-1]),
            )
        return table


def _section(title: str, style: str, count: str | None) -> Text:
    """Return a section heading; ``count`` says what the section counts."""
    text = Text("\n" + title, style=style)
    if count is not None:
        text.append(f" ({count})", style=style)
    return text


def _connections(findings: list[Finding]) -> str:
    """Return how many connections ``findings`` cover, e.g. ``3 connections``."""
    return _count(sum(finding.count for finding in findings), "connection")


def _indented(*parts: RenderableType) -> Padding:
    """Return ``parts`` one below the other, indented so wrapped lines align."""
    return Padding(Group(*parts), (0, 0, 0, _INDENT), expand=False)


def _finding_view(finding: Finding, width: int) -> RenderableType:
    style = CLASS_STYLES[finding.audit_class]
    if finding.missing:
        head = Text("; ".join(printable(str(m)) for m in finding.missing), style=style)
    else:
        head = Text(", ".join(printable(rule.label) for rule in finding.rules))
        head.stylize(style)
    facts = Text(f"{_count(finding.count, 'connection')} on tcp/{finding.port}: ")
    facts.append(_outcome_text(finding))
    facts.append(f"; from {_tally_text(finding.sources)}")
    facts.append(f"; to {_tally_text(finding.destinations)}")
    if finding.from_scanners:
        facts.append(
            f"; {finding.from_scanners:,} of them from scanning sources", style="red"
        )
    if width - _INDENT < _WIDE_EXAMPLES:
        examples: RenderableType = _examples_lines(finding)
    else:
        examples = _examples_table(finding)
    parts: list[RenderableType] = [facts, examples]
    if finding.omitted:
        parts.append(Text(f"and {finding.omitted:,} more connections", style="dim"))
    return Group(head, _indented(*parts))


def _scanned_line(findings: list[Finding], listed: bool) -> Text:
    attempts = sum(finding.count for finding in findings)
    ports = compress_ports(sorted({finding.port for finding in findings}))
    noun = "more finding" if listed else "finding"
    return Text(
        f"{_count(len(findings), noun)} with {_count(attempts, 'attempt')} on "
        f"{_listing(ports, 10)} came only from scanning sources (see SYN scans; "
        "--format json lists them)",
        style="dim",
    )


def _outcome_text(finding: Finding) -> str:
    words = []
    for outcome, word in (
        (Outcome.ACCEPTED, "accepted"),
        (Outcome.REJECTED, "refused"),
        (Outcome.NO_REPLY, "unanswered"),
    ):
        if finding.outcomes[outcome]:
            words.append(f"{finding.outcomes[outcome]:,} {word}")
    return ", ".join(words)


def _tally_text(tally: Tally) -> str:
    parts = [f"{key} ({count:,})" for key, count in tally.counts.most_common(_TOP)]
    hidden = max(0, len(tally.counts) - _TOP)
    if hidden or tally.others:
        # Addresses past the tally's limit are counted together, not one by one.
        parts.append(f"{hidden:,}{'+' if tally.others else ''} more")
    return ", ".join(parts)


def _examples_lines(finding: Finding) -> UnitText:
    """Return the example connections, two lines each, for narrow screens."""
    text = Text()
    for example in finding.examples:
        handshake = example["handshake"]
        text.append(format_time(example["ts"]) + " UTC  ")
        text.append(endpoint_text(example["id.orig_h"], example["id.orig_p"]))
        text.append(" -> ")
        text.append(endpoint_text(example["id.resp_h"], example["id.resp_p"]))
        text.append("\n  ")
        text.append(handshake, style=HANDSHAKE_STYLES.get(handshake, ""))
        text.append(f"  {example['uid']}", style="dim")
        text.append(f"  {example['verdict']}\n")
    text.rstrip()
    return UnitText(text)


def _examples_table(finding: Finding) -> Table:
    table = Table(
        show_header=True, header_style="dim", pad_edge=False, box=None, padding=(0, 1)
    )
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("uid", no_wrap=True, style="dim")
    table.add_column("originator", no_wrap=True)
    table.add_column("responder", no_wrap=True)
    table.add_column("handshake", no_wrap=True)
    table.add_column("verdict", overflow="fold")
    for example in finding.examples:
        handshake = example["handshake"]
        table.add_row(
            Text(format_time(example["ts"])),
            Text(example["uid"]),
            Text(endpoint_text(example["id.orig_h"], example["id.orig_p"])),
            Text(endpoint_text(example["id.resp_h"], example["id.resp_p"])),
            Text(handshake, style=HANDSHAKE_STYLES.get(handshake, "")),
            UnitText(Text(example["verdict"])),
        )
    return table


def _allowed_table(findings: list[Finding]) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    table.add_column("rule")
    table.add_column("port", justify="right", no_wrap=True)
    table.add_column("connections", justify="right", no_wrap=True)
    table.add_column("sources")
    for finding in findings:
        table.add_row(
            Text(", ".join(printable(rule.label) for rule in finding.rules)),
            Text(str(finding.port)),
            Text(f"{finding.count:,}"),
            Text(_tally_text(finding.sources)),
        )
    return table


def _unused_table(unused: list[tuple[AllowedPath, int]]) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    table.add_column("allowed path")
    table.add_column("rule")
    table.add_column("failed attempts", justify="right", no_wrap=True)
    for path, failed in unused:
        table.add_row(
            Text(printable(path.label)),
            Text(printable(path.rule.name), style="dim"),
            Text(f"{failed:,}" if failed else "-", style="yellow" if failed else "dim"),
        )
    return table


def _scan_view(scan: Scan) -> RenderableType:
    if scan.kind == "vertical":
        noun = "port"
        what = f"{_count(scan.distinct, noun)} of {scan.target}"
    else:
        noun = "host"
        what = f"{scan.target} on {_count(scan.distinct, noun)}"
    head = Text(f"{scan.kind} scan: {scan.source} probed {what}", style="bold")
    span = format_seconds(scan.window_end - scan.window_start)
    parts: list[RenderableType] = [
        UnitText(
            Text(
                f"{_count(scan.peak, noun)} within {span} from "
                f"{format_time(scan.window_start)} UTC; {scan.rejected:,} refused, "
                f"{scan.no_reply:,} unanswered"
            )
        ),
        Text(f"probed: {_listing(scan.probed)}"),
    ]
    if scan.accepted:
        parts.append(Text(f"accepted: {_listing(scan.accepted)}", style="red"))
    return Group(head, _indented(*parts))


def _flood_view(flood: Flood) -> RenderableType:
    head = Text(f"SYN flood on {flood.destination}", style="bold")
    span = format_seconds(flood.window_end - flood.window_start)
    totals = Text(
        f"{_count(flood.peak, 'half-open attempt')} within {span} from "
        f"{format_time(flood.window_start)} UTC; {flood.half_open:,} in all: "
        f"{flood.no_reply:,} unanswered, {flood.unacknowledged:,} with the "
        "SYN-ACK never acknowledged"
    )
    more = "+" if flood.sources_capped else ""
    sources = ", ".join(f"{source} ({count:,})" for source, count in flood.top_sources)
    senders = Text(f"{flood.sources:,}{more} sources; most attempts from {sources}")
    return Group(head, _indented(UnitText(totals), senders))


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _not_covered_view(finding: Finding) -> Padding:
    text = Text(f"{_count(finding.count, 'attempt')} ({_outcome_text(finding)})")
    text.append(f"; to {_tally_text(finding.destinations)}")
    return _indented(text)


def _listing(items: tuple[str, ...], limit: int = 40) -> str:
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit:,} more"
    return shown


def _policy_messages(policy: Policy) -> Iterable[RenderableType]:
    if policy.unsupported:
        yield _section(
            "not read from the policy (the real rules may allow more)",
            "bold yellow",
            _count(len(policy.unsupported), "entry").replace("entrys", "entries"),
        )
        for entry in policy.unsupported:
            yield _indented(Text(printable(entry), style="yellow"))
    if policy.notes:
        yield _section("policy notes", "dim", None)
        for entry in policy.notes:
            yield _indented(Text(printable(entry), style="dim"))


# -- JSON ------------------------------------------------------------------


def report_json(report: AuditReport, captures: Iterable[str] = ()) -> dict[str, Any]:
    """Return the report as a JSON-ready dict (documented in docs/audit.md)."""
    return {
        "policy": _policy_json(report.policy),
        "captures": list(captures),
        "records": report.records,
        "attempts": report.attempts,
        "strays": report.strays,
        "classes": {str(kind): count for kind, count in report.counts.items()},
        "findings": [_finding_json(finding) for finding in report.findings],
        "not_covered": _finding_json(report.not_covered),
        "unused_paths": [_path_json(path, failed) for path, failed in report.unused],
        "scans": [dataclasses.asdict(scan) for scan in report.scans],
        "floods": [dataclasses.asdict(flood) for flood in report.floods],
        "thresholds": dataclasses.asdict(report.thresholds),
    }


def _policy_json(policy: Policy) -> dict[str, Any]:
    groups = {}
    for name, group in policy.groups.items():
        groups[name] = {
            "hosts": [str(network) for network in group.networks],
            "inbound": [rule.label for rule in group.inbound],
            "egress": None
            if group.egress is None
            else [rule.label for rule in group.egress],
        }
    return {
        "source": policy.source,
        "groups": groups,
        "notes": list(policy.notes),
        "unsupported": list(policy.unsupported),
    }


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "class": str(finding.audit_class),
        "port": finding.port,
        "rules": [rule.label for rule in finding.rules],
        "missing": [_missing_json(missing) for missing in finding.missing],
        "connections": finding.count,
        "accepted": finding.outcomes[Outcome.ACCEPTED],
        "rejected": finding.outcomes[Outcome.REJECTED],
        "no_reply": finding.outcomes[Outcome.NO_REPLY],
        "from_scanners": finding.from_scanners,
        "sources": dict(finding.sources.counts.most_common()),
        "other_sources": finding.sources.others,
        "destinations": dict(finding.destinations.counts.most_common()),
        "other_destinations": finding.destinations.others,
        "first_ts": finding.first_ts if finding.count else None,
        "last_ts": finding.last_ts if finding.count else None,
        "examples": finding.examples,
        "omitted": finding.omitted,
    }


def _missing_json(missing: MissingRule) -> dict[str, Any]:
    return {
        "direction": str(missing.direction),
        "groups": list(missing.groups),
        "port": missing.port,
        "peer": missing.peer,
        "text": str(missing),
    }


def _path_json(path: AllowedPath, failed: int) -> dict[str, Any]:
    return {
        "group": path.rule.group,
        "direction": str(path.rule.direction),
        "ports": str(path.rule.ports),
        "peer": path.peer.text,
        "rule": path.rule.name,
        "failed_attempts": failed,
    }
