"""Load a policy from the ``aws_security_group`` resources of a Terraform file.

Each ``aws_security_group`` resource becomes a group named by its resource
label (``aws_security_group.db`` is group ``db``). Terraform does not say
which hosts are in a group, so members come from ``--member db=10.0.2.0/24``.

Read: ``ingress`` and ``egress`` blocks (also written as attribute lists)
with literal ``from_port``, ``to_port``, ``protocol``, ``cidr_blocks``,
``ipv6_cidr_blocks``, ``security_groups`` references to groups in the same
file (``aws_security_group.app.id``), ``self`` and ``description``.
Protocols ``tcp``, ``6``, ``-1`` and ``all`` apply to TCP, as in the AWS
provider's ``ProtocolForValue``; rules for other protocols are skipped with a
note. Anything else that can change what a group allows (variables, function
calls, ``dynamic`` blocks, ``count``, ``prefix_list_ids``, separate rule
resources, modules) is not evaluated: it is listed in
``Policy.unsupported`` under its resource and rule name.

Egress follows the AWS provider's documented behaviour: Terraform removes
AWS's default allow-all egress rule from a group it creates, so a group with
no ``egress`` block allows no outbound connection.
"""

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    parse_network,
)
from tcpwatch.errors import PolicyError, UsageError

logger = logging.getLogger("tcpwatch.audit")

SECURITY_GROUP = "aws_security_group"

# Resources that change what traffic is allowed but are not read.
_UNREAD_RESOURCES = {
    "aws_security_group_rule": "separate rule resources are not read; "
    "write the rule as an ingress or egress block of its aws_security_group",
    "aws_vpc_security_group_ingress_rule": "separate rule resources are not read; "
    "write the rule as an ingress block of its aws_security_group",
    "aws_vpc_security_group_egress_rule": "separate rule resources are not read; "
    "write the rule as an egress block of its aws_security_group",
    "aws_default_security_group": "default security groups are not read",
    "aws_network_acl": "network ACLs are not audited",
    "aws_network_acl_rule": "network ACL rules are not audited",
}

# Resource arguments that do not change which connections a group allows.
_IGNORED_ARGUMENTS = {
    "name",
    "name_prefix",
    "description",
    "vpc_id",
    "tags",
    "tags_all",
    "lifecycle",
    "timeouts",
    "provider",
    "depends_on",
    "revoke_rules_on_delete",
}

_RULE_ARGUMENTS = {
    "from_port",
    "to_port",
    "protocol",
    "cidr_blocks",
    "ipv6_cidr_blocks",
    "security_groups",
    "self",
    "description",
    "prefix_list_ids",
}

# Protocol values that mean TCP, or every protocol (ports then do not apply).
_TCP = {"tcp", "6"}
_ALL_PROTOCOLS = {"-1", "all"}

_BLOCK_MARKER = "__is_block__"
_REFERENCE = re.compile(r"^\$\{aws_security_group\.([A-Za-z_][A-Za-z0-9_-]*)\.id\}$")


def parse_members(values: Sequence[str]) -> dict[str, list[Network]]:
    """Return group members from ``NAME=CIDR[,CIDR...]`` option values.

    Raises:
        UsageError: a value without ``=`` or with an invalid address.
    """
    members: dict[str, list[Network]] = {}
    for value in values:
        name, sep, cidrs = value.partition("=")
        name = name.strip().removeprefix(f"{SECURITY_GROUP}.")
        if not sep or not name or not cidrs.strip():
            raise UsageError(
                f"invalid --member {value!r}; write NAME=CIDR, e.g. "
                "--member db=10.0.2.0/24 (NAME is the aws_security_group label)"
            )
        for text in cidrs.split(","):
            try:
                members.setdefault(name, []).append(parse_network(text))
            except ValueError as error:
                raise UsageError(f"invalid --member {value!r}: {error}") from None
    return members


def load_terraform(path: str | Path, members: dict[str, list[Network]]) -> Policy:
    """Read the security groups of a Terraform file as a policy.

    Raises:
        PolicyError: the file cannot be read or parsed as HCL2, or a literal
            value in a rule is invalid.
        UsageError: ``members`` names a group that the file does not define.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(
            f"cannot read Terraform file {str(path)!r}: {error.strerror}"
        ) from None
    except UnicodeDecodeError as error:
        raise PolicyError(f"{path}: not UTF-8 text: {error}") from None
    return parse_terraform(text, str(path), members)


def parse_terraform(
    text: str, source: str, members: dict[str, list[Network]]
) -> Policy:
    """Build a policy from Terraform source text; ``source`` names it in messages."""
    import hcl2
    from hcl2.utils import SerializationOptions
    from lark.exceptions import LarkError

    try:
        document = hcl2.loads(
            text, serialization_options=SerializationOptions(with_comments=False)
        )
    except LarkError as error:
        first_line = str(error).strip().splitlines()[0]
        raise PolicyError(f"{source}: invalid HCL2: {first_line}") from None
    loader = _Loader(source)
    bodies = loader.security_groups(document)
    unknown = sorted(set(members) - set(bodies))
    if unknown:
        defined = ", ".join(sorted(bodies)) or "none"
        raise UsageError(
            f"--member {unknown[0]}: {source} defines no aws_security_group "
            f"{unknown[0]!r}; the groups it defines are: {defined}"
        )
    groups = {
        name: Group(name, tuple(members.get(name, ()))) for name in sorted(bodies)
    }
    for name, body in bodies.items():
        loader.read_group(groups, name, body)
        if not groups[name].networks:
            loader.notes.append(
                f"{SECURITY_GROUP}.{name} has no members: its rules apply to no "
                f"host; give them with --member {name}=CIDR"
            )
    for entry in loader.unsupported:
        logger.debug("terraform.unsupported source=%s what=%s", source, entry)
    return Policy(
        groups, source=source, notes=loader.notes, unsupported=loader.unsupported
    )


@dataclass
class _Loader:
    source: str
    notes: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    def security_groups(self, document: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Return each aws_security_group body by label, noting unread resources."""
        bodies: dict[str, dict[str, Any]] = {}
        for module in document.get("module", []):
            for label in module:
                if label != _BLOCK_MARKER:
                    self.unsupported.append(
                        f"module.{_unquote(label)}: modules are not expanded, so "
                        "security groups defined inside it are not read"
                    )
        for block in document.get("resource", []):
            for kind, instances in block.items():
                kind = _unquote(kind)
                for label, body in instances.items():
                    if label == _BLOCK_MARKER:
                        continue
                    label = _unquote(label)
                    if kind in _UNREAD_RESOURCES:
                        self.unsupported.append(
                            f"{kind}.{label}: {_UNREAD_RESOURCES[kind]}"
                        )
                    elif kind == SECURITY_GROUP:
                        if label in bodies:
                            raise PolicyError(
                                f"{self.source}: {kind}.{label} is defined twice; "
                                "Terraform rejects this too, so rename one"
                            )
                        bodies[label] = body
        return bodies

    def read_group(
        self, groups: dict[str, Group], name: str, body: dict[str, Any]
    ) -> None:
        """Fill in the rules of group ``name`` from its resource body."""
        where = f"{SECURITY_GROUP}.{name}"
        for key in body:
            if key in ("ingress", "egress", "dynamic", _BLOCK_MARKER):
                continue
            if key in ("count", "for_each"):
                self.unsupported.append(
                    f"{where}: {key} makes several groups from one resource; "
                    "it is read as one group"
                )
            elif key not in _IGNORED_ARGUMENTS:
                self.unsupported.append(f"{where}: argument {key!r} is not read")
        for dynamic in body.get("dynamic", []):
            for label in dynamic:
                if label != _BLOCK_MARKER:
                    self.unsupported.append(
                        f"{where}: dynamic {_unquote(label)!r} block is not expanded; "
                        "write its rules as literal blocks"
                    )
        group = groups[name]
        group.inbound = self._rules(groups, name, body, Direction.INBOUND)
        group.egress = self._rules(groups, name, body, Direction.EGRESS)
        if "egress" not in body:
            self.notes.append(
                f"{where} has no egress block: Terraform removes AWS's default "
                "allow-all egress rule, so its members may open no connection"
            )

    def _rules(
        self,
        groups: dict[str, Group],
        name: str,
        body: dict[str, Any],
        direction: Direction,
    ) -> tuple[Rule, ...]:
        keyword = "ingress" if direction == Direction.INBOUND else "egress"
        where = f"{SECURITY_GROUP}.{name} {keyword}"
        blocks = body.get(keyword, [])
        if isinstance(blocks, dict):
            blocks = [blocks]
        if not isinstance(blocks, list):
            self.unsupported.append(f"{where}: expression {blocks!r} is not evaluated")
            return ()
        rules = []
        for index, block in enumerate(blocks, 1):
            rule_name = f"{where} #{index}"
            if not isinstance(block, dict):
                self.unsupported.append(
                    f"{rule_name}: expression {block!r} is not evaluated"
                )
                continue
            rule = self._rule(groups, name, block, direction, rule_name)
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def _rule(
        self,
        groups: dict[str, Group],
        group: str,
        block: dict[str, Any],
        direction: Direction,
        name: str,
    ) -> Rule | None:
        for key in block:
            if key not in _RULE_ARGUMENTS and key != _BLOCK_MARKER:
                self.unsupported.append(f"{name}: argument {key!r} is not read")
        ports = self._ports(block, name)
        if ports is None:
            return None
        peers = self._peers(groups, group, block, name)
        if block.get("prefix_list_ids"):
            self.unsupported.append(
                f"{name}: prefix_list_ids {block['prefix_list_ids']!r} are not "
                "expanded; the rule is read without them"
            )
        if not peers:
            self.notes.append(
                f"{name}: no source or destination read; it allows nothing"
            )
            return None
        description = _literal(block.get("description", '""'))
        return Rule(
            group=group,
            direction=direction,
            name=name,
            ports=ports,
            peers=tuple(peers),
            description=description if isinstance(description, str) else "",
        )

    def _ports(self, block: dict[str, Any], name: str) -> PortRange | None:
        raw = block.get("protocol")
        protocol = _literal(raw)
        if protocol is None or isinstance(protocol, bool):
            self.unsupported.append(
                f"{name}: protocol {raw!r} is not a literal value; the rule is skipped"
            )
            return None
        protocol = str(protocol).strip().lower()
        if protocol in _ALL_PROTOCOLS:
            return ALL_PORTS
        if protocol not in _TCP:
            self.notes.append(f"{name}: protocol {protocol!r} is not TCP; skipped")
            return None
        bounds = []
        for key in ("from_port", "to_port"):
            value = _literal(block.get(key))
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                self.unsupported.append(
                    f"{name}: {key} {block.get(key)!r} is not a literal number; "
                    "the rule is skipped"
                )
                return None
            bounds.append(value)
        first, last = bounds
        if not (0 <= first <= last <= 65535):
            raise PolicyError(
                f"{self.source}: {name}: invalid TCP port range "
                f"from_port={first} to_port={last}; both must be within 0-65535 "
                "and from_port must not exceed to_port"
            )
        return PortRange(first, last)

    def _peers(
        self, groups: dict[str, Group], group: str, block: dict[str, Any], name: str
    ) -> list[Peer]:
        peers = []
        for key in ("cidr_blocks", "ipv6_cidr_blocks"):
            for value in self._list(block, key, name):
                text = _literal(value)
                if not isinstance(text, str):
                    self.unsupported.append(
                        f"{name}: {key} element {value!r} is not a literal string"
                    )
                    continue
                try:
                    peers.append(Peer(text, network=parse_network(text)))
                except ValueError as error:
                    raise PolicyError(
                        f"{self.source}: {name}: {key}: {error}"
                    ) from None
        for value in self._list(block, "security_groups", name):
            referenced = _group_reference(value)
            if referenced in groups:
                peers.append(Peer(referenced, group=referenced))
            else:
                self.unsupported.append(
                    f"{name}: security_groups element {value!r} is not an "
                    f"{SECURITY_GROUP} defined in this file"
                )
        is_self = block.get("self", False)
        if is_self is True:
            peers.append(Peer(group, group=group))
        elif is_self is not False:
            self.unsupported.append(f"{name}: self {is_self!r} is not a literal bool")
        return peers

    def _list(self, block: dict[str, Any], key: str, name: str) -> list[Any]:
        value = block.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.unsupported.append(f"{name}: {key} {value!r} is not a literal list")
        return []


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _literal(value: Any) -> str | int | bool | None:
    """Return the value of a literal (python-hcl2 keeps the quotes of strings).

    None means the value is an expression or a template (``${...}``).
    """
    if isinstance(value, bool | int):
        return value
    if not isinstance(value, str):
        return None
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return None
    inner = value[1:-1]
    if "${" in inner.replace("$${", "") or "%{" in inner.replace("%%{", ""):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return inner
    return decoded if isinstance(decoded, str) else inner


def _group_reference(value: Any) -> str | None:
    """Return ``NAME`` for ``aws_security_group.NAME.id``, also in ``"${...}"``."""
    if not isinstance(value, str):
        return None
    match = _REFERENCE.match(_unquote(value))
    return match.group(1) if match else None
