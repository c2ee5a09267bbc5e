"""Mermaid sequence diagrams of connections, ready to paste into Markdown.

One ``sequenceDiagram`` per connection: the originator and the responder as
participants, one message per segment with its flags and relative numbers,
and notes for the phases, the handshake round trip and the verdict. Long
transfers fold as in the terminal timeline, into a note that counts what was
left out.

Mermaid's sequence grammar (``sequenceDiagram.jison`` in mermaid-js/mermaid)
reads a message, note, title or participant alias up to the end of the line,
but stops early at ``;`` or ``#``. ``%%`` starts a comment anywhere on a line,
and the renderer treats ``<`` and ``>`` as HTML. So ``escape`` writes those
characters as Mermaid entity codes (``#59;``).

NOTE: the tests check the output against these grammar rules, not with
Mermaid itself, which needs Node.js. Mermaid 11.17's ``mermaid.parse``
accepted the diagrams of every demo scenario in English and Japanese.
"""

from typing import TextIO

from tcpwatch.capture.segment import RST
from tcpwatch.flow import analysis
from tcpwatch.flow.connection import Connection, SegmentView, format_endpoint
from tcpwatch.i18n import DEFAULT_LANGUAGE, Catalogue, catalogue
from tcpwatch.render.explain import mark_words
from tcpwatch.render.style import printable
from tcpwatch.render.timeline import Timeline, label_parts

# Characters that end or change a Mermaid text, and the entity codes for them.
_ENTITIES = {
    "#": "#35;",
    ";": "#59;",
    "%": "#37;",
    "<": "#60;",
    ">": "#62;",
}

ORIGINATOR = "O"
RESPONDER = "R"


def escape(text: str) -> str:
    """Return ``text`` safe for a Mermaid message, note or participant alias.

    Control characters become ``\\xNN`` first (``printable``), so a capture's
    bytes cannot start a new Mermaid statement.
    """
    return "".join(_ENTITIES.get(char, char) for char in printable(text))


def sequence_diagram(
    conn: Connection, *, full: bool = False, lang: str = DEFAULT_LANGUAGE
) -> str:
    """Return the connection's Mermaid ``sequenceDiagram`` source, without fences."""
    cat = catalogue(lang)
    timeline = Timeline(conn, full, lang=lang)
    lines = ["sequenceDiagram"]
    lines.append(
        "    title " + escape(cat.text("title", number=conn.number, uid=conn.uid))
    )
    originator = (
        f"{cat.text('role.originator')} {format_endpoint(conn.orig_h, conn.orig_p)}"
    )
    responder = (
        f"{cat.text('role.responder')} {format_endpoint(conn.resp_h, conn.resp_p)}"
    )
    lines.append(f"    participant {ORIGINATOR} as {escape(originator)}")
    lines.append(f"    participant {RESPONDER} as {escape(responder)}")
    for kind, value in timeline.steps():
        if kind in ("phase", "fold"):
            lines.append(_note_over(str(value)))
        elif kind == "bracket":
            lines.append(f"    Note right of {RESPONDER}: {escape(str(value))}")
        elif isinstance(value, SegmentView):
            lines.append(_message(conn, value, cat))
    verdict = timeline.verdict_line()
    lines.append(_note_over(verdict))
    return "\n".join(lines) + "\n"


def _note_over(text: str) -> str:
    return f"    Note over {ORIGINATOR},{RESPONDER}: {escape(text)}"


def _message(conn: Connection, view: SegmentView, cat: Catalogue) -> str:
    """Return a segment's message: dotted when marked as lost, a cross for RST."""
    sender, receiver = (
        (ORIGINATOR, RESPONDER) if view.is_orig else (RESPONDER, ORIGINATOR)
    )
    words = label_parts(conn, view, cat)
    words += [f"[{word}]" for _, word in mark_words(view.marks, cat)]
    if view.segment.flags & RST:
        arrow = "-x"
    elif view.marks & (analysis.ANY_RETRANSMISSION | analysis.OUT_OF_ORDER):
        arrow = "-->>"
    else:
        arrow = "->>"
    return f"    {sender}{arrow}{receiver}: {escape(' '.join(words))}"


class MermaidWriter:
    """Write one fenced Mermaid block per connection, for Markdown files.

    ``fenced=False`` writes bare diagrams separated by blank lines, for tools
    that read Mermaid source directly.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        full: bool = False,
        lang: str = DEFAULT_LANGUAGE,
        fenced: bool = True,
    ) -> None:
        self.stream = stream
        self.full = full
        self.lang = lang
        self.fenced = fenced
        self._written = 0

    def write(self, conn: Connection) -> None:
        """Write the diagram of ``conn``, tracked with ``keep_segments=True``."""
        if self._written:
            self.stream.write("\n")
        diagram = sequence_diagram(conn, full=self.full, lang=self.lang)
        if self.fenced:
            diagram = "```mermaid\n" + diagram + "```\n"
        self.stream.write(diagram)
        self._written += 1

    def close(self) -> None:
        self.stream.flush()
