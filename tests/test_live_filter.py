"""The kernel filter a live capture attaches: compiled, patched, guarded.

No packets here: these check the BPF instructions themselves, so they run
without root.
"""

import struct

import pytest

from tcpwatch.capture import live
from tcpwatch.errors import UsageError

RET_K = 0x06


def decode(program: list[bytes]) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("HBBI", instruction) for instruction in program]


def test_filter_empty_keeps_snaplen_bytes() -> None:
    assert decode(live.compile_filter("", 1, 200)) == [(RET_K, 0, 0, 200)]


def test_filter_accepting_returns_are_the_snaplen() -> None:
    program = decode(live.compile_filter("tcp port 443", 1, 256))
    returns = [k for code, _, _, k in program if code == RET_K]
    assert 256 in returns
    assert set(returns) <= {0, 256}


def test_filter_netmask_compiles() -> None:
    # libpcap's 0xffff0000 netmask is a negative k in scapy's signed field.
    program = decode(live.compile_filter("tcp and net 127.77.0.0/16", 1, 256))
    assert any(k == 0xFFFF0000 for _, _, _, k in program)


def test_filter_cooked_frames_compile_as_raw_ip() -> None:
    ethernet = decode(live.compile_filter("tcp", 1, 256))
    raw = decode(live.compile_filter("tcp", 12, 256))
    assert ethernet != raw


def test_filter_invalid_expression_names_it() -> None:
    with pytest.raises(UsageError, match="invalid capture filter 'tcp port x'"):
        live.compile_filter("tcp port x", 1, 256)


def test_filter_loopback_guard_rejects_outgoing() -> None:
    guard = decode(live._loopback_guard("lo", live.ARPHRD_LOOPBACK))
    assert guard[0] == (0x20, 0, 0, 0xFFFFF004)  # load the packet type
    assert guard[1] == (0x15, 0, 1, live.PACKET_OUTGOING)
    assert guard[2] == (RET_K, 0, 0, 0)


def test_filter_no_guard_on_ethernet() -> None:
    assert live._loopback_guard("eth0", live.ARPHRD_ETHER) == []


def test_filter_any_guard_checks_loopback_index() -> None:
    guard = decode(live._loopback_guard(live.ANY, 0))
    assert guard[2] == (0x20, 0, 0, 0xFFFFF008)  # load the interface index
    assert guard[3][3] == live._loopback_index()


def test_interface_index_unknown_lists_names() -> None:
    from tcpwatch.errors import InterfaceNotFoundError

    with pytest.raises(InterfaceNotFoundError, match="available interfaces: .*lo"):
        live.interface_index("nosuchif0")
