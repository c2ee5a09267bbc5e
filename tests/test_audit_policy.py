"""The TOML policy file and the policy's decisions."""

import tomllib
from pathlib import Path

import pytest

from tcpwatch.audit.policy import OUTSIDE, Direction, Policy, PortRange
from tcpwatch.audit.policyfile import load_policy, parse_policy, parse_ports
from tcpwatch.errors import PolicyError

DATA = Path(__file__).parent / "data" / "audit"

POLICY = """
[groups.lb]
hosts = ["10.0.0.10", "2001:db8::10"]
inbound = [{ ports = 443, from = ["0.0.0.0/0", "::/0"] }]

[groups.app]
hosts = ["10.0.1.0/24"]
inbound = [
  { ports = "8000-8099", from = ["lb"], description = "HTTP from lb" },
  { ports = 22, from = "192.0.2.0/24" },
]
egress = [{ ports = 3306, to = ["db"] }]

[groups.db]
hosts = ["10.0.2.0/24"]
inbound = [{ ports = 3306, from = ["app"] }]
egress = []

[groups.ops]
hosts = ["10.0.1.5"]
inbound = [{ ports = "all", from = ["10.9.0.0/16"] }]
"""


def policy_from(text: str) -> Policy:
    return parse_policy(tomllib.loads(text), "test.toml")


def error_from(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        policy_from(text)
    return str(caught.value)


@pytest.fixture
def policy() -> Policy:
    return policy_from(POLICY)


def test_policy_groups_and_rules(policy: Policy) -> None:
    app = policy.groups["app"]
    assert list(policy.groups) == ["lb", "app", "db", "ops"]
    assert [str(network) for network in app.networks] == ["10.0.1.0/24"]
    assert app.inbound[0].ports == PortRange(8000, 8099)
    assert app.inbound[0].peers[0].group == "lb"
    assert app.inbound[0].description == "HTTP from lb"
    assert app.inbound[1].peers[0].text == "192.0.2.0/24"
    assert app.inbound[1].name == "app inbound #2"
    assert app.egress is not None
    assert app.egress[0].direction == Direction.EGRESS
    assert policy.groups["lb"].egress is None
    assert policy.groups["db"].egress == ()


def test_policy_inbound_allowed_by_group(policy: Policy) -> None:
    decision = policy.decide("10.0.0.10", "10.0.1.7", 8080)
    assert decision.covered
    assert decision.allowed
    assert [path.label for path in decision.paths] == [
        "app inbound tcp/8000-8099 from lb"
    ]
    assert decision.missing == ()


def test_policy_inbound_port_outside_range(policy: Policy) -> None:
    decision = policy.decide("10.0.0.10", "10.0.1.7", 8100)
    assert not decision.allowed
    assert str(decision.missing[0]) == "no inbound rule of app allows tcp/8100 from lb"


def test_policy_source_outside_every_group(policy: Policy) -> None:
    decision = policy.decide("198.51.100.1", "10.0.2.5", 3306)
    assert not decision.allowed
    assert decision.missing[0].peer == OUTSIDE
    assert decision.missing[0].groups == ("db",)


def test_policy_ipv6_source(policy: Policy) -> None:
    decision = policy.decide("2001:db8:ffff::1", "2001:db8::10", 443)
    assert decision.allowed
    assert decision.paths[0].peer.text == "::/0"


def test_policy_ipv4_rule_skips_ipv6(policy: Policy) -> None:
    # ::/0 allows IPv6 sources only, 0.0.0.0/0 IPv4 only.
    decision = policy.decide("10.5.5.5", "2001:db8::10", 443)
    assert [path.peer.text for path in decision.paths] == ["0.0.0.0/0"]


def test_policy_egress_restricted(policy: Policy) -> None:
    # The app may open MySQL to the database, but nothing to the outside.
    allowed = policy.decide("10.0.1.7", "10.0.2.5", 3306)
    denied = policy.decide("10.0.1.7", "203.0.113.9", 443)
    assert allowed.allowed
    assert [path.rule.name for path in allowed.paths] == [
        "db inbound #1",
        "app egress #1",
    ]
    assert denied.covered
    assert not denied.allowed
    assert str(denied.missing[0]) == (
        f"no egress rule of app allows tcp/443 to {OUTSIDE}"
    )


def test_policy_empty_egress_allows_nothing(policy: Policy) -> None:
    decision = policy.decide("10.0.2.5", "10.0.0.10", 443)
    assert not decision.allowed
    assert [missing.direction for missing in decision.missing] == [Direction.EGRESS]


def test_policy_two_groups_union(policy: Policy) -> None:
    # 10.0.1.5 is in app and ops. Its egress is unrestricted because ops does
    # not restrict egress, and inbound it gets the rules of both groups.
    assert [g.name for g in policy.groups_of("10.0.1.5")] == ["app", "ops"]
    assert policy.decide("10.9.1.1", "10.0.1.5", 5432).allowed
    assert policy.decide("10.0.0.10", "10.0.1.5", 8000).allowed
    assert not policy.decide("10.0.1.5", "203.0.113.9", 443).covered


def test_policy_both_directions_missing(policy: Policy) -> None:
    decision = policy.decide("10.0.1.7", "10.0.0.10", 22)
    assert [missing.direction for missing in decision.missing] == [
        Direction.INBOUND,
        Direction.EGRESS,
    ]
    assert decision.missing[0].peer == "app"
    assert decision.missing[1].peer == "lb"


def test_policy_not_covered(policy: Policy) -> None:
    decision = policy.decide("198.51.100.1", "198.51.100.2", 80)
    assert not decision.covered
    assert decision.allowed


def test_policy_unused_paths_listed_in_order(policy: Policy) -> None:
    labels = [path.label for path in policy.paths()]
    assert labels == [
        "lb inbound tcp/443 from 0.0.0.0/0",
        "lb inbound tcp/443 from ::/0",
        "app inbound tcp/8000-8099 from lb",
        "app inbound tcp/22 from 192.0.2.0/24",
        "app egress tcp/3306 to db",
        "db inbound tcp/3306 from app",
        "ops inbound all ports from 10.9.0.0/16",
    ]


def test_policy_file_three_tier() -> None:
    policy = load_policy(DATA / "three-tier.toml")
    assert sorted(policy.groups) == ["app", "db", "lb"]
    assert policy.source.endswith("three-tier.toml")
    assert policy.decide("127.8.0.20", "127.8.0.30", 3306).allowed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (443, PortRange(443, 443)),
        ("443", PortRange(443, 443)),
        ("8000-8099", PortRange(8000, 8099)),
        ("all", PortRange(0, 65535)),
        ("ALL", PortRange(0, 65535)),
    ],
)
def test_policy_ports_parsed(value: object, expected: PortRange) -> None:
    assert parse_ports(value, "x") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "missing or invalid ports None"),
        (True, "missing or invalid ports True"),
        ("http", "invalid ports 'http'"),
        (70000, "port 70000 is outside 0-65535"),
        ("99-10", 'write "10-99"'),
        ([80], "invalid ports [80]"),
    ],
)
def test_policy_ports_invalid(value: object, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_ports(value, "groups.x.inbound[1].ports")
    assert message in str(caught.value)
    assert "groups.x.inbound[1].ports" in str(caught.value)


def test_policy_unknown_group_reference() -> None:
    message = error_from(
        '[groups.db]\nhosts = ["10.0.0.1"]\ninbound = [{ports = 1, from = ["ap"]}]'
    )
    assert "groups.db.inbound[1].from[1]: unknown group 'ap'" in message
    assert "one of the groups: db" in message


def test_policy_host_bits_set() -> None:
    message = error_from('[groups.db]\nhosts = ["10.0.0.1/24"]')
    assert "'10.0.0.1/24' has host bits set" in message
    assert "write the network as '10.0.0.0/24'" in message


def test_policy_invalid_address() -> None:
    message = error_from('[groups.db]\nhosts = ["10.0.0.300"]')
    assert "groups.db.hosts[1]: '10.0.0.300' is not an IP address" in message


def test_policy_unknown_rule_key() -> None:
    message = error_from(
        '[groups.db]\nhosts = ["10.0.0.1"]\n'
        'inbound = [{ports = 1, from = ["10.0.0.0/8"], protocol = "tcp"}]'
    )
    assert "unknown key 'protocol'" in message
    assert "an inbound rule has description, from, ports" in message


def test_policy_egress_rule_uses_to() -> None:
    message = error_from(
        '[groups.db]\nhosts = ["10.0.0.1"]\negress = [{ports = 1, from = ["lb"]}]'
    )
    assert "groups.db.egress[1]: unknown key 'from'" in message


def test_policy_unknown_group_key() -> None:
    message = error_from('[groups.db]\nhosts = ["10.0.0.1"]\ningress = []')
    assert "groups.db: unknown key 'ingress'" in message


def test_policy_group_named_like_address() -> None:
    message = error_from('[groups."10.0.0.1"]\nhosts = ["10.0.0.1"]')
    assert "must not look like an address" in message


def test_policy_without_groups() -> None:
    assert "no groups defined" in error_from("")
    assert "unknown top-level key 'group'" in error_from("[group.db]\nhosts = []")


def test_policy_group_without_hosts() -> None:
    message = error_from("[groups.db]\ninbound = []")
    assert "groups.db.hosts: missing or empty" in message


def test_policy_rule_without_sources() -> None:
    message = error_from('[groups.db]\nhosts = ["10.0.0.1"]\ninbound = [{ports = 1}]')
    assert "groups.db.inbound[1].from: missing or empty" in message


def test_policy_file_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[groups.db\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert f"{path}: invalid TOML" in str(caught.value)


def test_policy_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert "cannot read policy file" in str(caught.value)
    assert "No such file or directory" in str(caught.value)
