"""Helpers shared by the command modules."""

import contextlib
import sys
from collections.abc import Iterator

import typer

from tcpwatch.errors import TcpwatchError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ``TcpwatchError`` into one line on stderr and exit status 2.

    Commands wrap their bodies in this, so typer's test runner sees the same
    status and message as a user at a shell.
    """
    try:
        yield
    except TcpwatchError as error:
        print(f"tcpwatch: error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
