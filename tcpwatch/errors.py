"""The error tree. Each message names the bad value and what to do next."""

from tcpwatch.render.style import printable


class TcpwatchError(Exception):
    """Base class of every error tcpwatch reports to the user."""


class UsageError(TcpwatchError):
    """An option or argument that cannot be used as given."""


class CaptureFileError(TcpwatchError):
    """A capture file that cannot be read, or can be read only up to some offset."""

    def __init__(self, path: str, reason: str, offset: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        # The message is printed to a terminal, and a file name or a message
        # from another program (tshark, zlib) can contain escape sequences, so
        # control characters are shown escaped.
        super().__init__(printable(f"{path}{where}: {reason}"))


class TruncatedCaptureError(CaptureFileError):
    """A capture file that ends in the middle of a record.

    Every record before the cut has been delivered by the time this is raised.
    """


class CapturePermissionError(TcpwatchError):
    """Opening a live capture needs root or CAP_NET_RAW."""


class InterfaceNotFoundError(TcpwatchError):
    """A live capture interface that does not exist."""


class InterfaceDownError(TcpwatchError):
    """The interface of a live capture went down or was removed while capturing."""


class TsharkMissingError(TcpwatchError):
    """The tshark backend was requested but tshark or pyshark is not installed."""


class PolicyError(TcpwatchError):
    """A firewall policy file (TOML or Terraform) that cannot be read or is invalid."""
