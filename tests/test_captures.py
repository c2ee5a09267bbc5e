"""End to end on real traffic: the bundled captures, and a fresh recording."""

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"

# (handshake, teardown, conn_state) of each connection, as captures/README.md
# describes the traffic in each file.
EXPECTED = {
    "clean-exchange.pcap": [("complete", "fin", "SF")],
    "refused.pcap": [("rejected", "reset_by_resp", "REJ")],
    "abort-rst.pcap": [("complete", "reset_by_orig", "RSTO")],
    "half-close.pcap": [("complete", "fin", "SF")],
    "ipv6-exchange.pcap": [("complete", "fin", "SF")],
    "mixed.pcap": [("complete", "fin", "SF")] * 5
    + [("rejected", "reset_by_resp", "REJ"), ("complete", "reset_by_orig", "RSTO")],
}


def read_records(*paths: Path) -> list[dict]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpwatch",
            "read",
            *map(str, paths),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def classes(records: list[dict]) -> Counter:
    return Counter((r["handshake"], r["teardown"], r["conn_state"]) for r in records)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_capture_classes(name: str):
    records = read_records(CAPTURES / name)
    assert classes(records) == Counter(EXPECTED[name])
    assert all(record["roles_inferred"] is False for record in records)


def test_clean_exchange_byte_counts():
    (record,) = read_records(CAPTURES / "clean-exchange.pcap")
    assert record["orig_bytes"] == 45
    assert record["resp_bytes"] == 4137
    assert record["orig_pkts"] + record["resp_pkts"] == 18
    assert record["history"] == "ShADadFf"
    assert record["rtt_syn_synack"] is not None
    assert record["rtt_synack_ack"] is not None


def test_half_close_server_sends_after_client_fin():
    (record,) = read_records(CAPTURES / "half-close.pcap")
    assert record["resp_bytes"] == 5 * 1024
    # The client's FIN (F) comes before the server's data (d) in the history.
    assert record["history"].index("F") < record["history"].index("d")


def test_snaplen_cut_capture_counts_true_lengths():
    records = read_records(CAPTURES / "mixed.pcap")
    bulk = max(records, key=lambda record: record["resp_bytes"])
    assert bulk["resp_bytes"] > 1_000_000
    assert bulk["missed_bytes"] == 0


def test_pcapng_and_gzip_match_pcap(tmp_path: Path):
    compressed = tmp_path / "mixed.pcap.gz"
    compressed.write_bytes(gzip.compress((CAPTURES / "mixed.pcap").read_bytes()))
    plain = read_records(CAPTURES / "mixed.pcap")
    assert read_records(CAPTURES / "mixed.pcapng") == plain
    assert read_records(compressed) == plain


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="recording on lo needs root")
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_fresh_loopback_recording(tmp_path: Path):
    """Record new kernel traffic with captures/record.py and classify it."""
    names = ["clean-exchange.pcap", "refused.pcap", "abort-rst.pcap"]
    only = [argument for name in names for argument in ("--only", name)]
    done = subprocess.run(
        [sys.executable, str(CAPTURES / "record.py"), "--out", str(tmp_path), *only],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in names:
        records = read_records(tmp_path / name)
        assert classes(records) == Counter(EXPECTED[name]), name


def test_validate_checksums_keeps_one_connection_per_tuple():
    """Loopback segments carry unfilled checksums: dropped, but not split."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpwatch",
            "read",
            str(CAPTURES / "clean-exchange.pcap"),
            "--validate-checksums",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 1
    assert set(records[0]["history"]) == {"C", "c"}
    assert "bad checksums" in records[0]["verdict"]
    assert "without --validate-checksums" in done.stderr
