"""The byte streams under the capture readers.

A capture is read through a buffered file, or through a buffered stream of a
gzip file's decompressed data. ``read_ahead`` looks at a stream's first bytes
without consuming them, even on a pipe, so that the format can be detected
before a reader takes the stream.
"""

import gzip
import io
import os
import stat
import zlib
from typing import TYPE_CHECKING

from tcpwatch.errors import CaptureFileError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


BUFFER_SIZE = 64 * 1024

# Errors that a read can raise on a damaged file: OSError for I/O failures and
# gzip.BadGzipFile, EOFError for a gzip stream without its end marker, and
# zlib.error for corrupt compressed data.
READ_ERRORS = (OSError, EOFError, zlib.error)


def file_size(raw: io.BufferedReader) -> int | None:
    status = os.fstat(raw.fileno())
    return status.st_size if stat.S_ISREG(status.st_mode) else None


class GzipRawStream(io.RawIOBase):
    """A gzip file's decompressed data as a raw stream, one step per read.

    ``GzipFile.read(n)`` loops until it has ``n`` bytes, so an error in a later
    step drops the bytes it already had. ``read1`` makes one step. So a
    truncated stream or a bad CRC raises only on a call that has nothing to
    return, after every good byte has been delivered. Corrupt deflate data is
    different: zlib raises without the bytes it decompressed in the same step,
    so up to one read (64 KiB) before the damage is lost.
    """

    def __init__(self, raw: io.BufferedReader) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        view = memoryview(buffer)
        data = self._gzip.read1(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gzip.close()
        super().close()


def open_raw(path: str) -> io.BufferedReader:
    try:
        return io.BufferedReader(io.FileIO(path, "r"), BUFFER_SIZE)
    except FileNotFoundError:
        raise CaptureFileError(path, "file not found; check the path") from None
    except PermissionError:
        reason = "permission denied; check the file's permissions or run as its owner"
        raise CaptureFileError(path, reason) from None
    except IsADirectoryError:
        reason = "is a directory; give the path of a pcap or pcapng file"
        raise CaptureFileError(path, reason) from None
    except OSError as error:
        raise CaptureFileError(path, f"cannot open: {error.strerror}") from None


def read_ahead(stream: io.BufferedReader, size: int) -> tuple[io.BufferedReader, bytes]:
    """Return ``stream`` and its first ``size`` bytes, which stay unread.

    ``peek`` returns what one read of the file gave, and a pipe can deliver
    its first bytes in pieces. Then the bytes are read, as many as arrive
    before the end of the file, and a new stream puts them back in front.
    """
    head = stream.peek(size)[:size]
    if len(head) == size:
        return stream, head
    head = stream.read(size)
    return io.BufferedReader(PrefixedStream(head, stream), BUFFER_SIZE), head


class PrefixedStream(io.RawIOBase):
    """Bytes already read from a stream, followed by the rest of that stream."""

    def __init__(self, prefix: bytes, rest: io.BufferedReader) -> None:
        super().__init__()
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._rest.fileno()

    def readinto(self, buffer: "WriteableBuffer") -> int:
        view = memoryview(buffer)
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read1(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()
