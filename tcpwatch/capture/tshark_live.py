"""Live capture through dumpcap and tshark: ``TsharkLiveSource``.

dumpcap captures, tshark dissects, and pyshark parses tshark's output in a
thread of its own. ``dumpcap_error`` turns dumpcap's exit status and messages
into the error the native live capture raises for the same cause.
"""

import contextlib
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tcpwatch.capture.segment import Segment
from tcpwatch.capture.tshark_packets import (
    CHUNK_SIZE,
    JSON_PROTOCOLS,
    PREFERENCES,
    SegmentConverter,
    close_quietly,
    new_event_loop,
    tshark_error_line,
    write_all,
)
from tcpwatch.errors import (
    CaptureFileError,
    CapturePermissionError,
    TcpwatchError,
    UsageError,
)

logger = logging.getLogger("tcpwatch.capture")


_DUMPCAP_DROPS = re.compile(r"Packets received/dropped on interface .*: (\d+)/(\d+)")
# dumpcap's explanation of a capture filter it cannot compile.
_FILTER_REASON = re.compile(r"valid capture filter \((.*)\)")
_END = object()
# Seconds to wait for dumpcap to start capturing.
_START_TIMEOUT = 15.0
# Lines of dumpcap's stderr kept for error messages.
_STDERR_LINES = 40


class TsharkLiveSource:
    """A live capture through dumpcap and tshark, yielding batches of segments.

    dumpcap captures and writes a pcap stream. A thread copies the stream to
    the ``write`` file, if any, and into a pipe that tshark reads through
    pyshark, so the saved file contains exactly the packets analysed. pyshark
    runs in a thread of its own and passes segments on through a queue. A
    frame without a TCP segment is passed on as None, so that packet counts
    stay right. Stopping ends dumpcap; the end of its stream then ends the
    file, tshark and the batches in turn.

    NOTE: the Python process does not drop root with this backend: dumpcap
    and tshark run as the user who started tcpwatch.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf_filter: str = "",
        snaplen: int = 262144,
        promiscuous: bool = True,
        write: str | None = None,
    ) -> None:
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.snaplen = snaplen
        self.promiscuous = promiscuous
        self.write = write
        self.converter = SegmentConverter()
        self.received: int | None = None
        self.dropped: int | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=100000)
        self._dumpcap: subprocess.Popen[bytes] | None = None
        self._stderr: list[str] = []
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._streaming = threading.Event()
        self._stderr_done = threading.Event()
        self._started = False
        if interface != "any":
            from tcpwatch.capture.live import interface_index

            interface_index(interface)

    def start(self, count: int = 0, stop: threading.Event | None = None) -> None:
        """Start dumpcap and tshark, and wait until the capture runs.

        dumpcap writes the pcap file header once the interface is open and
        the filter compiled. Waiting for it means that the caller can announce
        the capture as running, as with the native source, and that a capture
        dumpcap could not start raises here, with dumpcap's reason.

        Raises:
            CapturePermissionError: dumpcap lacks root or CAP_NET_RAW.
            UsageError: the capture filter does not compile.
            TcpwatchError: dumpcap failed for another reason.
        """
        read_end = self._start(count)
        waited = time.monotonic() + _START_TIMEOUT
        while not self._streaming.wait(0.1):
            if not self._dumpcap_running():
                break
            if (stop is not None and stop.is_set()) or time.monotonic() > waited:
                break
        if not self._dumpcap_running():
            failure = self._dumpcap_failure()
            if failure is not None:
                os.close(read_end)
                raise failure
        self._spawn(self._dissect, read_end)
        self._started = True

    def batches(
        self, status: Any, stop: threading.Event, *, count: int = 0, duration: float = 0
    ) -> Iterator[list[Segment | None]]:
        """Yield segments in batches until stopped; see ``live.capture_batches``.

        Starts the capture first unless ``start`` was called, which then set
        the packet count.
        """
        status.decode = self.converter.stats
        if not self._started:
            self.start(count, stop)
        deadline = time.monotonic() + duration if duration > 0 else None
        stopping = False
        while True:
            if not stopping and (
                stop.is_set() or (deadline is not None and time.monotonic() > deadline)
            ):
                stopping = True
                self._stop_dumpcap()
            batch, ended = self._next_batch()
            status.received, status.dropped = self.received, self.dropped
            yield batch
            if ended:
                break
        if self._error is not None:
            raise self._error
        failure = self._dumpcap_failure()
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Stop dumpcap if it still runs, and wait for the threads."""
        self._stop_dumpcap()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._dumpcap is not None:
            self._dumpcap.wait(timeout=10)
            # The copying and stderr threads have ended, so nothing reads
            # these pipes any more.
            for pipe in (self._dumpcap.stdout, self._dumpcap.stderr):
                if pipe is not None:
                    pipe.close()

    def _start(self, count: int) -> int:
        """Start dumpcap and the copying thread; return the pipe tshark reads."""
        command = ["dumpcap", "-i", self.interface, "-s", str(self.snaplen), "-P"]
        if not self.promiscuous:
            command.append("-p")
        if self.bpf_filter:
            command += ["-f", self.bpf_filter]
        if count:
            command += ["-c", str(count)]
        command += ["-w", "-"]
        output = None
        if self.write:
            try:
                output = open(self.write, "wb")  # noqa: SIM115 - closed by _copy
            except OSError as error:
                raise CaptureFileError(
                    self.write, f"cannot be written: {error.strerror}"
                ) from None
        logger.debug("tshark.dumpcap command=%s", command)
        self._dumpcap = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        read_end, write_end = os.pipe()
        self._spawn(self._copy, write_end, output)
        self._spawn(self._read_stderr)
        return read_end

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _copy(self, write_end: int, output: Any) -> None:
        """Copy dumpcap's pcap stream to the file and to tshark's pipe."""
        assert self._dumpcap is not None and self._dumpcap.stdout is not None
        descriptor = self._dumpcap.stdout.fileno()
        try:
            while chunk := os.read(descriptor, CHUNK_SIZE):
                self._streaming.set()
                if output is not None:
                    output.write(chunk)
                    output.flush()
                write_all(write_end, chunk)
        except BrokenPipeError:
            pass  # tshark ended first; its error is reported by _dissect
        finally:
            os.close(write_end)
            if output is not None:
                output.close()

    def _read_stderr(self) -> None:
        assert self._dumpcap is not None and self._dumpcap.stderr is not None
        try:
            for raw in self._dumpcap.stderr:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                self._stderr.append(line)
                # dumpcap's permission message alone is about 15 lines.
                del self._stderr[:-_STDERR_LINES]
                match = _DUMPCAP_DROPS.search(line)
                if match:
                    self.received = int(match.group(1))
                    self.dropped = int(match.group(2))
        finally:
            self._stderr_done.set()

    def _dissect(self, read_end: int) -> None:
        from pyshark.capture.pipe_capture import PipeCapture

        capture = None
        loop = new_event_loop()
        try:
            capture = PipeCapture(
                pipe=read_end,
                use_json=True,
                override_prefs=dict(PREFERENCES),
                custom_parameters=JSON_PROTOCOLS,
                eventloop=loop,
            )
            convert = self.converter.convert
            put = self._queue.put
            for packet in capture:
                put(convert(packet))
        except BaseException as error:
            self._error = self._translate(error)
        finally:
            if capture is not None:
                close_quietly(capture, loop)
            else:
                loop.close()
            self._queue.put(_END)

    def _next_batch(self) -> tuple[list[Segment | None], bool]:
        batch: list[Segment | None] = []
        try:
            item = self._queue.get(timeout=0.1)
            while True:
                if item is _END:
                    return batch, True
                batch.append(item)
                if len(batch) >= 1024:
                    break
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        return batch, False

    def _translate(self, error: BaseException) -> BaseException:
        """Turn a failure of tshark into the error that explains it.

        tshark fails when dumpcap does, since its input then ends early, and
        dumpcap's messages name the cause. Otherwise pyshark's crash message
        is reduced to tshark's own words.
        """
        from pyshark.capture.capture import TSharkCrashException

        failure = self._dumpcap_failure()
        if failure is not None:
            return failure
        if isinstance(error, TSharkCrashException):
            return TcpwatchError(
                f"tshark failed while dissecting the capture on {self.interface!r}: "
                f"{tshark_error_line(error)}; check that 'tshark -i "
                f"{self.interface}' runs, or capture with --backend native"
            )
        return error

    def _dumpcap_failure(self) -> TcpwatchError | None:
        """Return the error dumpcap reported, once it has exited; None if none.

        An exit caused by the stop request (SIGTERM) or by ``-c`` is status 0.
        """
        if self._dumpcap is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._dumpcap.wait(timeout=5)
        if not self._dumpcap.returncode:
            return None
        self._stderr_done.wait(timeout=5)
        return dumpcap_error(
            self.interface, self.bpf_filter, self._dumpcap.returncode, self._stderr
        )

    def _dumpcap_running(self) -> bool:
        return self._dumpcap is not None and self._dumpcap.poll() is None

    def _stop_dumpcap(self) -> None:
        if self._dumpcap_running():
            assert self._dumpcap is not None
            with contextlib.suppress(ProcessLookupError):
                self._dumpcap.send_signal(signal.SIGTERM)


def dumpcap_error(
    interface: str, bpf_filter: str, status: int, stderr: list[str]
) -> TcpwatchError:
    """Return the tcpwatch error for dumpcap's exit ``status`` and ``stderr`` lines.

    The messages match the native backend's for the same causes, with the
    fix for dumpcap: it captures, so it needs the capabilities.
    """
    text = "\n".join(stderr)
    if "permission" in text.lower() or "not permitted" in text.lower():
        dumpcap = shutil.which("dumpcap") or "/usr/bin/dumpcap"
        return CapturePermissionError(
            f"capturing on {interface!r} needs root or the CAP_NET_RAW capability: "
            "run the command with sudo, or grant dumpcap the capabilities once "
            f"with: sudo setcap cap_net_raw,cap_net_admin=ep {dumpcap}"
        )
    if "Invalid capture filter" in text:
        # dumpcap explains on a later line: "That string isn't a valid capture
        # filter (unknown port 'banana')."
        reason = "dumpcap cannot compile it"
        for line in stderr:
            match = _FILTER_REASON.search(line)
            if match:
                reason = match.group(1)
        return UsageError(
            f"invalid capture filter {bpf_filter!r}: {reason}; "
            "see pcap-filter(7) for the syntax"
        )
    messages = [line for line in stderr if line.startswith("dumpcap: ")]
    message = (messages or stderr or ["no message"])[-1].removeprefix("dumpcap: ")
    return TcpwatchError(
        f"dumpcap failed to capture on {interface!r} (exit status {status}): "
        f"{message}; run 'dumpcap -i {interface} -w /dev/null' for the whole message"
    )
