"""Drawing pieces of the timeline: arrows, padded and wrapped text, styles.

Widths are terminal cells (``rich.cells.cell_len``), so that CJK text, two
cells per character, lines up with the lifelines.
"""

import re

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from tcpwatch.capture.segment import FIN, RST, SYN
from tcpwatch.flow import analysis
from tcpwatch.render.style import printable
from tcpwatch.units import format_seconds

MARK_STYLES = {
    analysis.RETRANSMISSION: "bold red",
    analysis.FAST_RETRANSMISSION: "bold red",
    analysis.SPURIOUS_RETRANSMISSION: "red",
    analysis.OUT_OF_ORDER: "red",
    analysis.PREVIOUS_SEGMENT_NOT_CAPTURED: "red",
    analysis.DUP_ACK: "yellow",
    analysis.ZERO_WINDOW: "bold yellow",
    analysis.WINDOW_FULL: "yellow",
    analysis.ZERO_WINDOW_PROBE: "yellow",
    analysis.KEEP_ALIVE: "blue",
    analysis.WINDOW_UPDATE: "green",
    analysis.BAD_CHECKSUM: "bold red",
    analysis.STRAY_SYN: "magenta",
    analysis.PORT_REUSE: "magenta",
}
NOTE_STYLE = "italic"


def format_delta(seconds: float) -> str:
    return "+" + format_seconds(seconds)


def rjust_cells(text: str, width: int) -> str:
    return " " * max(0, width - cell_len(text)) + text


def centred(content: Text, width: int) -> Text:
    """Return ``content`` centred in ``width`` cells."""
    size = cell_len(content.plain)
    left = max(0, (width - size) // 2)
    text = Text(" " * left)
    text.append_text(content)
    text.append(" " * max(0, width - left - size))
    return text


def draw_arrow(label: Text, to_responder: bool, width: int, style: str) -> Text:
    """Return an arrow of exactly ``width`` cells with ``label`` in its middle."""
    size = cell_len(label.plain) + 2 if label.plain else 0
    dashes = max(2, width - 1 - size)
    left = dashes // 2
    right = dashes - left
    text = Text()
    if not to_responder:
        text.append("◀", style=style)
    text.append("─" * left, style=style)
    if label.plain:
        text.append(" ")
        text.append_text(label)
        text.append(" ")
    text.append("─" * right, style=style)
    if to_responder:
        text.append("▶", style=style)
    return text


def wrap_text(console: Console, content: str, width: int, style: str) -> list[Text]:
    """Wrap ``content`` to lines of exactly ``width`` cells.

    Lines break at spaces and between CJK characters, because Japanese has no
    spaces between words. A run of Latin letters and digits stays whole unless
    it is longer than a line. A line never starts with closing punctuation.
    """
    width = max(width, 8)
    lines: list[list[str]] = [[]]
    used = 0
    for token in _TOKEN.findall(printable(content)):
        size = cell_len(token)
        line = lines[-1]
        if token.isspace():
            if line:
                line.append(" ")
                used += 1
            continue
        if used + size > width and line:
            carried = []
            if token[0] in _NO_LINE_START and len(line) > 1:
                carried.append(line.pop())
            while line and line[-1] == " ":
                line.pop()
            lines.append(carried)
            line = lines[-1]
            used = sum(cell_len(part) for part in line)
        while size > width:
            cut = _cut_at(token, width - used)
            line.append(token[:cut])
            lines.append([])
            line = lines[-1]
            token = token[cut:]
            used = 0
            size = cell_len(token)
        line.append(token)
        used += size
    result = []
    for parts in lines:
        text = "".join(parts).rstrip()
        result.append(Text(text + " " * max(0, width - cell_len(text)), style=style))
    return result


# A wrapping token: a run of Latin letters, digits and symbols, one space, or
# one other character (each CJK character can end a line).
_TOKEN = re.compile(r"[!-~µ×–’]+|\s|.")
_NO_LINE_START = set("。、．，）」』】！？：；…ー")


def _cut_at(token: str, cells: int) -> int:
    """Return how many characters of ``token`` fit in ``cells`` cells (at least 1)."""
    used = 0
    for index, char in enumerate(token):
        used += cell_len(char)
        if used > cells:
            return max(1, index)
    return len(token)


def arrow_style(flags: int, payload_len: int) -> str:
    if flags & RST:
        return "bold red"
    if flags & SYN:
        return "yellow"
    if flags & FIN:
        return "magenta"
    if payload_len:
        return "cyan"
    return ""
