"""Several capture files read as one capture, in timestamp order.

``MergedCapture`` opens each file with ``pcapfile.open_capture`` and merges
their frames by timestamp. ``pcapfile`` re-exports ``MergedCapture`` and
``merge_captures``, which most callers import from there.
"""

import contextlib
import heapq
import logging
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Self

from tcpwatch.capture.segment import Frame
from tcpwatch.errors import CaptureFileError

if TYPE_CHECKING:
    from tcpwatch.capture.pcapfile import CaptureReader

logger = logging.getLogger("tcpwatch.capture")


class MergedCapture:
    """Several capture files read as one capture, in timestamp order.

    Frames from all files come out merged by timestamp (``heapq.merge``,
    streaming: one pending frame per file). Each file is assumed to be in
    timestamp order itself, which tcpdump and dumpcap files are. Ties keep the
    order of ``paths``.

    Errors: every file is opened by the constructor, so a file that cannot be
    opened raises ``CaptureFileError`` before any frame is read. An error while
    reading one file (truncation, corruption) ends that file only. The error is
    appended to ``errors`` and passed to ``on_error`` if one was given, and the
    other files go on. When the merge ends and there is no ``on_error``, the
    first error is raised, after every frame read from every file has been
    yielded. With ``on_error``, nothing is raised and the caller decides.
    """

    def __init__(
        self,
        paths: Iterable[str],
        on_error: Callable[[CaptureFileError], None] | None = None,
    ) -> None:
        self.readers: list[CaptureReader] = []
        self.errors: list[CaptureFileError] = []
        """Errors met while reading, in the order they happened."""
        self._on_error = on_error
        # Imported here because pcapfile imports this module to re-export it.
        from tcpwatch.capture.pcapfile import open_capture

        try:
            for path in paths:
                self.readers.append(open_capture(path))
        except CaptureFileError:
            self.close()
            raise

    @property
    def paths(self) -> list[str]:
        return [reader.path for reader in self.readers]

    @property
    def size(self) -> int | None:
        """Total size on disk, or None when any input is a pipe or device."""
        sizes = [reader.size for reader in self.readers]
        if any(size is None for size in sizes):
            return None
        return sum(size for size in sizes if size is not None)

    @property
    def position(self) -> int:
        """Bytes on disk consumed so far, summed over the files."""
        return sum(reader.position for reader in self.readers)

    def __iter__(self) -> Iterator[Frame]:
        if len(self.readers) == 1:
            # One file, the usual case: its frames need no merge, and each
            # frame passes through one generator less.
            return self._guard(self.readers[0], raise_at_end=True)
        return self._merged()

    def _merged(self) -> Iterator[Frame]:
        streams = [self._guard(reader) for reader in self.readers]
        yield from heapq.merge(*streams, key=itemgetter(0))
        if self.errors and self._on_error is None:
            raise self.errors[0]

    def _guard(
        self, reader: "CaptureReader", raise_at_end: bool = False
    ) -> Iterator[Frame]:
        """Yield the reader's frames and record an error instead of raising it.

        With ``raise_at_end`` and no ``on_error``, the error is raised after
        the last frame, as the class promises for the end of a merge.
        """
        try:
            yield from reader
        except CaptureFileError as error:
            logger.debug("capture.failed path=%s error=%s", reader.path, error)
            self.errors.append(error)
            if self._on_error is not None:
                self._on_error(error)
        if raise_at_end and self.errors and self._on_error is None:
            raise self.errors[0]

    def close(self) -> None:
        """Close every file."""
        for reader in self.readers:
            with contextlib.suppress(OSError):
                reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def merge_captures(
    paths: Iterable[str],
    on_error: Callable[[CaptureFileError], None] | None = None,
) -> MergedCapture:
    """Open several capture files to be read as one, in timestamp order.

    See ``MergedCapture`` for how errors in one file are reported.
    """
    return MergedCapture(paths, on_error)
