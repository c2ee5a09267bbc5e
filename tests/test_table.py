"""The connection table at the widths of real screens."""

import io
from typing import Any

from rich.console import Console

from tcpwatch.render.table import ConnectionTable, shorten_endpoint, shorten_host

LONG_V6 = "fd12:3456:789a:bcde:1111:2222:3333:4444"


def record(orig: str, resp: str) -> dict[str, Any]:
    return {
        "id.orig_h": orig,
        "id.orig_p": 37884,
        "id.resp_h": resp,
        "id.resp_p": 8080,
        "handshake": "complete",
        "teardown": "fin",
        "duration": 0.5,
        "orig_bytes": 100,
        "resp_bytes": 2000,
        "rtt_syn_synack": 0.0001,
        "reject_latency": None,
        "conn_state": "SF",
        "verdict": "closed cleanly",
    }


def draw(rows: list[tuple[int, dict[str, Any]]], width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(ConnectionTable(rows))
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def test_shorten_endpoint_keeps_port_and_both_ends() -> None:
    shown = shorten_endpoint(f"[{LONG_V6}]:37884", 28)
    assert len(shown) == 28
    assert shown.startswith("[fd12:3456:")
    assert shown.endswith("3333:4444]:37884")
    assert "…" in shown


def test_shorten_endpoint_leaves_what_fits() -> None:
    assert shorten_endpoint("127.0.0.1:80", 12) == "127.0.0.1:80"


def test_shorten_host_cuts_the_middle() -> None:
    assert shorten_host("192.168.100.200", 11) == "192.1…0.200"


def test_table_80_columns_long_ipv6_one_line_each() -> None:
    lines = draw([(1, record(LONG_V6, LONG_V6.replace("4444", "5555")))], 80)
    assert all(len(line) <= 80 for line in lines)
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 2
    assert "]:37884" in body[0]
    assert "[fd12:3456:" in body[0]
    assert "5555]:8080" in body[1]


def test_table_80_columns_ipv4_untouched() -> None:
    lines = draw([(1, record("192.168.100.200", "10.20.30.40"))], 80)
    text = "\n".join(lines)
    assert "192.168.100.200:37884" in text
    assert "10.20.30.40:8080" in text
