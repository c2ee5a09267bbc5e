"""Policies read from the aws_security_group resources of Terraform files."""

from pathlib import Path

import pytest

from tcpwatch.audit.policy import ALL_PORTS, Policy, PortRange
from tcpwatch.audit.terraform import load_terraform, parse_members, parse_terraform
from tcpwatch.errors import PolicyError, UsageError

DATA = Path(__file__).parent / "data" / "audit"
THREE_TIER = DATA / "three-tier.tf"
MEMBERS = ["lb=10.0.0.0/28", "app=10.0.1.0/24", "db=10.0.2.0/24,10.0.3.0/24"]


def load(text: str, members: list[str] | None = None) -> Policy:
    return parse_terraform(text, "main.tf", parse_members(members or []))


def group_block(body: str, name: str = "web") -> str:
    return f'resource "aws_security_group" "{name}" {{\n{body}\n}}\n'


def ingress(**arguments: str) -> str:
    fields = {"from_port": "80", "to_port": "80", "protocol": '"tcp"'}
    fields.update(arguments)
    lines = "\n".join(f"    {key} = {value}" for key, value in fields.items())
    return f"  ingress {{\n{lines}\n  }}"


@pytest.fixture
def three_tier() -> Policy:
    return load_terraform(THREE_TIER, parse_members(MEMBERS))


def test_terraform_three_tier_groups(three_tier: Policy) -> None:
    assert sorted(three_tier.groups) == ["app", "db", "lb"]
    assert [str(n) for n in three_tier.groups["db"].networks] == [
        "10.0.2.0/24",
        "10.0.3.0/24",
    ]
    assert three_tier.unsupported == []
    assert three_tier.source == str(THREE_TIER)


def test_terraform_three_tier_rules(three_tier: Policy) -> None:
    lb, app, db = (three_tier.groups[name] for name in ("lb", "app", "db"))
    assert lb.inbound[0].ports == PortRange(443, 443)
    assert [peer.text for peer in lb.inbound[0].peers] == ["0.0.0.0/0", "::/0"]
    assert lb.inbound[0].description == "HTTPS from anywhere"
    assert lb.inbound[0].name == "aws_security_group.lb ingress #1"
    assert app.inbound[0].peers[0].group == "lb"
    assert db.inbound[0].ports == PortRange(3306, 3306)
    assert db.inbound[0].peers[0].group == "app"
    assert lb.egress is not None
    assert lb.egress[0].ports == ALL_PORTS


def test_terraform_no_egress_block(three_tier: Policy) -> None:
    assert three_tier.groups["db"].egress == ()
    assert any(
        "aws_security_group.db has no egress block" in note for note in three_tier.notes
    )
    assert not three_tier.decide("10.0.2.1", "10.0.0.1", 443).allowed


def test_terraform_three_tier_decisions(three_tier: Policy) -> None:
    assert three_tier.decide("198.51.100.7", "10.0.0.5", 443).allowed
    assert three_tier.decide("10.0.0.5", "10.0.1.9", 80).allowed
    assert three_tier.decide("10.0.1.9", "10.0.3.4", 3306).allowed
    assert not three_tier.decide("198.51.100.7", "10.0.2.4", 3306).allowed
    assert not three_tier.decide("198.51.100.7", "10.0.1.9", 80).allowed
    assert not three_tier.decide("10.0.0.5", "10.0.2.4", 3306).allowed


@pytest.mark.parametrize(
    ("protocol", "ports"),
    [
        ('"tcp"', PortRange(80, 80)),
        ('"TCP"', PortRange(80, 80)),
        ('"6"', PortRange(80, 80)),
        ("6", PortRange(80, 80)),
        ('"-1"', ALL_PORTS),
        ("-1", ALL_PORTS),
        ('"all"', ALL_PORTS),
    ],
)
def test_terraform_tcp_protocols(protocol: str, ports: PortRange) -> None:
    policy = load(group_block(ingress(protocol=protocol, cidr_blocks='["10.0.0.0/8"]')))
    assert policy.groups["web"].inbound[0].ports == ports
    assert policy.unsupported == []


@pytest.mark.parametrize("protocol", ['"udp"', '"17"', '"icmp"', "1"])
def test_terraform_other_protocols_skipped(protocol: str) -> None:
    policy = load(group_block(ingress(protocol=protocol, cidr_blocks='["10.0.0.0/8"]')))
    assert policy.groups["web"].inbound == ()
    assert any("is not TCP; skipped" in note for note in policy.notes)
    assert policy.unsupported == []


def test_terraform_port_range() -> None:
    block = ingress(from_port="8000", to_port='"8099"', cidr_blocks='["10.0.0.0/8"]')
    policy = load(group_block(block))
    assert policy.groups["web"].inbound[0].ports == PortRange(8000, 8099)


def test_terraform_invalid_port_range() -> None:
    block = ingress(from_port="90", to_port="80", cidr_blocks='["10.0.0.0/8"]')
    with pytest.raises(PolicyError) as caught:
        load(group_block(block))
    assert "aws_security_group.web ingress #1" in str(caught.value)
    assert "from_port=90 to_port=80" in str(caught.value)


def test_terraform_self_reference() -> None:
    policy = load(group_block(ingress(self="true")), ["web=10.0.0.0/24"])
    rule = policy.groups["web"].inbound[0]
    decision = policy.decide("10.0.0.1", "10.0.0.2", 80)
    assert rule.peers[0].group == "web"
    assert [path.rule for path in decision.paths] == [rule]
    # Only egress is missing: the group has no egress block.
    assert [str(missing.direction) for missing in decision.missing] == ["egress"]


def test_terraform_security_group_reference_forms() -> None:
    text = group_block(ingress(cidr_blocks='["10.0.0.0/8"]'), "lb") + group_block(
        ingress(
            security_groups='[aws_security_group.lb.id, "${aws_security_group.lb.id}"]'
        )
    )
    policy = load(text)
    assert [peer.group for peer in policy.groups["web"].inbound[0].peers] == [
        "lb",
        "lb",
    ]
    assert policy.unsupported == []


def test_terraform_unknown_security_group_reported() -> None:
    policy = load(
        group_block(ingress(security_groups='["sg-0123", aws_security_group.x.id]'))
    )
    assert policy.groups["web"].inbound == ()
    assert policy.unsupported == [
        "aws_security_group.web ingress #1: security_groups element '\"sg-0123\"' "
        "is not an aws_security_group defined in this file",
        "aws_security_group.web ingress #1: security_groups element "
        "'${aws_security_group.x.id}' is not an aws_security_group defined in this "
        "file",
    ]


def test_terraform_expressions_reported() -> None:
    block = ingress(
        cidr_blocks='concat(var.office, ["10.0.0.0/8"])',
        ipv6_cidr_blocks='["${var.prefix}::/64", "2001:db8::/32"]',
    )
    policy = load(group_block(block))
    peers = policy.groups["web"].inbound[0].peers
    assert [peer.text for peer in peers] == ["2001:db8::/32"]
    assert policy.unsupported == [
        "aws_security_group.web ingress #1: cidr_blocks "
        "'${concat(var.office, [\"10.0.0.0/8\"])}' is not a literal list",
        "aws_security_group.web ingress #1: ipv6_cidr_blocks element "
        "'\"${var.prefix}::/64\"' is not a literal string",
    ]


def test_terraform_variable_port_skips_rule() -> None:
    policy = load(
        group_block(ingress(from_port="var.port", cidr_blocks='["1.1.1.1/32"]'))
    )
    assert policy.groups["web"].inbound == ()
    assert policy.unsupported == [
        "aws_security_group.web ingress #1: from_port '${var.port}' is not a literal "
        "number; the rule is skipped"
    ]


def test_terraform_variable_protocol_skips_rule() -> None:
    policy = load(
        group_block(ingress(protocol="local.p", cidr_blocks='["1.1.1.1/32"]'))
    )
    assert policy.groups["web"].inbound == ()
    assert "protocol '${local.p}' is not a literal value" in policy.unsupported[0]


def test_terraform_dynamic_block_reported() -> None:
    body = """
  dynamic "ingress" {
    for_each = var.ports
    content {
      from_port = ingress.value
    }
  }"""
    policy = load(group_block(body))
    assert policy.unsupported == [
        "aws_security_group.web: dynamic 'ingress' block is not expanded; "
        "write its rules as literal blocks"
    ]


def test_terraform_unread_resources_reported() -> None:
    text = """
resource "aws_security_group_rule" "ssh" {
  type = "ingress"
  from_port = 22
}
resource "aws_vpc_security_group_ingress_rule" "https" {
  from_port = 443
}
resource "aws_instance" "web" {
  ami = "ami-1"
}
module "vpc" {
  source = "./vpc"
}
"""
    policy = load(text)
    assert policy.groups == {}
    assert [entry.split(":")[0] for entry in policy.unsupported] == [
        "module.vpc",
        "aws_security_group_rule.ssh",
        "aws_vpc_security_group_ingress_rule.https",
    ]


def test_terraform_unknown_arguments_reported() -> None:
    body = "  count = 2\n  revoke_rules_on_delete = true\n  ingress_extra = 1\n"
    body += ingress(cidr_blocks='["10.0.0.0/8"]', ipv6_prefix='"x"')
    policy = load(group_block(body))
    assert policy.unsupported == [
        "aws_security_group.web: count makes several groups from one resource; "
        "it is read as one group",
        "aws_security_group.web: argument 'ingress_extra' is not read",
        "aws_security_group.web ingress #1: argument 'ipv6_prefix' is not read",
    ]


def test_terraform_prefix_lists_reported() -> None:
    block = ingress(cidr_blocks='["10.0.0.0/8"]', prefix_list_ids='["pl-1"]')
    policy = load(group_block(block))
    assert len(policy.groups["web"].inbound) == 1
    assert "prefix_list_ids" in policy.unsupported[0]


def test_terraform_attribute_syntax() -> None:
    body = (
        '  ingress = [{ from_port = 5432, to_port = 5432, protocol = "tcp",\n'
        '    cidr_blocks = ["10.0.0.0/8"] }]\n  egress = []'
    )
    policy = load(group_block(body))
    assert policy.groups["web"].inbound[0].ports == PortRange(5432, 5432)
    assert policy.groups["web"].egress == ()
    assert not any("no egress block" in note for note in policy.notes)


def test_terraform_group_without_members_noted() -> None:
    policy = load(group_block(ingress(cidr_blocks='["10.0.0.0/8"]')))
    assert policy.notes == [
        "aws_security_group.web has no egress block: Terraform removes AWS's "
        "default allow-all egress rule, so its members may open no connection",
        "aws_security_group.web has no members: its rules apply to no host; "
        "give them with --member web=CIDR",
    ]


def test_terraform_rule_without_peers_noted() -> None:
    policy = load(group_block(ingress()), ["web=10.0.0.0/8"])
    assert policy.groups["web"].inbound == ()
    assert policy.notes[0] == (
        "aws_security_group.web ingress #1: no source or destination read; "
        "it allows nothing"
    )


def test_terraform_duplicate_group() -> None:
    text = group_block(ingress(self="true")) * 2
    with pytest.raises(PolicyError) as caught:
        load(text)
    assert "aws_security_group.web is defined twice" in str(caught.value)


def test_terraform_invalid_hcl() -> None:
    with pytest.raises(PolicyError) as caught:
        load('resource "aws_security_group" "web" {\n  ingress {\n')
    assert str(caught.value).startswith("main.tf: invalid HCL2:")


def test_terraform_invalid_cidr() -> None:
    with pytest.raises(PolicyError) as caught:
        load(group_block(ingress(cidr_blocks='["10.0.0.1/8"]')))
    assert "write the network as '10.0.0.0/8'" in str(caught.value)


def test_terraform_member_for_unknown_group() -> None:
    with pytest.raises(UsageError) as caught:
        load_terraform(THREE_TIER, parse_members(["web=10.0.0.0/8"]))
    assert "defines no aws_security_group 'web'" in str(caught.value)
    assert "the groups it defines are: app, db, lb" in str(caught.value)


@pytest.mark.parametrize("value", ["db", "db=", "=10.0.0.0/8", "db=10.0.0.300"])
def test_terraform_member_invalid(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_members([value])
    assert f"invalid --member {value!r}" in str(caught.value)


def test_terraform_member_full_address_and_repeats() -> None:
    members = parse_members(
        ["aws_security_group.db=10.0.2.0/24", "db=10.0.3.0/24,2001:db8::/64"]
    )
    assert [str(network) for network in members["db"]] == [
        "10.0.2.0/24",
        "10.0.3.0/24",
        "2001:db8::/64",
    ]


def test_terraform_file_missing(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_terraform(tmp_path / "none.tf", {})
    assert "cannot read Terraform file" in str(caught.value)
