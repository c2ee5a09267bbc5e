"""Capturing a demo's loopback traffic to a pcap file with tcpdump.

TODO: capture with ``tcpwatch.capture.live`` once it is part of the package,
so demos no longer need tcpdump installed.
"""

import logging
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tcpwatch.errors import CapturePermissionError, CaptureToolError

logger = logging.getLogger("tcpwatch.demo")

START_TIMEOUT = 10.0
"""Seconds to wait for tcpdump to report that it is listening."""
SETTLE = 0.3
"""Seconds to keep capturing after the scenario, for its last packets."""


def capture_unavailable() -> str:
    """Return why a loopback capture cannot run (``no_root``, ``no_tool``), or ""."""
    if os.geteuid() != 0:
        return "no_root"
    if shutil.which("tcpdump") is None:
        return "no_tool"
    return ""


class LoopbackCapture:
    """Capture TCP traffic to or from one loopback port while the block runs."""

    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self.dropped = 0
        """Packets the kernel dropped before tcpdump read them, from its report."""

    def __enter__(self) -> "LoopbackCapture":
        if os.geteuid() != 0:
            raise CapturePermissionError(
                "capturing on loopback needs root; run the demo with sudo, "
                "or use --synthesise"
            )
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise CaptureToolError(
                "tcpdump not found; install it (Debian package tcpdump) "
                "or use --synthesise"
            )
        command = [
            tcpdump,
            "-i",
            "lo",
            "-U",
            # Without immediate mode libpcap hands packets over in blocks, at
            # most once a second, and the last block is lost on SIGINT.
            "--immediate-mode",
            # 32 MiB of kernel buffer: loopback carries 64 KiB segments, and
            # tcpdump's default 2 MiB drops most of a 1 MB burst.
            "-B",
            "32768",
            "-n",
            "-Z",
            "root",
            "-w",
            str(self.path),
            f"tcp port {self.port}",
        ]
        logger.debug("demo.capture.started command=%s", " ".join(command))
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_until_listening(self._process)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        time.sleep(SETTLE)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        report = stderr.decode(errors="replace")
        found = re.search(r"(\d+) packets? dropped by kernel", report)
        self.dropped = int(found.group(1)) if found else 0
        logger.debug("demo.capture.complete dropped=%d", self.dropped)

    def _wait_until_listening(self, process: subprocess.Popen[bytes]) -> None:
        """Block until tcpdump prints "listening on", so no packet is missed."""
        assert process.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT
        output = b""
        while b"listening on" not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                process.kill()
                process.wait()
                message = output.decode(errors="replace").strip() or "no output"
                raise CaptureToolError(f"tcpdump did not start capturing: {message}")
            ready, _, _ = select.select([process.stderr], [], [], remaining)
            if ready:
                chunk = os.read(process.stderr.fileno(), 4096)
                if not chunk:
                    continue
                output += chunk
