"""The policy model: groups of hosts and the TCP rules that let traffic reach them.

The semantics are those of AWS security groups, so that a policy loaded from
Terraform means what it means in AWS:

- Rules only allow. A connection that no rule allows is denied.
- A host in several groups gets the union of their rules.
- Rules are stateful: only the direction of the SYN matters, because the
  replies of an allowed connection are allowed too.
- An inbound rule of one of the responder's groups must allow the originator.
  When every group of the originator restricts egress, an egress rule of one
  of them must also allow the responder.

A connection between hosts that are in no group, or whose only groups do not
restrict that direction, is not covered by the policy.
"""

import enum
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

OUTSIDE = "hosts outside every group"
"""The name of a peer that belongs to no group, in findings."""

# Addresses whose groups have been looked up, kept until this many.
_GROUP_CACHE_SIZE = 65536


class Direction(enum.StrEnum):
    """The end of a connection that a rule controls."""

    INBOUND = "inbound"
    """Connections the group's hosts accept: the peers are sources."""
    EGRESS = "egress"
    """Connections the group's hosts open: the peers are destinations."""


@dataclass(frozen=True)
class PortRange:
    """An inclusive range of TCP ports."""

    first: int
    last: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        if self.first == 0 and self.last == 65535:
            return "all ports"
        if self.first == self.last:
            return f"tcp/{self.first}"
        return f"tcp/{self.first}-{self.last}"


ALL_PORTS = PortRange(0, 65535)


# Peers and rules compare and hash by identity: each is one entry of one
# policy, and the audit counts traffic per entry on every connection.
@dataclass(frozen=True, eq=False)
class Peer:
    """One source (inbound rule) or destination (egress rule): a network or a group."""

    text: str
    """The peer as written in the policy."""
    network: Network | None = None
    group: str | None = None


@dataclass(frozen=True, eq=False)
class Rule:
    """One rule of a group: TCP ports and the peers allowed on them."""

    group: str
    direction: Direction
    name: str
    """The rule's place in the policy, e.g. ``aws_security_group.db ingress #1``."""
    ports: PortRange
    peers: tuple[Peer, ...]
    description: str = ""

    @property
    def label(self) -> str:
        """Return the rule in one line: name, ports and peers."""
        word = "from" if self.direction == Direction.INBOUND else "to"
        peers = ", ".join(peer.text for peer in self.peers)
        text = f"{self.name}: {self.ports} {word} {peers}"
        if self.description:
            text += f" ({self.description})"
        return text


@dataclass(frozen=True)
class AllowedPath:
    """One peer of one rule: the unit that is reported as used or unused."""

    rule: Rule
    peer: Peer

    @property
    def label(self) -> str:
        word = "from" if self.rule.direction == Direction.INBOUND else "to"
        return (
            f"{self.rule.group} {self.rule.direction} {self.rule.ports} "
            f"{word} {self.peer.text}"
        )


@dataclass(frozen=True)
class MissingRule:
    """The rule that would have allowed a denied connection."""

    direction: Direction
    groups: tuple[str, ...]
    """The groups whose rules were searched."""
    port: int
    peer: str
    """The peer's groups, or ``OUTSIDE``."""

    def __str__(self) -> str:
        word = "from" if self.direction == Direction.INBOUND else "to"
        owners = ", ".join(self.groups)
        return (
            f"no {self.direction} rule of {owners} allows tcp/{self.port} "
            f"{word} {self.peer}"
        )


@dataclass(frozen=True)
class Decision:
    """The policy's decision on one connection attempt."""

    covered: bool
    """False when no group restricts either end of the connection."""
    allowed: bool
    paths: tuple[AllowedPath, ...] = ()
    """Every allowed path that matches the connection, inbound and egress."""
    missing: tuple[MissingRule, ...] = ()


@dataclass
class Group:
    """Hosts that share rules, like the members of one security group."""

    name: str
    networks: tuple[Network, ...]
    inbound: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] | None = None
    """Egress rules; None when the group does not restrict outbound connections."""


@dataclass
class Policy:
    """Groups and their rules, with the notes made while loading them.

    Args:
        groups: the groups by name.
        source: the file the policy was read from, for reports.
        notes: facts about the policy a reader should know (a group without
            members, a rule for another protocol that was skipped).
        unsupported: constructs the loader could not read, each named by where
            it is written. The audit runs without them, so it may report
            connections as denied that the real rules allow.
    """

    groups: dict[str, Group]
    source: str = ""
    notes: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    _cache: dict[str, tuple[Address, tuple[Group, ...]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def groups_of(self, address: str) -> tuple[Group, ...]:
        """Return the groups whose hosts include ``address`` (text form)."""
        return self._lookup(address)[1]

    def _lookup(self, address: str) -> tuple[Address, tuple[Group, ...]]:
        """Return ``address`` parsed, and its groups."""
        found = self._cache.get(address)
        if found is None:
            parsed = ipaddress.ip_address(address)
            groups = tuple(
                group
                for group in self.groups.values()
                if _in_networks(parsed, group.networks)
            )
            if len(self._cache) >= _GROUP_CACHE_SIZE:
                self._cache.clear()
            found = self._cache[address] = (parsed, groups)
        return found

    def paths(self) -> Iterator[AllowedPath]:
        """Iterate over every allowed path, group by group, in rule order."""
        for group in self.groups.values():
            for rule in (*group.inbound, *(group.egress or ())):
                for peer in rule.peers:
                    yield AllowedPath(rule, peer)

    def decide(self, orig_h: str, resp_h: str, resp_p: int) -> Decision:
        """Return the decision on ``orig_h`` connecting to ``resp_h:resp_p``."""
        resp_address, resp_groups = self._lookup(resp_h)
        orig_address, orig_groups = self._lookup(orig_h)
        restricts_egress = bool(orig_groups) and all(
            group.egress is not None for group in orig_groups
        )
        if not resp_groups and not restricts_egress:
            return Decision(covered=False, allowed=True)
        paths: list[AllowedPath] = []
        missing: list[MissingRule] = []
        if resp_groups:
            rules = [rule for group in resp_groups for rule in group.inbound]
            found = list(_matching(rules, orig_address, orig_groups, resp_p))
            if not found:
                missing.append(
                    MissingRule(
                        Direction.INBOUND,
                        _names(resp_groups),
                        resp_p,
                        self._describe(orig_groups),
                    )
                )
            paths += found
        if restricts_egress:
            rules = [rule for group in orig_groups for rule in group.egress or ()]
            found = list(_matching(rules, resp_address, resp_groups, resp_p))
            if not found:
                missing.append(
                    MissingRule(
                        Direction.EGRESS,
                        _names(orig_groups),
                        resp_p,
                        self._describe(resp_groups),
                    )
                )
            paths += found
        return Decision(
            covered=True,
            allowed=not missing,
            paths=tuple(paths),
            missing=tuple(missing),
        )

    @staticmethod
    def _describe(groups: tuple[Group, ...]) -> str:
        return ", ".join(_names(groups)) if groups else OUTSIDE


def _matching(
    rules: Iterable[Rule], address: Address, groups: tuple[Group, ...], port: int
) -> Iterator[AllowedPath]:
    """Yield each path of ``rules`` that allows the peer at ``address`` on ``port``."""
    for rule in rules:
        if port not in rule.ports:
            continue
        for peer in rule.peers:
            if peer.network is not None:
                if _in_networks(address, (peer.network,)):
                    yield AllowedPath(rule, peer)
            elif any(group.name == peer.group for group in groups):
                yield AllowedPath(rule, peer)


def _names(groups: tuple[Group, ...]) -> tuple[str, ...]:
    return tuple(group.name for group in groups)


def _in_networks(address: Address, networks: Iterable[Network]) -> bool:
    return any(
        address.version == network.version and address in network
        for network in networks
    )


def parse_network(text: str) -> Network:
    """Return the network written as an address or a CIDR block.

    Raises:
        ValueError: ``text`` is neither, or has host bits set after the
            prefix; the message names the problem and the fix.
    """
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address or CIDR block; "
            "write e.g. '10.0.1.5', '10.0.1.0/24' or '2001:db8::/32'"
        ) from None
    raise ValueError(
        f"{text!r} has host bits set after the /{loose.prefixlen} prefix; "
        f"write the network as '{loose}'"
    )


def looks_like_network(text: str) -> bool:
    """Return whether ``text`` is meant as an address or CIDR rather than a name."""
    head = text.strip().split("/", 1)[0]
    try:
        ipaddress.ip_address(head)
    except ValueError:
        return False
    return True
