"""Real TCP conversations on loopback, for demos captured live.

Each scenario starts a server socket on 127.0.0.1, serves one connection in
a thread, and drives a client against it, so the kernel's own TCP stack
produces every packet. ``run`` captures the traffic of the scenario's port
to a pcap file while it runs.

Sockets have timeouts, so a scenario that goes wrong ends instead of
hanging; every connection stays on 127.0.0.1.
"""

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tcpwatch.demo.capture import LoopbackCapture

logger = logging.getLogger("tcpwatch.demo")

HOST = "127.0.0.1"
TIMEOUT = 5.0
"""Seconds any socket operation of a scenario may block."""
SLOW_SERVER_DELAY = 0.5
"""Seconds the slow server waits before it responds."""
BULK_BYTES = 1_000_000

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def run(name: str, path: Path) -> int:
    """Run scenario ``name`` on loopback and write its packets to ``path``.

    Returns how many packets the kernel dropped from the capture. Raises
    ``KeyError`` for a scenario with no loopback version.
    """
    scenario = SCENARIOS[name]
    listener = _listener() if scenario is not refused else None
    port = listener.getsockname()[1] if listener else _free_port()
    # The client's port is chosen before the capture starts, so that the
    # capture filter can name the connection exactly.
    client = _client_socket()
    try:
        with client, LoopbackCapture(path, port, client.getsockname()[1]) as capture:
            scenario(listener, port, client)
    finally:
        if listener is not None:
            listener.close()
    return capture.dropped


# -- scenarios ---------------------------------------------------------------


def clean(listener: socket.socket | None, port: int, client: socket.socket) -> None:
    """Request, response, and a FIN from each side."""

    def serve(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(_response(1100))

    with _serving(listener, serve):
        _client_exchange(client, port)


def refused(listener: socket.socket | None, port: int, client: socket.socket) -> None:
    """Connect to a port nothing listens on: the kernel responds with RST."""
    try:
        client.connect((HOST, port))
    except ConnectionRefusedError:
        pass
    else:
        raise RuntimeError(f"port {port} accepted a connection; expected a RST")


def abort(listener: socket.socket | None, port: int, client: socket.socket) -> None:
    """The server reads the request, then closes with SO_LINGER 0: a RST."""

    def serve(conn: socket.socket) -> None:
        _read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with _serving(listener, serve):
        client.connect((HOST, port))
        with client:
            client.sendall(REQUEST)
            with contextlib.suppress(ConnectionResetError):
                client.recv(4096)


def half_close(
    listener: socket.socket | None, port: int, client: socket.socket
) -> None:
    """The client shuts down its sending side; the server still responds."""

    def serve(conn: socket.socket) -> None:
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        lines = sorted(data.split())
        conn.sendall(b"\r\n".join(lines) + b"\r\n")

    with _serving(listener, serve):
        client.connect((HOST, port))
        with client:
            client.sendall(b"banana\r\napple\r\ncherry\r\n")
            client.shutdown(socket.SHUT_WR)
            _read_to_end(client)


def slow_server(
    listener: socket.socket | None, port: int, client: socket.socket
) -> None:
    """The server waits half a second before it responds."""

    def serve(conn: socket.socket) -> None:
        _read_request(conn)
        time.sleep(SLOW_SERVER_DELAY)
        conn.sendall(_response(900))

    with _serving(listener, serve):
        _client_exchange(client, port)


def bulk(listener: socket.socket | None, port: int, client: socket.socket) -> None:
    """The server sends a megabyte."""

    def serve(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(_response(BULK_BYTES))

    with _serving(listener, serve):
        _client_exchange(client, port)


SCENARIOS: dict[str, Callable[[socket.socket | None, int, socket.socket], None]] = {
    "clean": clean,
    "refused": refused,
    "abort": abort,
    "half-close": half_close,
    "slow-server": slow_server,
    "bulk": bulk,
}
"""The scenarios the local stack produces on demand, by demo name."""


# -- helpers -----------------------------------------------------------------


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    return listener


def _client_socket() -> socket.socket:
    """Return a client socket already bound to its loopback port."""
    client = socket.socket()
    client.settimeout(TIMEOUT)
    client.bind((HOST, 0))
    return client


def _free_port() -> int:
    """Return a loopback port that nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


class _serving:
    """Serve one connection in a thread; re-raise its error on exit."""

    def __init__(
        self,
        listener: socket.socket | None,
        handler: Callable[[socket.socket], None],
    ) -> None:
        if listener is None:
            raise ValueError("a served scenario needs a listening socket")
        self.listener = listener
        self.handler = handler
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "_serving":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(TIMEOUT)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                self.handler(conn)
        except (OSError, RuntimeError) as error:
            logger.debug("demo.serve.failed error=%s", error)
            self.error = error


def _client_exchange(client: socket.socket, port: int) -> None:
    client.connect((HOST, port))
    with client:
        client.sendall(REQUEST)
        _read_to_end(client)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _read_to_end(conn: socket.socket) -> int:
    total = 0
    while chunk := conn.recv(65536):
        total += len(chunk)
    return total


def _response(body_size: int) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {body_size}\r\n\r\n".encode()
    return head + b"x" * body_size
