"""A plain grid of text cells, drawn line by line for large tables.

rich's ``Table`` measures and renders every cell through its general layout
engine, which costs about half a millisecond per row: 9,000 connections took
5 s to print. A connection table needs none of that generality (every cell is
one or two short lines, and only one column may wrap), so ``Grid`` computes
the column widths once and yields one ``Text`` per output line, with the same
box characters as rich's default table style.
"""

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text


@dataclass
class GridColumn:
    """One column: its header lines, alignment, and whether it may wrap."""

    header: str
    justify: str = "left"
    wrap: bool = False
    """The column that gives up width when the grid is wider than the screen."""
    min_width: int = 1
    style: str = ""
    shorten: Callable[[str, int], str] | None = None
    """For a wrap column: shorten each line of a cell to the column's width
    with this function instead of wrapping it."""


class Grid:
    """Rows of ``Text`` cells under bold headers, in a box."""

    def __init__(
        self,
        columns: Sequence[GridColumn],
        rows: Sequence[Sequence[Text]],
        title: str | None = None,
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.title = title

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        max_width = options.max_width
        widths = self._widths(max_width)
        if self.title:
            total = sum(widths) + 3 * len(widths) + 1
            yield Text(self.title.center(total), style="italic")
        header = [Text(column.header, style="bold") for column in self.columns]
        lines = [_rule("┏", "━", "┳", "┓", widths)]
        lines.extend(self._lines(header, widths, "┃", is_header=True))
        lines.append(_rule("┡", "━", "╇", "┩", widths))
        for row in self.rows:
            lines.extend(self._lines(row, widths, "│"))
        lines.append(_rule("└", "─", "┴", "┘", widths))
        for line in lines:
            # On a screen too narrow even for the shrunk grid, cut lines
            # rather than let the terminal wrap them into a mess.
            line.truncate(max_width)
            yield line

    def fits(self, max_width: int) -> bool:
        """Return whether the grid fits ``max_width`` once wrap columns give way."""
        widths = self._widths(max_width)
        return sum(widths) + 3 * len(widths) + 1 <= max_width

    def _widths(self, max_width: int) -> list[int]:
        widths = [
            max(
                column.min_width,
                *(cell_len(line) for line in column.header.split("\n")),
            )
            for column in self.columns
        ]
        for row in self.rows:
            for index, cell in enumerate(row):
                for line in cell.plain.split("\n"):
                    length = cell_len(line)
                    if length > widths[index]:
                        widths[index] = length
        excess = sum(widths) + 3 * len(widths) + 1 - max_width
        if excess > 0:
            for index, column in enumerate(self.columns):
                if column.wrap:
                    widths[index] = max(column.min_width, widths[index] - excess)
        return widths

    def _lines(
        self,
        row: Sequence[Text],
        widths: list[int],
        bar: str,
        is_header: bool = False,
    ) -> Iterator[Text]:
        """Yield the output lines of one row; a cell may span several lines."""
        cells: list[list[Text]] = []
        for index, cell in enumerate(row):
            column = self.columns[index]
            if column.shorten is not None and not is_header:
                lines = [
                    Text(column.shorten(line.plain, widths[index]), style=cell.style)
                    for line in cell.split("\n")
                ]
            elif column.wrap:
                lines = list(cell.wrap(_CONSOLE, widths[index]))
            else:
                lines = list(cell.split("\n"))
            cells.append(lines)
        height = max(len(lines) for lines in cells)
        for line_index in range(height):
            line = Text(bar)
            for index, lines in enumerate(cells):
                column = self.columns[index]
                part = lines[line_index].copy() if line_index < len(lines) else Text()
                part.truncate(widths[index], overflow="ellipsis")
                part.align(column.justify, widths[index])  # type: ignore[arg-type]
                line.append(" ")
                if column.style and not is_header:
                    part.stylize(column.style)
                line.append_text(part)
                line.append(" " + bar)
            yield line


# Wrapping needs a console only for its tab size and encoding, never for output.
_CONSOLE = Console(width=1000, file=io.StringIO())


def _rule(left: str, fill: str, cross: str, right: str, widths: list[int]) -> Text:
    inner = cross.join(fill * (width + 2) for width in widths)
    return Text(left + inner + right)
