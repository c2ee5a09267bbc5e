"""TCP option parsing (RFC 9293 section 3.2, RFC 7323, RFC 2018, RFC 7413)."""

from typing import Final, NamedTuple

OPT_EOL: Final = 0
OPT_NOP: Final = 1
OPT_MSS: Final = 2
OPT_WINDOW_SCALE: Final = 3
OPT_SACK_PERMITTED: Final = 4
OPT_SACK: Final = 5
OPT_TIMESTAMP: Final = 8
OPT_FAST_OPEN: Final = 34


class TcpOptions(NamedTuple):
    """The options tcpwatch reads; None where the option is absent."""

    mss: int | None = None
    window_scale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    """Raw (left edge, right edge) sequence numbers of each SACK block."""
    timestamp: tuple[int, int] | None = None
    """(TSval, TSecr)."""
    fast_open_cookie: bytes | None = None
    """The TCP Fast Open cookie; empty bytes for a cookie request."""


NO_OPTIONS = TcpOptions()


def parse_options(raw: bytes) -> TcpOptions:
    """Parse raw option bytes; stop quietly at the first malformed option.

    An option whose length byte is missing, zero or one, or runs past the end
    ends the parse, as in Linux's ``tcp_parse_options``: what was parsed
    before it is kept.
    """
    if not raw:
        return NO_OPTIONS
    mss = window_scale = None
    sack_permitted = False
    sack_blocks: list[tuple[int, int]] = []
    timestamp = None
    cookie = None
    index = 0
    end = len(raw)
    while index < end:
        kind = raw[index]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            index += 1
            continue
        if index + 1 >= end:
            break
        length = raw[index + 1]
        if length < 2 or index + length > end:
            break
        body = raw[index + 2 : index + length]
        if kind == OPT_MSS and length == 4:
            mss = int.from_bytes(body, "big")
        elif kind == OPT_WINDOW_SCALE and length == 3:
            window_scale = body[0]
        elif kind == OPT_SACK_PERMITTED and length == 2:
            sack_permitted = True
        elif kind == OPT_SACK and length in (10, 18, 26, 34):
            for offset in range(0, length - 2, 8):
                sack_blocks.append(
                    (
                        int.from_bytes(body[offset : offset + 4], "big"),
                        int.from_bytes(body[offset + 4 : offset + 8], "big"),
                    )
                )
        elif kind == OPT_TIMESTAMP and length == 10:
            timestamp = (
                int.from_bytes(body[0:4], "big"),
                int.from_bytes(body[4:8], "big"),
            )
        elif kind == OPT_FAST_OPEN:
            cookie = bytes(body)
        index += length
    return TcpOptions(
        mss, window_scale, sack_permitted, tuple(sack_blocks), timestamp, cookie
    )
