"""Colours shared by the views, keyed by the values users see."""

CONN_STATE_STYLES = {
    "SF": "green",
    "S1": "cyan",
    "S2": "yellow",
    "S3": "yellow",
    "SH": "yellow",
    "SHR": "yellow",
    "REJ": "bold red",
    "S0": "red",
    "RSTO": "magenta",
    "RSTR": "magenta",
    "RSTOS0": "red",
    "RSTRH": "red",
    "OTH": "dim",
}

HANDSHAKE_STYLES = {
    "complete": "green",
    "simultaneous_open": "cyan",
    "no_reply": "red",
    "rejected": "bold red",
    "incomplete": "yellow",
    "not_seen": "dim",
}

TEARDOWN_STYLES = {
    "fin": "green",
    "half_closed": "yellow",
    "reset_by_orig": "magenta",
    "reset_by_resp": "magenta",
    "open": "cyan",
    "idle_timeout": "dim",
}

PHASE_STYLES = {
    "handshake": "yellow",
    "transfer": "cyan",
    "teardown": "magenta",
    "closed": "dim",
}


def printable(text: str) -> str:
    """Return ``text`` with control characters shown as ``\\xNN`` escapes.

    Capture contents (payloads, comments, names) pass through this before they
    reach a terminal, so escape sequences in them cannot act on it. Rich markup
    is not a concern when the result goes into a ``rich.text.Text``. A file
    name byte that is not valid UTF-8 (a lone surrogate from Python's
    ``surrogateescape``) is shown as ``\\xNN`` of that byte, and other
    unprintable characters above U+00FF as ``\\uNNNN`` or ``\\UNNNNNNNN``.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code > 0xFF:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return f"\\x{code:02x}"
