"""Analyse independent capture files in parallel worker processes.

``read_separately`` treats each file as a capture of its own: each gets its
own tracker, in a worker process, up to ``jobs`` at a time. Connections never
span two files, unlike in ``read_captures``, which reads several files as one
capture in timestamp order.

Finished connections come back to the calling process through a bounded queue,
in batches. They are passed to ``on_finished`` file by file in the order of
``paths``, and within a file in the order its tracker finished them. A worker
whose file is not being delivered yet stops when its queue is full, so memory
stays bounded whatever the number and size of the files. Connection numbers
are made unique across files: the first connection of a file is numbered one
after the last of the file before it. Each connection's ``uid`` is the one its
own file gives it when read alone.

Workers are started with ``fork`` where the platform has it, because the
command line's ``__main__`` module must not run again in each worker.
"""

import logging
import multiprocessing
import queue
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from tcpwatch.capture.decoder import DecodeStats
from tcpwatch.capture.pcapfile import open_capture
from tcpwatch.errors import CaptureFileError
from tcpwatch.flow.connection import Connection
from tcpwatch.flow.tracker import FlowTracker
from tcpwatch.pipeline import ReadResult, read_captures

logger = logging.getLogger("tcpwatch.pipeline")

# Connections sent from a worker per message, and messages a worker may have
# waiting before it blocks.
_BATCH = 256
_QUEUE_SIZE = 32
# Seconds between checks that a worker is still alive while waiting for it.
_POLL = 0.5

# A capture error as plain data: class, path, reason, offset. The error
# classes take their own arguments, which pickle does not restore.
_ErrorState = tuple[type[CaptureFileError], str, str, int | None]


def read_separately(
    paths: Sequence[str],
    make_tracker: Callable[[], FlowTracker],
    on_finished: Callable[[Connection], None],
    *,
    jobs: int = 1,
    validate_checksums: bool = False,
    on_file: Callable[[str, int, ReadResult], None] | None = None,
    bpf_filter: str = "",
) -> ReadResult:
    """Analyse each file as an independent capture, ``jobs`` files at a time.

    ``make_tracker`` is called in each worker to build that file's tracker.
    It must survive pickling where workers are not forked, for example a
    ``functools.partial`` of ``FlowTracker``. The result adds up the files'
    counters and lists their read errors in the order of ``paths``.
    ``on_file``, when given, is called after each file's last connection with
    the file's path, the number of the last connection before it, and the
    file's own result. ``bpf_filter`` is a pcap-filter(7) expression that
    each worker compiles for its file.

    A file that cannot be opened is left out and its error listed with the
    others, because the files are independent: one bad file does not stop
    the analysis of the rest.

    Raises:
        CaptureFileError: no file can be opened; raised before any worker
            starts, as ``read_captures`` does.
        RuntimeError: a worker process died without finishing its file.
    """
    readable, unreadable = _check_open(paths)
    if not readable:
        raise unreadable[0]
    context = _context()
    total = ReadResult(paths=list(paths), stats=DecodeStats())
    total.errors.extend(unreadable)
    waiting = deque(readable)
    running: deque[tuple[str, BaseProcess, Any]] = deque()
    try:
        while waiting or running:
            while waiting and len(running) < max(1, jobs):
                path = waiting.popleft()
                channel = context.Queue(_QUEUE_SIZE)
                worker = context.Process(
                    target=_analyse_file,
                    args=(path, make_tracker, validate_checksums, bpf_filter, channel),
                    name=f"tcpwatch-read-{path}",
                    daemon=True,
                )
                worker.start()
                running.append((path, worker, channel))
            path, worker, channel = running.popleft()
            before = total.connections
            part = _collect(path, worker, channel, on_finished, before)
            worker.join()
            _add(total, part)
            if on_file is not None:
                on_file(path, before, part)
    finally:
        for _, worker, _ in running:
            worker.terminate()
            worker.join()
    return total


def _check_open(paths: Sequence[str]) -> tuple[list[str], list[CaptureFileError]]:
    """Split ``paths`` into files that open as captures and the errors of the rest."""
    readable: list[str] = []
    errors: list[CaptureFileError] = []
    for path in paths:
        try:
            open_capture(path).close()
        except CaptureFileError as error:
            errors.append(error)
        else:
            readable.append(path)
    return readable, errors


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _analyse_file(
    path: str,
    make_tracker: Callable[[], FlowTracker],
    validate_checksums: bool,
    bpf_filter: str,
    channel: Any,
) -> None:
    """Worker: read one file and send its connections, then its result."""
    batch: list[Connection] = []

    def finished(conn: Connection) -> None:
        batch.append(conn)
        if len(batch) >= _BATCH:
            channel.put(("connections", batch.copy()))
            batch.clear()

    frame_filter = None
    if bpf_filter:
        from tcpwatch.capture.bpf import FrameFilter

        frame_filter = FrameFilter(bpf_filter)
    try:
        result = read_captures(
            [path],
            make_tracker(),
            finished,
            validate_checksums=validate_checksums,
            frame_filter=frame_filter,
        )
    except CaptureFileError as error:
        channel.put(("failed", _error_state(error)))
        return
    if batch:
        channel.put(("connections", batch))
    errors = [_error_state(error) for error in result.errors]
    result.errors = []
    channel.put(("done", result, errors))


def _collect(
    path: str,
    worker: BaseProcess,
    channel: Any,
    on_finished: Callable[[Connection], None],
    first_number: int,
) -> ReadResult:
    """Deliver one worker's connections as they arrive; return its result."""
    while True:
        try:
            message = channel.get(timeout=_POLL)
        except queue.Empty:
            if worker.exitcode is not None and channel.empty():
                raise RuntimeError(
                    f"the worker reading {path} exited with status "
                    f"{worker.exitcode} before it finished"
                ) from None
            continue
        kind = message[0]
        if kind == "connections":
            for conn in message[1]:
                conn.number += first_number
                on_finished(conn)
        elif kind == "failed":
            raise _rebuild(message[1])
        else:
            result: ReadResult = message[1]
            result.errors = [_rebuild(state) for state in message[2]]
            for error in result.errors:
                logger.debug("read.failed path=%s error=%s", error.path, error)
            return result


def _add(total: ReadResult, part: ReadResult) -> None:
    total.connections += part.connections
    total.errors.extend(part.errors)
    total.reordered += part.reordered
    total.reordered_late += part.reordered_late
    total.evicted += part.evicted
    total.filtered += part.filtered
    stats, more = total.stats, part.stats
    stats.frames += more.frames
    stats.tcp += more.tcp
    stats.non_tcp += more.non_tcp
    stats.truncated += more.truncated
    stats.malformed += more.malformed
    stats.bad_checksum += more.bad_checksum
    stats.fragments += more.fragments
    for link_type, count in more.unsupported_link.items():
        unsupported = stats.unsupported_link
        unsupported[link_type] = unsupported.get(link_type, 0) + count


def _error_state(error: CaptureFileError) -> _ErrorState:
    return (type(error), error.path, error.reason, error.offset)


def _rebuild(state: _ErrorState) -> CaptureFileError:
    error_class, path, reason, offset = state
    return error_class(path, reason, offset)
