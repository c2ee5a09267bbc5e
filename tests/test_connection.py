"""Connection identity: uids and address text."""

import hashlib
import random
import re

from tcpwatch.flow import connection
from tcpwatch.flow.connection import format_address, format_endpoint, make_uid

UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def reference_uid(
    number: int,
    orig_h: bytes,
    orig_p: int,
    resp_h: bytes,
    resp_p: int,
    start_time: float,
) -> str:
    """Compute the uid by its definition: 17 base-62 digits of the hash, one by one."""
    identity = f"{orig_p}/{resp_p}/{start_time!r}/{number}".encode()
    digest = hashlib.blake2b(orig_h + resp_h + identity, digest_size=13).digest()
    value = int.from_bytes(digest, "big")
    letters = []
    for _ in range(17):
        value, index = divmod(value, 62)
        letters.append(UID_ALPHABET[index])
    return "C" + "".join(letters)


def random_identity(rng: random.Random) -> tuple[int, bytes, int, bytes, int, float]:
    size = rng.choice((4, 16))
    return (
        rng.randrange(1, 10**7),
        rng.randbytes(size),
        rng.randrange(65536),
        rng.randbytes(size),
        rng.randrange(65536),
        rng.uniform(0.0, 2e9),
    )


def test_connection_uid_matches_definition():
    rng = random.Random(20261204)
    for _ in range(2000):
        identity = random_identity(rng)
        assert make_uid(*identity) == reference_uid(*identity), identity


def test_connection_uid_format():
    uid = make_uid(1, b"\x7f\x00\x00\x01", 40000, b"\x7f\x00\x00\x02", 80, 10.0)
    assert re.fullmatch(r"C[0-9A-Za-z]{17}", uid)


def test_connection_uid_known_value():
    # A fixed value: the same identity gives the same uid in every version.
    uid = make_uid(1, b"\x7f\x00\x00\x01", 40000, b"\x7f\x00\x00\x02", 80, 10.0)
    assert uid == "CXrraWoXdE1M1zyNcP"


def test_connection_uid_differs_per_connection():
    base = (1, b"\x7f\x00\x00\x01", 40000, b"\x7f\x00\x00\x02", 80, 10.0)
    variants = [
        base,
        (2, *base[1:]),
        (1, b"\x7f\x00\x00\x03", *base[2:]),
        (*base[:2], 40001, *base[3:]),
        (*base[:5], 10.000001),
    ]
    uids = {make_uid(*identity) for identity in variants}
    assert len(uids) == len(variants)


def test_connection_uid_high_digits_vary():
    # The last eight characters come from the high part of the hash.
    rng = random.Random(7)
    tails = set()
    for _ in range(200):
        tails.add(make_uid(*random_identity(rng))[10:])
    assert len(tails) == 200


def test_connection_format_address_ipv4_and_ipv6():
    assert format_address(b"\x7f\x00\x00\x01") == "127.0.0.1"
    assert format_address(bytes(15) + b"\x01") == "::1"
    assert format_address(bytes.fromhex("20010db8" + "00" * 11 + "01")) == "2001:db8::1"


def test_connection_format_address_cached_value_is_right():
    address = b"\xc0\x00\x02\x07"
    assert format_address(address) == "192.0.2.7"
    assert format_address(address) == "192.0.2.7"


def test_connection_format_address_cache_is_bounded():
    for value in range(connection._ADDRESS_CACHE_SIZE * 2 + 5):
        text = format_address(value.to_bytes(4, "big"))
        assert text == ".".join(str(byte) for byte in value.to_bytes(4, "big"))
    assert len(connection._address_texts) <= connection._ADDRESS_CACHE_SIZE


def test_connection_format_endpoint_brackets_ipv6():
    assert format_endpoint(bytes(15) + b"\x01", 443) == "[::1]:443"
    assert format_endpoint(b"\x7f\x00\x00\x01", 80) == "127.0.0.1:80"
