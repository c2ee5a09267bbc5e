"""Load a policy from tcpwatch's TOML policy file.

The schema, documented with an example in docs/audit.md::

    [groups.db]
    hosts = ["10.0.2.0/24"]
    inbound = [{ ports = 3306, from = ["app"], description = "MySQL" }]
    egress = []

``hosts`` lists addresses and CIDR blocks. Each ``inbound`` rule names ports
(a number, ``"8000-8099"`` or ``"all"``) and the sources allowed on them
(addresses, CIDR blocks or group names). ``egress`` rules name destinations
with ``to``; a group without an ``egress`` key does not restrict outbound
connections, and ``egress = []`` allows none.
"""

import tomllib
from pathlib import Path
from typing import Any

from tcpwatch.audit.policy import (
    ALL_PORTS,
    Direction,
    Group,
    Network,
    Peer,
    Policy,
    PortRange,
    Rule,
    looks_like_network,
    parse_network,
)
from tcpwatch.errors import PolicyError

_GROUP_KEYS = {"hosts", "inbound", "egress", "description"}
_RULE_KEYS = {
    Direction.INBOUND: {"ports", "from", "description"},
    Direction.EGRESS: {"ports", "to", "description"},
}


def load_policy(path: str | Path) -> Policy:
    """Read and check a TOML policy file.

    Raises:
        PolicyError: the file cannot be read, is not valid TOML, or breaks the
            schema; the message names the file, the key and the fix.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except OSError as error:
        raise PolicyError(
            f"cannot read policy file {str(path)!r}: {error.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{path}: invalid TOML: {error}") from None
    return parse_policy(document, str(path))


def parse_policy(document: dict[str, Any], source: str) -> Policy:
    """Build a policy from a parsed TOML document; ``source`` names it in errors."""
    unknown = set(document) - {"groups"}
    if unknown:
        raise PolicyError(
            f"{source}: unknown top-level key {sorted(unknown)[0]!r}; "
            "a policy file has only a [groups.NAME] table per group"
        )
    tables = document.get("groups")
    if not isinstance(tables, dict) or not tables:
        raise PolicyError(
            f"{source}: no groups defined; add at least one [groups.NAME] table "
            "with 'hosts' and 'inbound'"
        )
    groups = {
        name: Group(name, _hosts(source, name, table))
        for name, table in _group_tables(source, tables)
    }
    for name, table in tables.items():
        group = groups[name]
        group.inbound = _rules(source, groups, name, table, Direction.INBOUND)
        if "egress" in table:
            group.egress = _rules(source, groups, name, table, Direction.EGRESS)
    return Policy(groups, source=source)


def _group_tables(
    source: str, tables: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    checked = []
    for name, table in tables.items():
        where = f"{source}: groups.{name}"
        if looks_like_network(name):
            raise PolicyError(
                f"{where}: a group name must not look like an address, because "
                "sources would be ambiguous; rename the group"
            )
        if not isinstance(table, dict):
            raise PolicyError(f"{where}: expected a table, got {table!r}")
        unknown = set(table) - _GROUP_KEYS
        if unknown:
            raise PolicyError(
                f"{where}: unknown key {sorted(unknown)[0]!r}; "
                f"a group has {', '.join(sorted(_GROUP_KEYS))}"
            )
        checked.append((name, table))
    return checked


def _hosts(source: str, name: str, table: dict[str, Any]) -> tuple[Network, ...]:
    where = f"{source}: groups.{name}.hosts"
    hosts = table.get("hosts")
    if isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, list) or not hosts:
        raise PolicyError(
            f"{where}: missing or empty; list the group's addresses or CIDR "
            'blocks, e.g. hosts = ["10.0.1.0/24"]'
        )
    networks = []
    for index, text in enumerate(hosts, 1):
        if not isinstance(text, str):
            raise PolicyError(f"{where}[{index}]: expected a string, got {text!r}")
        try:
            networks.append(parse_network(text))
        except ValueError as error:
            raise PolicyError(f"{where}[{index}]: {error}") from None
    return tuple(networks)


def _rules(
    source: str,
    groups: dict[str, Group],
    name: str,
    table: dict[str, Any],
    direction: Direction,
) -> tuple[Rule, ...]:
    key = str(direction)
    where = f"{source}: groups.{name}.{key}"
    entries = table.get(key, [])
    if not isinstance(entries, list):
        raise PolicyError(
            f"{where}: expected a list of rule tables, e.g. "
            f'{key} = [{{ ports = 443, {_peer_key(direction)} = ["0.0.0.0/0"] }}]'
        )
    rules = []
    for index, entry in enumerate(entries, 1):
        rule_where = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{rule_where}: expected a table, got {entry!r}")
        unknown = set(entry) - _RULE_KEYS[direction]
        if unknown:
            raise PolicyError(
                f"{rule_where}: unknown key {sorted(unknown)[0]!r}; an {key} rule "
                f"has {', '.join(sorted(_RULE_KEYS[direction]))}"
            )
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise PolicyError(
                f"{rule_where}.description: expected a string, got {description!r}"
            )
        rules.append(
            Rule(
                group=name,
                direction=direction,
                name=f"{name} {key} #{index}",
                ports=parse_ports(entry.get("ports"), f"{rule_where}.ports"),
                peers=_peers(groups, entry, direction, rule_where),
                description=description,
            )
        )
    return tuple(rules)


def _peer_key(direction: Direction) -> str:
    return "from" if direction == Direction.INBOUND else "to"


def _peers(
    groups: dict[str, Group], entry: dict[str, Any], direction: Direction, where: str
) -> tuple[Peer, ...]:
    key = _peer_key(direction)
    values = entry.get(key)
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        raise PolicyError(
            f"{where}.{key}: missing or empty; list addresses, CIDR blocks or "
            f'group names, e.g. {key} = ["0.0.0.0/0"]'
        )
    peers = []
    for index, text in enumerate(values, 1):
        if not isinstance(text, str):
            raise PolicyError(
                f"{where}.{key}[{index}]: expected a string, got {text!r}"
            )
        peers.append(_peer(groups, text, f"{where}.{key}[{index}]"))
    return tuple(peers)


def _peer(groups: dict[str, Group], text: str, where: str) -> Peer:
    if looks_like_network(text):
        try:
            return Peer(text, network=parse_network(text))
        except ValueError as error:
            raise PolicyError(f"{where}: {error}") from None
    if text not in groups:
        known = ", ".join(sorted(groups))
        raise PolicyError(
            f"{where}: unknown group {text!r}; use an address, a CIDR block or "
            f"one of the groups: {known}"
        )
    return Peer(text, group=text)


def parse_ports(value: object, where: str) -> PortRange:
    """Return the ports written as ``443``, ``"443"``, ``"8000-8099"`` or ``"all"``.

    Raises:
        PolicyError: anything else, or a port outside 0-65535.
    """
    hint = 'write a port (443), a range ("8000-8099") or "all"'
    if isinstance(value, bool) or value is None:
        raise PolicyError(f"{where}: missing or invalid ports {value!r}; {hint}")
    if isinstance(value, int):
        first = last = value
    elif isinstance(value, str) and value.strip().lower() == "all":
        return ALL_PORTS
    elif isinstance(value, str):
        low, sep, high = value.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise PolicyError(f"{where}: invalid ports {value!r}; {hint}") from None
    else:
        raise PolicyError(f"{where}: invalid ports {value!r}; {hint}")
    for port in (first, last):
        if not 0 <= port <= 65535:
            raise PolicyError(f"{where}: port {port} is outside 0-65535; {hint}")
    if first > last:
        raise PolicyError(
            f"{where}: invalid range {value!r}: the first port is above the last; "
            f'write "{last}-{first}"'
        )
    return PortRange(first, last)
